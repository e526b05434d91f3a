"""Key material from Secrets Manager: the hashing pepper (here) and the token
signing keys (carekey.signing, which only the functions that sign tokens load;
those that only verify read the published public keys, carekey.public_keys).

The template creates both secrets with random content; nothing secret is ever
a literal in code or in a function's environment.  Values are cached per
container for `KEY_CACHE_SECONDS`, so a rotated signing key reaches every
function within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from typing import Any

from botocore.exceptions import ClientError

from carekey.aws import client
from carekey.config import settings

_lock = threading.Lock()
_cache: dict[str, tuple[float, Any]] = {}


def cached(name: str, load: Any) -> Any:
    now = time.monotonic()
    with _lock:
        hit = _cache.get(name)
        if hit and now - hit[0] < settings().key_cache_seconds:
            return hit[1]
    value = load()
    with _lock:
        _cache[name] = (now, value)
    return value


def forget_cached_keys() -> None:
    with _lock:
        _cache.clear()


def forget_cached(name: str) -> None:
    with _lock:
        _cache.pop(name, None)


def secret_string(secret_id: str, stage: str = "AWSCURRENT") -> tuple[str, str] | None:
    try:
        got = client("secretsmanager").get_secret_value(SecretId=secret_id, VersionStage=stage)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException" and stage != "AWSCURRENT":
            return None
        raise
    return got["VersionId"], got["SecretString"]


# ---- pepper ---------------------------------------------------------------


def _pepper() -> bytes:
    def load() -> bytes:
        found = secret_string(settings().pepper_secret_id)
        assert found is not None
        return found[1].encode("utf-8")

    return cached("pepper", load)


def keyed_hash(purpose: str, value: str) -> str:
    """HMAC-SHA256 of `value` under a key derived from the pepper for `purpose`.

    Used for OTP digests and for email-derived keys (limits, audit), so that a
    stolen table reveals neither codes nor addresses.
    """
    key = hmac.new(_pepper(), purpose.encode(), hashlib.sha256).digest()
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()

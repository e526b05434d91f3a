"""Key material from Secrets Manager: the hashing pepper and the token signing keys.

The template creates both secrets with random content; nothing secret is ever
a literal in code or in a function's environment.  Values are cached per
container for `KEY_CACHE_SECONDS`, so a rotated signing key reaches every
function within that time.

Signing keys: each secret version holds a random seed from which an ES256
(P-256) private key is derived deterministically (HKDF-SHA256).  AWSCURRENT
signs; AWSPREVIOUS still verifies, so a rotation keeps issued tokens valid
until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from carekey.aws import client
from carekey.config import settings

_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
_lock = threading.Lock()
_cache: dict[str, tuple[float, Any]] = {}


def _cached(name: str, load: Any) -> Any:
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


def _secret_string(secret_id: str, stage: str = "AWSCURRENT") -> tuple[str, str] | None:
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
        found = _secret_string(settings().pepper_secret_id)
        assert found is not None
        return found[1].encode("utf-8")

    return _cached("pepper", load)


def keyed_hash(purpose: str, value: str) -> str:
    """HMAC-SHA256 of `value` under a key derived from the pepper for `purpose`.

    Used for OTP digests and for email-derived keys (limits, audit), so that a
    stolen table reveals neither codes nor addresses.
    """
    key = hmac.new(_pepper(), purpose.encode(), hashlib.sha256).digest()
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


# ---- signing keys -----------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: ec.EllipticCurvePrivateKey

    @property
    def public(self) -> ec.EllipticCurvePublicKey:
        return self.private.public_key()

    def jwk(self) -> dict[str, str]:
        numbers = self.public.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")),
            "kid": self.kid,
            "use": "sig",
            "alg": "ES256",
        }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def derive_signing_key(seed: str) -> SigningKey:
    material = HKDF(algorithm=hashes.SHA256(), length=48, salt=None, info=b"carekey-es256-v1").derive(seed.encode())
    scalar = int.from_bytes(material, "big") % (_P256_ORDER - 1) + 1
    private = ec.derive_private_key(scalar, ec.SECP256R1())
    numbers = private.public_key().public_numbers()
    # RFC 7638 thumbprint as the key id.
    canonical = json.dumps(
        {"crv": "P-256", "kty": "EC", "x": _b64(numbers.x.to_bytes(32, "big")), "y": _b64(numbers.y.to_bytes(32, "big"))},
        separators=(",", ":"),
        sort_keys=True,
    )
    return SigningKey(kid=_b64(hashlib.sha256(canonical.encode()).digest()), private=private)


def _seed_of(secret_string: str) -> str:
    # The template generates {"seed": "..."}; a plain string also works.
    try:
        parsed = json.loads(secret_string)
    except ValueError:
        return secret_string
    return parsed.get("seed", secret_string) if isinstance(parsed, dict) else secret_string


def signing_keys() -> tuple[SigningKey, list[SigningKey]]:
    """The current signing key and every key that still verifies (current first)."""

    def load() -> tuple[SigningKey, list[SigningKey]]:
        secret_id = settings().signing_secret_id
        current = _secret_string(secret_id, "AWSCURRENT")
        assert current is not None
        keys = [derive_signing_key(_seed_of(current[1]))]
        previous = _secret_string(secret_id, "AWSPREVIOUS")
        if previous is not None and previous[0] != current[0]:
            keys.append(derive_signing_key(_seed_of(previous[1])))
        return keys[0], keys

    return _cached("signing", load)

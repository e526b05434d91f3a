"""The token verification keys, as published: what functions that only verify
tokens (the authorizer, JWKS, the HTTP API option's protected routes) read.

The signing seed stays in its secret, which only the functions that sign
tokens may read.  Each of them publishes the public JWK set (the current key
and the previous one) in the `PUBLIC_KEYS_PARAMETER` SSM parameter before it
signs with a key the set lacks (carekey.signing), and `make deploy` and the
local emulator publish it when the stack is created, so the set is there
before the first token.  A key id that is not in the cached set is looked up
again (at most once every few seconds), so a rotation reaches verifiers as
soon as the first token signed with the new key does.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from carekey.aws import client
from carekey.config import settings
from carekey.keys import cached

_RELOAD_SECONDS = 5.0
_lock = threading.Lock()
_last_reload = 0.0


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    public: ec.EllipticCurvePublicKey
    jwk: dict[str, str]


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key_of(jwk: dict[str, Any]) -> VerificationKey | None:
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or "d" in jwk or not jwk.get("kid"):
        return None
    x, y = int.from_bytes(_unb64(jwk["x"]), "big"), int.from_bytes(_unb64(jwk["y"]), "big")
    public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    fields = ("kty", "crv", "x", "y", "kid", "use", "alg")
    return VerificationKey(str(jwk["kid"]), public, {k: str(jwk[k]) for k in fields if k in jwk})


def read_published() -> dict[str, Any]:
    """The published JWK set, as stored ({"keys": [...]})."""
    value = client("ssm").get_parameter(Name=settings().public_keys_parameter)["Parameter"]["Value"]
    parsed = json.loads(value)
    return parsed if isinstance(parsed, dict) and isinstance(parsed.get("keys"), list) else {"keys": []}


def _load() -> list[VerificationKey]:
    keys = [_key_of(k) for k in read_published()["keys"] if isinstance(k, dict)]
    return [k for k in keys if k is not None]


def verification_keys() -> list[VerificationKey]:
    return cached("public-keys", _load)


def key_for(kid: str | None) -> VerificationKey | None:
    """The published key with this id; an unknown id re-reads the set (a new key
    after a rotation), at most once every few seconds whatever tokens arrive."""
    global _last_reload
    found = next((k for k in verification_keys() if k.kid == kid), None)
    if found is not None or not kid:
        return found
    with _lock:
        now = time.monotonic()
        if now - _last_reload < _RELOAD_SECONDS:
            return None
        _last_reload = now
    from carekey.keys import forget_cached

    forget_cached("public-keys")
    return next((k for k in verification_keys() if k.kid == kid), None)


def jwks() -> dict[str, Any]:
    return {"keys": [k.jwk for k in verification_keys()]}

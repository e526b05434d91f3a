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
from typing import TYPE_CHECKING, Any

from carekey.aws import client
from carekey.config import settings
from carekey.keys import cached

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

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


_FIELDS = ("kty", "crv", "x", "y", "kid", "use", "alg")


def _public_jwk(jwk: dict[str, Any]) -> dict[str, str] | None:
    """A published entry as a public P-256 JWK, or None: never a private key
    (`d`), never another kind of key, coordinates of 32 bytes."""
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or "d" in jwk or not jwk.get("kid"):
        return None
    try:
        if len(_unb64(str(jwk["x"]))) != 32 or len(_unb64(str(jwk["y"]))) != 32:
            return None
    except (KeyError, ValueError):
        return None
    return {k: str(jwk[k]) for k in _FIELDS if k in jwk}


def _key_of(jwk: dict[str, Any]) -> VerificationKey | None:
    public_jwk = _public_jwk(jwk)
    if public_jwk is None:
        return None
    from cryptography.hazmat.primitives.asymmetric import ec  # only verifiers need the key itself

    x, y = int.from_bytes(_unb64(public_jwk["x"]), "big"), int.from_bytes(_unb64(public_jwk["y"]), "big")
    try:
        public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except ValueError:  # not a point on the curve
        return None
    return VerificationKey(public_jwk["kid"], public, public_jwk)


def read_published() -> dict[str, Any]:
    """The published JWK set, as stored ({"keys": [...]})."""
    value = client("ssm").get_parameter(Name=settings().public_keys_parameter)["Parameter"]["Value"]
    parsed = json.loads(value)
    return parsed if isinstance(parsed, dict) and isinstance(parsed.get("keys"), list) else {"keys": []}


def _load() -> list[VerificationKey]:
    keys = [_key_of(k) for k in _entries()]
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
    forget_published()
    return next((k for k in verification_keys() if k.kid == kid), None)


def forget_published() -> None:
    """Read the published set anew at the next use (after a rotation)."""
    from carekey.keys import forget_cached

    forget_cached("public-keys")
    forget_cached("public-jwks")


def jwks() -> dict[str, Any]:
    """The JWK set to serve: the published public keys as JSON.  Serving them
    needs no key object, so the JWKS function never loads cryptography."""
    return cached("public-jwks", lambda: {"keys": [j for j in map(_public_jwk, _entries()) if j is not None]})


def _entries() -> list[dict[str, Any]]:
    return [k for k in read_published()["keys"] if isinstance(k, dict)]

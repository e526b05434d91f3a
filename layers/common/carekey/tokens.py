"""JWT access and refresh tokens: ES256, pinned on verification, typed.

Claims: iss, aud, sub (user id), iat, exp, jti, token_type ("access" or
"refresh"), sid (the session, i.e. refresh-token family) and ver (the user's
token version: a password change or reset bumps it, which ends every token
issued before).  The header carries the signing key's `kid`, published at
/.well-known/jwks.json.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from carekey import errors
from carekey.config import settings

if TYPE_CHECKING:
    import jwt as _jwt_module


def _jwt() -> "_jwt_module":
    # PyJWT and cryptography are loaded on first use, so functions that never
    # touch a token (register, verify-otp, logout...) start without them.
    import jwt

    return jwt

ALGORITHM = "ES256"
ACCESS = "access"
REFRESH = "refresh"
_REQUIRED = ["iss", "aud", "sub", "iat", "exp", "jti"]


@dataclass(frozen=True)
class Claims:
    user_id: str
    session_id: str
    jti: str
    version: int
    token_type: str
    issued_at: int
    expires_at: int


def preload() -> None:
    """Import the signing stack at init: the functions that handle tokens call
    this at module level, so their first request does not pay for it."""
    _jwt()
    import carekey.signing  # noqa: F401


def _sign(claims: dict[str, Any]) -> str:
    from carekey.signing import signing_keys

    current, _ = signing_keys()
    return _jwt().encode(claims, current.private, algorithm=ALGORITHM, headers={"kid": current.kid, "typ": "JWT"})


def issue(token_type: str, user_id: str, session_id: str, version: int, jti: str | None = None) -> tuple[str, str]:
    cfg = settings()
    lifetime = cfg.access_token_minutes * 60 if token_type == ACCESS else cfg.refresh_token_hours * 3600
    now = int(time.time())
    jti = jti or uuid.uuid4().hex
    token = _sign(
        {
            "iss": cfg.token_issuer,
            "aud": cfg.token_audience,
            "sub": user_id,
            "iat": now,
            "exp": now + lifetime,
            "jti": jti,
            "token_type": token_type,
            "sid": session_id,
            "ver": version,
        }
    )
    return token, jti


def verify(token: str, expected_type: str) -> Claims:
    """Decode and check a token; any defect raises InvalidToken."""
    cfg = settings()
    if not isinstance(token, str) or len(token) > 4096:
        raise errors.InvalidToken()
    from carekey.signing import signing_keys

    jwt = _jwt()
    try:
        header = jwt.get_unverified_header(token)
        _, keys = signing_keys()
        key = next((k for k in keys if k.kid == header.get("kid")), None)
        if key is None or header.get("alg") != ALGORITHM:
            raise errors.InvalidToken()
        claims = jwt.decode(
            token,
            key.public,
            algorithms=[ALGORITHM],
            audience=cfg.token_audience,
            issuer=cfg.token_issuer,
            options={"require": _REQUIRED},
            leeway=5,
        )
    except jwt.PyJWTError as exc:
        raise errors.InvalidToken() from exc
    sub, sid, jti, ver = claims.get("sub"), claims.get("sid"), claims.get("jti"), claims.get("ver")
    if claims.get("token_type") != expected_type:
        raise errors.InvalidToken()
    if not (isinstance(sub, str) and isinstance(sid, str) and isinstance(jti, str) and type(ver) is int):
        raise errors.InvalidToken()
    return Claims(sub, sid, jti, ver, expected_type, int(claims["iat"]), int(claims["exp"]))


def jwks() -> dict[str, Any]:
    from carekey.signing import signing_keys

    _, keys = signing_keys()
    return {"keys": [k.jwk() for k in keys]}

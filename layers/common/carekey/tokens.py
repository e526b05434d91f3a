"""Access tokens (RFC 9068 JWTs) and refresh tokens (opaque strings).

Access tokens: ES256, header `typ: at+jwt` and the signing key's `kid`
(published at /.well-known/jwks.json); claims `iss` (the API's URL), `sub`,
`aud`, `exp`, `iat`, `jti`, `client_id`, plus `user_id` (= `sub`, what
SimpleJWT clients read), `token_type: access`, `sid` (the session) and `ver`
(the user's token version: a password change or reset bumps it, which ends
every token issued before).  Verification pins the algorithm, the `typ`, the
issuer and the audience.

Refresh tokens are not JWTs, so nothing that verifies JWTs can mistake one
for an access token.  A refresh token is `<user>~<session>~<generation>~<secret>`
where the secret is an HMAC, under a key derived from the pepper, of the other
three parts: it is unguessable, and the service can tell a genuine old token
(a replay) from a forged one without storing any token.  The sessions table
keeps only the SHA-256 of the current and the previous token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
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
ACCESS_TYPE = "at+jwt"
ACCESS = "access"
_REQUIRED = ["iss", "aud", "sub", "iat", "exp", "jti", "client_id"]


@dataclass(frozen=True)
class Claims:
    user_id: str
    session_id: str
    jti: str
    version: int
    issued_at: int
    expires_at: int


def preload(signs: bool = True) -> None:
    """Import the token stack at init: the functions that handle tokens call
    this at module level, so their first request does not pay for it.  Those
    that only verify (`signs=False`) never load the signing module."""
    _jwt()
    import carekey.public_keys  # noqa: F401

    if signs:
        import carekey.signing  # noqa: F401


def issue_access(user_id: str, session_id: str, version: int, issuer: str) -> str:
    from carekey.signing import signing_keys

    cfg = settings()
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": user_id,
        "aud": cfg.token_audience,
        "exp": now + cfg.access_token_minutes * 60,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "client_id": cfg.token_client_id,
        "user_id": user_id,
        "token_type": ACCESS,
        "sid": session_id,
        "ver": version,
    }
    current, _ = signing_keys()
    return _jwt().encode(claims, current.private, algorithm=ALGORITHM, headers={"kid": current.kid, "typ": ACCESS_TYPE})


def verify_access(token: str, issuer: str) -> Claims:
    """Decode and check an access token; any defect raises InvalidToken."""
    cfg = settings()
    if not isinstance(token, str) or len(token) > 4096:
        raise errors.InvalidToken()
    from carekey.public_keys import key_for

    jwt = _jwt()
    try:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        key = key_for(kid) if isinstance(kid, str) else None
        typ = str(header.get("typ", "")).lower().removeprefix("application/")
        if key is None or header.get("alg") != ALGORITHM or typ != ACCESS_TYPE:
            raise errors.InvalidToken()
        claims = jwt.decode(
            token,
            key.public,
            algorithms=[ALGORITHM],
            audience=cfg.token_audience,
            issuer=issuer,
            options={"require": _REQUIRED},
            leeway=5,
        )
    except jwt.PyJWTError as exc:
        raise errors.InvalidToken() from exc
    sub, sid, jti, ver = claims.get("sub"), claims.get("sid"), claims.get("jti"), claims.get("ver")
    if claims.get("token_type") != ACCESS or claims.get("client_id") != cfg.token_client_id:
        raise errors.InvalidToken()
    if not (isinstance(sub, str) and isinstance(sid, str) and isinstance(jti, str) and type(ver) is int):
        raise errors.InvalidToken()
    return Claims(sub, sid, jti, ver, int(claims["iat"]), int(claims["exp"]))


def jwks() -> dict[str, Any]:
    """The published verification keys (the functions that serve them cannot read the seed)."""
    from carekey.public_keys import jwks as published

    return published()


# ---- refresh tokens -------------------------------------------------------------------

_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_REFRESH = re.compile(rf"^({_ID})~({_ID})~(0|[1-9][0-9]{{0,8}})~([0-9a-f]{{64}})$")


@dataclass(frozen=True)
class RefreshToken:
    user_id: str
    session_id: str
    generation: int

    def __str__(self) -> str:
        return f"{self.user_id}~{self.session_id}~{self.generation}~{_secret(self.user_id, self.session_id, self.generation)}"

    @property
    def digest(self) -> str:
        """What the sessions table stores: the SHA-256 of the token."""
        return refresh_digest(str(self))

    def next(self) -> "RefreshToken":
        return RefreshToken(self.user_id, self.session_id, self.generation + 1)


def _secret(user_id: str, session_id: str, generation: int) -> str:
    from carekey.keys import keyed_hash

    return keyed_hash("refresh-token", f"{user_id}~{session_id}~{generation}")


def refresh_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_refresh(token: str) -> RefreshToken:
    """The session and generation a refresh token names; InvalidToken unless the
    service made it (so a forged token can never end someone's session)."""
    match = _REFRESH.match(token) if isinstance(token, str) else None
    if match is None:
        raise errors.InvalidToken()
    user_id, session_id, generation, secret = match.groups()
    if not hmac.compare_digest(secret, _secret(user_id, session_id, int(generation))):
        raise errors.InvalidToken()
    return RefreshToken(user_id, session_id, int(generation))

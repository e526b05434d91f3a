"""Two-step sign-in: TOTP codes, recovery codes and the mfa_token of a login.

- TOTP as RFC 6238 with what every authenticator app reads: SHA-1, 6 digits,
  30-second steps, one step of drift either way (pyotp computes the codes).
  The secret is 160 bits from `secrets`, encrypted with kms:Encrypt under the
  data key (MFA_KEY_ID) with an encryption context naming its purpose and its
  user, so a ciphertext copied to another account does not decrypt.  It is
  returned once, by setup, and never logged.
- A code is accepted once: a code's time step must be newer than the last one
  used (a conditional write on `totp_last_step`, see `store.MfaProof`), so the
  same code again, or an older one, is refused, also when requests race.
- Recovery codes: 10 per account, 12 characters of Crockford base32 from
  `secrets` (60 bits), stored only as keyed hashes bound to the user, each
  removed by the conditional write that uses it.
- mfa_token: 32 random bytes (an opaque string, never a JWT: nothing that
  checks access tokens can accept one), stored as its SHA-256 with its user,
  the user's token version at login, a purpose (login or enrolment), 5 tries
  and a 5-minute life, used up with the code in one transaction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from carekey import store
from carekey.aws import client
from carekey.config import settings
from carekey.keys import keyed_hash

LOGIN = "mfa.login"
ENROLL = "mfa.enroll"
STEP_SECONDS = 30
DIGITS = 6
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32: no i, l, o, u
_RECOVERY_LENGTH = 12  # 60 bits
_TOKEN_PREFIX = "mfa_"  # noqa: S105 - marks an mfa_token, not a secret


# ---- the secret, encrypted under the KMS key --------------------------------------


def _now() -> float:
    return time.time()


def new_secret() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii")


def _context(user_id: str) -> dict[str, str]:
    return {"purpose": "totp-secret", "user_id": user_id}


def seal(secret: str, user_id: str) -> str:
    answer = client("kms").encrypt(KeyId=settings().mfa_key_id, Plaintext=secret.encode("ascii"), EncryptionContext=_context(user_id))
    return base64.b64encode(answer["CiphertextBlob"]).decode("ascii")


def unseal(ciphertext: str, user_id: str) -> str:
    answer = client("kms").decrypt(
        KeyId=settings().mfa_key_id, CiphertextBlob=base64.b64decode(ciphertext), EncryptionContext=_context(user_id)
    )
    return bytes(answer["Plaintext"]).decode("ascii")


def otpauth_uri(secret: str, account: str) -> str:
    import pyotp

    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(name=account, issuer_name=settings().service_name)


def qr_svg(uri: str) -> str:
    """The URI as an SVG QR code (segno: pure Python, no network)."""
    import io

    import segno

    out = io.BytesIO()
    segno.make(uri, error="m", micro=False).save(out, kind="svg", scale=4, border=4, xmldecl=False, svgns=True, title="Authenticator QR code")
    return out.getvalue().decode("utf-8")


# ---- checking a code ---------------------------------------------------------------


def well_formed_totp(code: str) -> bool:
    return len(code) == DIGITS and code.isascii() and code.isdigit()


def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step (now, or one either side) whose code this is, or None.
    Every candidate is compared, in constant time."""
    import pyotp

    if not well_formed_totp(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = int((_now() if at is None else at) // STEP_SECONDS)
    found = None
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def normalise_recovery(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch not in "- ")


def well_formed_recovery(code: str) -> bool:
    text = normalise_recovery(code)
    return len(text) == _RECOVERY_LENGTH and all(ch in _RECOVERY_ALPHABET for ch in text)


def recovery_hash(user_id: str, code: str) -> str:
    return keyed_hash("recovery-code", f"{user_id}|{normalise_recovery(code)}")


def new_recovery_codes(user_id: str) -> tuple[list[str], set[str]]:
    """Ten codes to show once (xxxx-xxxx-xxxx) and the keyed hashes to store."""
    codes = []
    while len(codes) < RECOVERY_CODES:
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        shown = f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"
        if shown not in codes:
            codes.append(shown)
    return codes, {recovery_hash(user_id, c) for c in codes}


@dataclass(frozen=True)
class Checked:
    proof: store.MfaProof
    method: str  # "totp" or "recovery_code"


def check_code(user: store.UserItem, code: str) -> Checked | None:
    """A proof to use up (with the write it joins), when `code` is the account's
    current TOTP code of a step newer than the last used, or one of its
    recovery codes; else None.  The write decides the races."""
    if not user.mfa_enabled:
        return None
    if well_formed_totp(code):
        step = matching_step(unseal(user.totp_secret, user.user_id), code)
        if step is None or (user.totp_last_step is not None and step <= int(user.totp_last_step)):
            return None
        return Checked(store.MfaProof(secret=user.totp_secret, step=step), "totp")
    if well_formed_recovery(code):
        digest = recovery_hash(user.user_id, code)
        held = user.recovery_codes or set()
        if not any(hmac.compare_digest(digest, h) for h in held):
            return None
        return Checked(store.MfaProof(secret=user.totp_secret, recovery_hash=digest), "recovery_code")
    return None


# ---- mfa tokens ------------------------------------------------------------------


def token_key(token: str) -> str | None:
    """The item key of an mfa_token, or None for anything that cannot be one
    (an access token, a refresh token, garbage) without a lookup."""
    if not isinstance(token, str) or not token.startswith(_TOKEN_PREFIX) or len(token) != len(_TOKEN_PREFIX) + 43:
        return None
    body = token[len(_TOKEN_PREFIX) :]
    if not all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in body):
        return None
    return f"mfa#{hashlib.sha256(token.encode('ascii')).hexdigest()}"


def issue_token(user: store.UserItem, purpose: str) -> str:
    token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = token_key(token)
    assert key is not None
    store.put_mfa_token(key, purpose, user.user_id, int(user.token_version), settings().mfa_token_seconds)
    return token

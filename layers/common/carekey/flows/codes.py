"""Issuing a one-time code: store its keyed hash (replacing any older code) and email it."""

from __future__ import annotations

from carekey import errors, limits, mailer, otp, store
from carekey.config import settings

_MESSAGES = {otp.VERIFY_EMAIL: mailer.verification_code, otp.PASSWORD_RESET: mailer.reset_code}


def send_limited(email: mailer.Email, purpose: str) -> bool:
    """Send unless the address is in its cooldown or over its hourly cap."""
    try:
        limits.claim_email_send(email.to, purpose)
    except errors.RateLimited:
        return False
    return mailer.send(email)


def issue_code(user: store.UserItem, purpose: str, respect_limits: bool = False) -> bool:
    code = otp.new_code()
    store.put_otp(
        otp.item_key(purpose, user.email),
        user.user_id,
        otp.digest(purpose, user.user_id, code),
        settings().otp_ttl_seconds,
    )
    message = _MESSAGES[purpose](user.email, code)
    return send_limited(message, purpose) if respect_limits else mailer.send(message)

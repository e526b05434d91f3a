"""One-time codes: six digits from `secrets`, stored only as a keyed hash.

A code is bound to one purpose and one email (the item key) and to one user
(inside the digest), so a reset code cannot verify an email and a code for one
account cannot act on another.
"""

from __future__ import annotations

import hmac
import secrets

from carekey.keys import keyed_hash

VERIFY_EMAIL = "verify_email"
PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose label, not a password
CHANGE_EMAIL = "change_email"


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def email_key(email: str) -> str:
    """A stable, non-reversible stand-in for an email in keys and audit records."""
    return keyed_hash("email", email)


def item_key(purpose: str, email: str) -> str:
    return f"{purpose}#{email_key(email)}"


def change_email_key(user_id: str) -> str:
    """An account's one pending email change (a new request replaces it)."""
    return f"{CHANGE_EMAIL}#{user_id}"


def change_email_subject(user_id: str, new_email: str) -> str:
    """What an email change's code is bound to: the account and the new address."""
    return f"{user_id}|{new_email}"


def digest(purpose: str, user_id: str, code: str) -> str:
    return keyed_hash("otp", f"{purpose}|{user_id}|{code}")


def matches(purpose: str, user_id: str, code: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(purpose, user_id, code), stored_digest)


def well_formed(code: str) -> bool:
    return len(code) == 6 and code.isascii() and code.isdigit()

"""Password policy (NIST SP 800-63B) and hashing.

Policy: at least PASSWORD_MIN_LENGTH characters (default 8), up to
PASSWORD_MAX_LENGTH (default 256), no composition rules; refused when common
or breached (a list of 19,640 passwords shipped with the layer), when built on
the person's email, name or the service's name, when entirely numeric (the
legacy rule) or one repeated character.  Every refusal says why.

Hashing: Unicode NFKC, then SHA-256 (base64), then bcrypt.  The pre-hash keeps
every character significant (bcrypt alone ignores bytes past 72) and keeps
NUL bytes out of bcrypt.  Stored as "bcrypt-sha256$<bcrypt hash>".
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import unicodedata
from functools import lru_cache
from importlib import resources

import bcrypt

from carekey.config import settings

PREFIX = "bcrypt-sha256$"
_DUMMY_SALT = "CareKeyDummySaltValue."  # 22 chars: a valid salt for a hash that matches nothing


def normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(normalise(password).encode("utf-8")).digest())


def hash_password(password: str, cost: int | None = None) -> str:
    cost = cost or settings().bcrypt_cost
    return PREFIX + bcrypt.hashpw(_prehash(password), bcrypt.gensalt(cost)).decode()


def verify_password(password: str, stored: str) -> bool:
    if not stored.startswith(PREFIX):
        return False
    return bcrypt.checkpw(_prehash(password), stored[len(PREFIX) :].encode())


def burn_equal_time(password: str) -> None:
    """Spend exactly what a real check costs, for an email with no account, so
    timing does not tell which emails are registered."""
    cost = settings().bcrypt_cost
    dummy = f"$2b${cost:02d}${_DUMMY_SALT}{'A' * 31}"
    bcrypt.checkpw(_prehash(password), dummy.encode())


def needs_rehash(stored: str) -> bool:
    match = re.match(r"^bcrypt-sha256\$\$2[aby]\$(\d\d)\$", stored)
    return match is None or int(match.group(1)) != settings().bcrypt_cost


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    data = resources.files("carekey").joinpath("common-passwords.txt.gz").read_bytes()
    return frozenset(line.strip() for line in gzip.decompress(data).decode().splitlines() if line.strip())


def _context_words(email: str, first_name: str = "", last_name: str = "") -> set[str]:
    words = {settings().service_name.lower(), "carekey"}
    local, _, domain = email.partition("@")
    words.update(re.split(r"[._+\-]", local))
    words.add(local)
    words.add(domain.split(".")[0])
    for name in (first_name, last_name):
        words.update(name.lower().split())
    return {w for w in words if len(w) >= 4}


def check_new_password(
    password: str,
    confirmation: str,
    fields: tuple[str, str],
    email: str = "",
    first_name: str = "",
    last_name: str = "",
) -> None:
    """Raise FieldErrors, in the legacy shape, when the two entries differ or the
    policy refuses the password; `fields` names the password and confirmation fields."""
    from carekey.errors import FieldErrors

    problems: dict[str, list[str]] = {}
    if password != confirmation:
        problems[fields[1]] = ["Password fields didn't match."]
    refused = policy_errors(password, email, first_name, last_name)
    if refused:
        problems[fields[0]] = refused
    if problems:
        raise FieldErrors(problems)


def policy_errors(password: str, email: str = "", first_name: str = "", last_name: str = "") -> list[str]:
    """Why this password is refused; an empty list means it is accepted."""
    cfg = settings()
    pw = normalise(password)
    problems: list[str] = []
    if len(pw) < cfg.password_min_length:
        problems.append(f"This password is too short. It must contain at least {cfg.password_min_length} characters.")
    if len(pw) > cfg.password_max_length:
        problems.append(f"This password is too long. It must contain at most {cfg.password_max_length} characters.")
    lowered = pw.lower()
    if lowered in _common_passwords() or lowered.strip() in _common_passwords():
        problems.append("This password is too common: it appears in lists of breached passwords.")
    if pw.isdigit():
        problems.append("This password is entirely numeric.")
    if pw and len(set(pw)) == 1:
        problems.append("This password is one character repeated.")
    if any(word in lowered for word in _context_words(email, first_name, last_name)):
        problems.append("This password is too similar to your email, your name or the service's name.")
    return problems

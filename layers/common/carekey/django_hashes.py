"""Django's password hashes, verified as Django verifies them.

Imported accounts keep the hash the Django backend stored (`dumpdata`'s
`password` field) until their next successful login turns it into the
service's own (see `carekey.passwords`).  It is stored as "django$<Django's
encoded hash>", and this module checks a password against it:

- "pbkdf2_sha256$<iterations>$<salt>$<base64 key>" and "pbkdf2_sha1$...":
  PBKDF2-HMAC of the UTF-8 password, any iteration count up to MAX_ITERATIONS;
- "bcrypt_sha256$<bcrypt hash>": bcrypt of the hex SHA-256 of the password;
- "bcrypt$<bcrypt hash>": bcrypt of the password (its first 72 bytes, which is
  all the bcrypt Django called ever read);
- "argon2$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>" (and argon2i, and the
  older encodings argon2-cffi still reads);
- "!<anything>" (Django's unusable password) and "" match nothing: such an
  account signs in only after forgot-password.

Django does not normalise passwords, so neither does this module: the bytes
typed are the bytes hashed.  Every comparison is constant-time
(`hmac.compare_digest`, or argon2's own verifier, which compares in constant
time).  `parse` refuses, at import, any hash that verification could not use
or that would cost a login more than the limits below, and `verify` holds
every hash to them again: a row's hash is data from outside and must not be
able to make one login take minutes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

import bcrypt

UNUSABLE_PREFIX = "!"
PBKDF2 = {"pbkdf2_sha256": "sha256", "pbkdf2_sha1": "sha1"}
BCRYPT = ("bcrypt_sha256", "bcrypt")
ARGON2 = "argon2"
FORMATS = (*PBKDF2, *BCRYPT, ARGON2)
# Django's other hashers: a refusal names these; anything else in the password
# column may be a password in the clear, and is never repeated.
OTHER_DJANGO_FORMATS = ("md5", "sha1", "unsalted_md5", "unsalted_sha1", "crypt", "scrypt")

# Several times the newest Django's own PBKDF2 default; a hash beyond these
# limits would make each login cost seconds.
MAX_ITERATIONS = 10_000_000
MAX_BCRYPT_COST = 16  # as BCRYPT_COST's own ceiling
MAX_ARGON2_MEMORY_KIB = 256 * 1024  # inside the smallest password function (512 MB) beside its own needs
MAX_ARGON2_TIME_COST = 20
MAX_ARGON2_PARALLELISM = 16

_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
_ARGON2_HASH = re.compile(r"^\$argon2(?:id|i|d)(?:\$v=\d+)?\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$")
_PBKDF2_HASH = re.compile(r"^(\d{1,9})\$([^$]*)\$([A-Za-z0-9+/]+=*)$")


class UnusableHash(ValueError):
    """The hash cannot be verified (or would cost too much); the message says why."""


@dataclass(frozen=True)
class Parsed:
    algorithm: str  # one of FORMATS, or "unusable"
    encoded: str  # Django's encoded hash, as dumped


def algorithm_of(encoded: str) -> str:
    if not encoded or encoded.startswith(UNUSABLE_PREFIX):
        return "unusable"
    return encoded.partition("$")[0]


def parse(encoded: str) -> Parsed:
    """Check a dumped hash: what `verify` will need, within the limits above.
    Raises UnusableHash with the reason when the hash cannot be imported."""
    if not isinstance(encoded, str):
        raise UnusableHash("the password field is not text")
    algorithm = algorithm_of(encoded)
    if algorithm == "unusable":
        return Parsed("unusable", encoded[:1])  # the rest is Django's random filler
    if not encoded.isascii() or any(ch.isspace() for ch in encoded):
        raise UnusableHash("the password hash has characters Django never writes")
    rest = encoded.partition("$")[2]
    if algorithm in PBKDF2:
        match = _PBKDF2_HASH.match(rest)
        if match is None:
            raise UnusableHash(f"malformed {algorithm} hash")
        iterations = int(match.group(1))
        if not 1 <= iterations <= MAX_ITERATIONS:
            raise UnusableHash(f"{algorithm} iteration count {iterations} is outside 1..{MAX_ITERATIONS:,}")
        try:
            key = base64.b64decode(match.group(3), validate=True)
        except ValueError:
            raise UnusableHash(f"malformed {algorithm} hash") from None
        if len(key) != hashlib.new(PBKDF2[algorithm]).digest_size:
            raise UnusableHash(f"malformed {algorithm} hash")
    elif algorithm in BCRYPT:
        match = _BCRYPT_HASH.match(rest)
        if match is None:
            raise UnusableHash(f"malformed {algorithm} hash")
        if not 4 <= int(match.group(1)) <= MAX_BCRYPT_COST:
            raise UnusableHash(f"{algorithm} cost {int(match.group(1))} is outside 4..{MAX_BCRYPT_COST}")
    elif algorithm == ARGON2:
        match = _ARGON2_HASH.match("$" + rest)
        if match is None:
            raise UnusableHash("malformed argon2 hash")
        memory, time_cost, parallelism = (int(g) for g in match.groups())
        if memory > MAX_ARGON2_MEMORY_KIB or time_cost > MAX_ARGON2_TIME_COST or parallelism > MAX_ARGON2_PARALLELISM:
            raise UnusableHash(
                f"argon2 parameters m={memory},t={time_cost},p={parallelism} exceed "
                f"m={MAX_ARGON2_MEMORY_KIB},t={MAX_ARGON2_TIME_COST},p={MAX_ARGON2_PARALLELISM}"
            )
    else:
        named = repr(algorithm) if algorithm in OTHER_DJANGO_FORMATS and "$" in encoded else "(not a Django hash)"
        raise UnusableHash(f"unsupported hash format {named} (supported: {', '.join(FORMATS)}; unusable '!')")
    return Parsed(algorithm, encoded)


def verify(password: str, encoded: str) -> bool:
    """Whether `password` is the one Django hashed into `encoded`.  The hash is
    held to the import's limits again: a row changed since (by hand, or
    corrupted) matches nothing rather than costing a login minutes, or the
    function its memory."""
    try:
        parse(encoded)
    except UnusableHash:
        return False
    algorithm, _, rest = encoded.partition("$")
    try:
        if algorithm in PBKDF2:
            return _verify_pbkdf2(PBKDF2[algorithm], password, rest)
        if algorithm == "bcrypt_sha256":
            return _bcrypt_matches(hashlib.sha256(password.encode("utf-8")).hexdigest().encode("ascii"), rest)
        if algorithm == "bcrypt":
            return _bcrypt_matches(password.encode("utf-8")[:72], rest)
        if algorithm == ARGON2:
            return _verify_argon2(password, rest)
    except (ValueError, UnicodeEncodeError):  # a malformed stored hash, or a password bcrypt refuses (NUL)
        return False
    return False  # unusable ("!..."), empty, or a format this module does not know


def _verify_pbkdf2(digest: str, password: str, rest: str) -> bool:
    match = _PBKDF2_HASH.match(rest)
    if match is None:
        return False
    iterations = int(match.group(1))
    if not 1 <= iterations <= MAX_ITERATIONS:
        return False
    derived = hashlib.pbkdf2_hmac(digest, password.encode("utf-8"), match.group(2).encode("utf-8"), iterations)
    return hmac.compare_digest(base64.b64encode(derived).decode("ascii").strip(), match.group(3))


def _bcrypt_matches(secret: bytes, stored: str) -> bool:
    if not _BCRYPT_HASH.match(stored):
        return False
    # bcrypt.hashpw with the stored hash as its salt recomputes it; compared in constant time.
    return hmac.compare_digest(bcrypt.hashpw(secret, stored.encode("ascii")), stored.encode("ascii"))


def _verify_argon2(password: str, rest: str) -> bool:
    # Imported here: only a login that meets an argon2 hash pays for loading it.
    import argon2

    if not _ARGON2_HASH.match("$" + rest):
        return False
    try:
        return argon2.PasswordHasher().verify("$" + rest, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False

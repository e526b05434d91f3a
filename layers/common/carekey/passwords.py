"""Password policy (NIST SP 800-63B) and hashing.

Policy: at least PASSWORD_MIN_LENGTH characters (default 8), up to
PASSWORD_MAX_LENGTH (default 256), both as typed and after NFKC, no
composition rules; refused when common
or breached (a list of 19,640 passwords shipped with the layer), when built on
the person's email, name or the service's name, when entirely numeric (the
legacy rule) or one repeated character.  Every refusal says why.

Hashing: Unicode NFKC, then HMAC-SHA256 under a key derived from the pepper
(Secrets Manager), then Argon2id (RFC 9106; OWASP's first choice for password
storage), memory-hard so that a guess costs an attacker's GPU its memory as
well as its time: ARGON2_MEMORY_KIB (default 47,104: 46 MiB) and
ARGON2_ITERATIONS (default 1), one lane, OWASP's first listed configuration.
Keying the pre-hash means a stolen Users table cannot be checked offline at
all without the pepper too.

A stored hash names its format before its first "$"; `verify_password`
dispatches on that name, so formats can be added (or retired) without
touching the others:
- "argon2id-hmac-sha256$<argon2 encoded hash>": the current format.
- "bcrypt-hmac-sha256$<bcrypt hash>": the same keyed pre-hash under bcrypt at
  BCRYPT_COST, the format before Argon2id.  It still verifies, and a login
  rehashes it into the current format (as it does an Argon2id hash made with
  other parameters).
- "bcrypt-sha256$<bcrypt hash>": the earlier, unkeyed SHA-256 pre-hash, likewise.
- "django$<Django's encoded hash>": an account imported from the Django
  backend (`make import-users`), checked as Django checks it
  (`carekey.django_hashes`); the first successful login rehashes it too.

A stored hash names its own cost (Argon2's memory and passes, bcrypt's
rounds), and a row is data that may be corrupt: one that asks for more than
the settings could ever have made (bcrypt above cost 16; Argon2 with more
than 1 GiB, 10 passes or one lane, or more memory than the function has
beside its own 100 MB) matches nothing and is never run.

A wrong password costs the same whatever the account's hash: a failed check
(or the dummy check of an address with no account) is topped up to the time of
the dearest native format an account may still hold, one bcrypt check at
BCRYPT_COST, plus the second check every failure makes, measured once per
environment and counted from the request's start (`settle_failure`), so a failed
login does not tell a bcrypt-era account from an Argon2id one, an imported
account from a native one, nor any of them from an address with no account.
Only failures pay for it; a right password costs one Argon2id check.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import re
import time
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Callable

import bcrypt
from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from carekey import django_hashes
from carekey.config import ARGON2_MAX_ITERATIONS, ARGON2_MAX_MEMORY_KIB, BCRYPT_MAX_COST, settings
from carekey.keys import keyed_hash

CURRENT = "argon2id-hmac-sha256"
BCRYPT = "bcrypt-hmac-sha256"
LEGACY = "django"
_DUMMY_SALT = "CareKeyDummySaltValue."  # 22 chars: a valid salt for a hash that matches nothing
_BCRYPT_COST = re.compile(r"\$2[aby]\$(\d\d)\$")
# What a password function needs for itself beside one Argon2 hash's memory
# (template.yaml: Argon2MemoryKiB must leave about 100 MB of the function's memory).
_FUNCTION_OWN_MIB = 100

# (password as typed, the stored hash without its "<format>$" prefix) -> whether it matches
Verifier = Callable[[str, str], bool]
_FORMATS: dict[str, Verifier] = {}


def hash_format(name: str) -> Callable[[Verifier], Verifier]:
    """Register the verifier of the stored format `name` ("<name>$..." hashes)."""

    def register(verify: Verifier) -> Verifier:
        _FORMATS[name] = verify
        return verify

    return register


def format_of(stored: str) -> str:
    return stored.partition("$")[0]


def normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def _prehash(password: str) -> bytes:
    # 64 hex characters: under bcrypt's 72-byte limit, no NUL bytes; the same for Argon2id.
    return keyed_hash("password", normalise(password)).encode("ascii")


def _sha256_prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(normalise(password).encode("utf-8")).digest())


def _bcrypt_matches(prehashed: bytes, bcrypt_hash: str) -> bool:
    cost = _BCRYPT_COST.match(bcrypt_hash)
    if cost is None or int(cost.group(1)) > BCRYPT_MAX_COST:  # not bcrypt, or dearer than BCRYPT_COST ever made: never run
        return False
    try:
        return bcrypt.checkpw(prehashed, bcrypt_hash.encode("ascii"))
    except (ValueError, UnicodeEncodeError):  # a malformed stored hash matches nothing
        return False


@lru_cache(maxsize=4)
def _hasher(memory_kib: int, iterations: int) -> PasswordHasher:
    return PasswordHasher(time_cost=iterations, memory_cost=memory_kib, parallelism=1, hash_len=32, salt_len=16, type=Type.ID)


def _argon2() -> PasswordHasher:
    cfg = settings()
    return _hasher(cfg.argon2_memory_kib, cfg.argon2_iterations)


def _argon2_memory_ceiling_kib() -> int:
    """The most memory a stored Argon2 hash may ask for: ARGON2_MEMORY_KIB's
    ceiling, and on Lambda no more than the function has beside its own needs."""
    function_mib = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    if function_mib.isdigit():
        return min(ARGON2_MAX_MEMORY_KIB, (int(function_mib) - _FUNCTION_OWN_MIB) * 1024)
    return ARGON2_MAX_MEMORY_KIB


def _within_ceilings(encoded: str) -> bool:
    """Whether a stored Argon2 hash asks for no more than the settings can make
    (one lane, ARGON2_ITERATIONS' and ARGON2_MEMORY_KIB's ceilings) and this
    function can give.  Argon2 takes its memory and passes from the hash
    itself, so a corrupt or forged row must be refused before it runs: it would
    otherwise allocate gigabytes (and the function be killed) or run for minutes."""
    asked = extract_parameters(encoded)
    return (
        asked.parallelism == 1
        and asked.time_cost <= ARGON2_MAX_ITERATIONS
        and asked.memory_cost <= _argon2_memory_ceiling_kib()
    )


def _argon2_matches(prehashed: bytes, encoded: str) -> bool:
    try:
        if not _within_ceilings(encoded):
            return False
        # argon2-cffi's verify compares in constant time; the hash names its own parameters.
        return _argon2().verify(encoded, prehashed)
    except (VerificationError, InvalidHashError, ValueError):  # a wrong password, or a malformed stored hash
        return False


@hash_format(CURRENT)
def _verify_current(password: str, rest: str) -> bool:
    return _argon2_matches(_prehash(password), rest)


@hash_format(BCRYPT)
def _verify_bcrypt(password: str, rest: str) -> bool:
    return _bcrypt_matches(_prehash(password), rest)


@hash_format("bcrypt-sha256")
def _verify_sha256_prehash(password: str, rest: str) -> bool:
    return _bcrypt_matches(_sha256_prehash(password), rest)


@hash_format(LEGACY)
def _verify_django(password: str, rest: str) -> bool:
    return django_hashes.verify(password, rest)


def legacy_hash(django_encoded: str) -> str:
    """How an imported Django hash is stored."""
    return f"{LEGACY}${django_encoded}"


def legacy_algorithm(stored: str) -> str | None:
    """The Django algorithm of an imported hash ("pbkdf2_sha256", "unusable"...), None for the service's own."""
    name, _, rest = stored.partition("$")
    return django_hashes.algorithm_of(rest) if name == LEGACY else None


def hash_password(password: str) -> str:
    return f"{CURRENT}$" + _argon2().hash(_prehash(password))


def bcrypt_hash(password: str, cost: int | None = None) -> str:
    """A hash in the bcrypt format accounts made before Argon2id hold (for tests and the bench)."""
    cost = cost or settings().bcrypt_cost
    return f"{BCRYPT}$" + bcrypt.hashpw(_prehash(password), bcrypt.gensalt(cost)).decode()


def verify_password(password: str, stored: str) -> bool:
    name, _, rest = stored.partition("$")
    verify = _FORMATS.get(name)
    return verify is not None and verify(password, rest)


@dataclass(frozen=True)
class Check:
    """The outcome of checking a password against an account's stored hash."""

    right: bool
    legacy: str | None  # the Django algorithm of an imported hash, else None
    seconds: float


def check(password: str, stored: str) -> Check:
    started = time.perf_counter()
    right = verify_password(password, stored)
    return Check(right, legacy_algorithm(stored), time.perf_counter() - started)


def settle_failure(started: float) -> None:
    """End a failed login at a fixed time after it began (`started`, a
    perf_counter reading taken first thing in the handler): one bcrypt check at
    BCRYPT_COST (the dearest native hash an account may hold) plus one Argon2id
    check (the second check every failure makes, against a sign-up or the
    dummy), each measured once per environment with FLOOR_MARGIN.  The
    deadline is a constant of the environment: nothing measured in this
    request moves it, so the limits, the look-up, the account's own check and
    the failure's counters and audit submission all fall inside the margins'
    slack, and none of them (an account's item against none, a bcrypt check
    against an Argon2id one, its user id in the audit record) shows in the
    answer's time."""
    target = started + bcrypt_check_seconds() + argon2_check_seconds()
    time.sleep(max(0.0, target - time.perf_counter()))


def _timed_with_margin(one_check: Callable[[], object]) -> float:
    """The seconds one check took, with FLOOR_MARGIN: a floor for failures."""
    started = time.perf_counter()
    one_check()
    return (time.perf_counter() - started) * FLOOR_MARGIN


@lru_cache(maxsize=1)
def _bcrypt_seconds(cost: int) -> float:
    dummy = f"$2b${cost:02d}${_DUMMY_SALT}{'A' * 31}"
    return _timed_with_margin(lambda: _bcrypt_matches(b"0" * 64, dummy))


# A bcrypt-era account's own check is not topped up when it takes longer than the
# floor, so the floor sits a quarter above the one measurement: a bcrypt check then
# has to run 25% slow to show, where with the bare measurement half of them did
# (the bench's enumeration section measured accounts 3 ms slower than strangers).
FLOOR_MARGIN = 1.25


def bcrypt_check_seconds() -> float:
    """What one bcrypt check at BCRYPT_COST costs in this environment, measured
    once (by the first failed login), with FLOOR_MARGIN, so failures can be made
    to cost at least that."""
    return _bcrypt_seconds(settings().bcrypt_cost)


@lru_cache(maxsize=4)
def _argon2_seconds(memory_kib: int, iterations: int) -> float:
    dummy = _dummy_hash(memory_kib, iterations)
    return _timed_with_margin(lambda: _argon2_matches(b"0" * 32, dummy))


def argon2_check_seconds() -> float:
    """What one Argon2id check at the configured cost costs in this
    environment, measured once (by the first failed login), with FLOOR_MARGIN."""
    cfg = settings()
    return _argon2_seconds(cfg.argon2_memory_kib, cfg.argon2_iterations)


@lru_cache(maxsize=4)
def _dummy_hash(memory_kib: int, iterations: int) -> str:
    return _hasher(memory_kib, iterations).hash(b"CareKey dummy: matches no pre-hash")


def prepare_dummy_check() -> str:
    """The dummy hash, made once per environment (and per Argon2 setting).  A
    login calls this before its checks: made inside the first dummy check
    instead, it would make an environment's first failed login dearer, by one
    Argon2id hash, for an address with an account (whose dummy check, the
    sign-up's, is not topped up) than for one without (whose dummy check is)."""
    cfg = settings()
    return _dummy_hash(cfg.argon2_memory_kib, cfg.argon2_iterations)


def dummy_check(password: str) -> Check:
    """Spend what a real check costs, for an email with no account (or no
    pending sign-up), so timing does not tell which emails are registered."""
    dummy = prepare_dummy_check()
    started = time.perf_counter()
    _argon2_matches(_prehash(password), dummy)
    return Check(False, None, time.perf_counter() - started)


def needs_rehash(stored: str) -> bool:
    """True when the hash is in an older format, or Argon2id with other parameters."""
    name, _, rest = stored.partition("$")
    if name != CURRENT:
        return True
    try:
        return _argon2().check_needs_rehash(rest)
    except (InvalidHashError, ValueError):
        return True


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


SAME_AS_CURRENT = "The new password must be different from the current one."


def policy_errors(password: str, email: str = "", first_name: str = "", last_name: str = "") -> list[str]:
    """Why this password is refused; an empty list means it is accepted."""
    cfg = settings()
    pw = normalise(password)
    problems: list[str] = []
    # Counted as typed and as normalised: NFKC can turn one character into many
    # (U+FDFA becomes 18), and a short password must not pass on its expansion.
    if min(len(password), len(pw)) < cfg.password_min_length:
        problems.append(f"This password is too short. It must contain at least {cfg.password_min_length} characters.")
    if max(len(password), len(pw)) > cfg.password_max_length:
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

"""Django users with Django's own password hashes, as `manage.py dumpdata users.CustomUser` writes them.

Used by the import section of `make bench` and to try `make import-users` by hand:

    .venv/bin/python -m bench.django_users 3000 .local/django-users.json

writes 3,000 users (every format in turn: pbkdf2_sha256, pbkdf2_sha1,
bcrypt_sha256, bcrypt, argon2, plus an unusable password every 50th) and, beside
the dump, `<name>.passwords.json` with the email and password of the first
users of each format.  The first user of each format is hashed at Django's own
default cost (PBKDF2 at 1,500,000 rounds...); the rest at low costs, so that
thousands are made in seconds (importing does not look at the cost).
Needs Django (requirements-dev.txt).
"""

from __future__ import annotations

import json
import secrets
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

FORMATS = ("pbkdf2_sha256", "pbkdf2_sha1", "bcrypt_sha256", "bcrypt", "argon2")


def hashers(default_cost: bool) -> dict[str, Any]:
    """Django's hasher for each format, at its default cost or at a low one."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher"], USE_TZ=True)
        django.setup()
    from django.contrib.auth import hashers as h

    if default_cost:
        return {
            "pbkdf2_sha256": h.PBKDF2PasswordHasher(),
            "pbkdf2_sha1": h.PBKDF2SHA1PasswordHasher(),
            "bcrypt_sha256": h.BCryptSHA256PasswordHasher(),
            "bcrypt": h.BCryptPasswordHasher(),
            "argon2": h.Argon2PasswordHasher(),
        }

    class Pbkdf2(h.PBKDF2PasswordHasher):
        iterations = 1000

    class Pbkdf2Sha1(h.PBKDF2SHA1PasswordHasher):
        iterations = 1000

    class BcryptSha256(h.BCryptSHA256PasswordHasher):
        rounds = 4

    class Bcrypt(h.BCryptPasswordHasher):
        rounds = 4

    class Argon2(h.Argon2PasswordHasher):
        time_cost, memory_cost, parallelism = 1, 64, 1

    return {"pbkdf2_sha256": Pbkdf2(), "pbkdf2_sha1": Pbkdf2Sha1(), "bcrypt_sha256": BcryptSha256(), "bcrypt": Bcrypt(), "argon2": Argon2()}


def make_password(password: str | None, hasher: Any) -> str:
    from django.contrib.auth.hashers import make_password as django_make_password

    return django_make_password(password, hasher=hasher)


def record(pk: int, email: str, password_hash: str, joined: datetime) -> dict[str, Any]:
    return {
        "model": "users.customuser",
        "pk": pk,
        "fields": {
            "password": password_hash,
            "last_login": None,
            "is_superuser": False,
            "email": email,
            "first_name": f"First{pk}",
            "last_name": f"Last{pk}",
            "phone_number": f"+1555{pk:07d}"[:16],
            "isVerified": pk % 20 != 0,
            "is_active": pk % 97 != 0,
            "date_joined": joined.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "groups": [],
            "user_permissions": [],
        },
    }


def generate(n: int, *, domain: str = "example.com", default_cost_per_format: int = 1) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(dump records, the email and password of every user hashed at Django's default cost)."""
    cheap, costly = hashers(False), hashers(True)
    records, known = [], []
    start = datetime(2019, 1, 1, tzinfo=timezone.utc)
    for i in range(n):
        pk = i + 1
        email = f"user{pk}@{domain}"
        joined = start + timedelta(hours=pk)
        if pk % 50 == 0:
            records.append(record(pk, email, make_password(None, cheap["pbkdf2_sha256"]), joined))
            continue
        algorithm = FORMATS[i % len(FORMATS)]
        password = f"legacy-{secrets.token_urlsafe(9)}"
        at_default = i // len(FORMATS) < default_cost_per_format
        records.append(record(pk, email, make_password(password, (costly if at_default else cheap)[algorithm]), joined))
        if at_default:
            known.append({"email": email, "password": password, "format": algorithm, "verified": str(pk % 20 != 0), "active": str(pk % 97 != 0)})
    return records, known


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[0].isdigit():
        print("usage: python -m bench.django_users COUNT OUT.json")
        return 2
    out = Path(argv[1])
    records, known = generate(int(argv[0]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(records, indent=1))
    side = out.with_suffix(".passwords.json")
    side.write_text(json.dumps(known, indent=1))
    print(f"wrote {len(records):,} users to {out}; the passwords of {len(known)} of them (Django's default costs) to {side}")
    return 0


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(root), str(root / "layers" / "common")]
    sys.exit(main(sys.argv[1:]))

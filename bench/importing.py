"""The import section of `make bench`: importing the Django backend's users.

- Throughput: `carekey.legacy_import.import_file` (what `make import-users`
  runs) on a dump of generated users (bench/django_users.py), into the
  emulator `make dev` uses (moto in server mode, over HTTP), users a second;
  then the same file again (every row skipped: what resuming an interrupted
  import costs).
- First login per legacy format, at Django's default costs: the Django check
  alone, the first login (check, then the upgrade to the service's Argon2id),
  the next login (native), and a wrong password (against a native account's
  and a stranger's: every failed login answers at the same time after it
  began, one bcrypt check at BCRYPT_COST plus one Argon2id check, each measured
  once with a quarter added), through the local gateway, Argon2id parameters and bcrypt cost
  as the template's.

`python -m bench import` runs this section alone and rewrites its part of
docs/performance.md; `make bench` runs it with the rest.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import sections

BEGIN, END = "<!-- import:begin -->", "<!-- import:end -->"


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure(stack: Any, users: int = 5000, logins: int = 5) -> dict[str, Any]:
    import boto3
    from moto.server import ThreadedMotoServer

    from bench import django_users
    from local.emulator import provision, serialise_dynamodb
    from local.gateway import Gateway
    from local.server import _free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "LOGIN_LOCKOUT_THRESHOLD", "LOGIN_FAILURES_PER_HOUR")}
    serialise_dynamodb()
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        # Wrong passwords are measured many times for few accounts: no lockout in the way.
        os.environ.update({"AWS_ENDPOINT_URL": endpoint, "LOGIN_LOCKOUT_THRESHOLD": "1000000", "LOGIN_FAILURES_PER_HOUR": "1000000"})
        session = boto3.Session(region_name=stack.region)
        provision(stack, session, endpoint_url=endpoint)
        from carekey import aws, django_hashes, keys, legacy_import, passwords, store
        from carekey.api import Client
        from carekey.config import reload_settings, settings

        aws.reset_clients()
        keys.forget_cached_keys()
        reload_settings()
        cfg = settings()  # the password hash the service runs with here
        boto3.setup_default_session(region_name=stack.region)
        operator = Client(ip="operator", user_agent="bench", request_id="bench-import")

        # Throughput: a dump like `make import-users` reads.
        generated_started = time.perf_counter()
        records, _ = django_users.generate(users, domain="bulk.example.com", default_cost_per_format=0)
        generated = time.perf_counter() - generated_started
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "users.json"
            path.write_text(json.dumps(records))
            started = time.perf_counter()
            first = legacy_import.import_file(path, operator)
            first_seconds = time.perf_counter() - started
            started = time.perf_counter()
            again = legacy_import.import_file(path, operator)
            again_seconds = time.perf_counter() - started

        phases = {"generate": generated, "import": first_seconds + again_seconds}
        started = time.perf_counter()
        # First logins: `logins` users of each format at Django's default cost.
        hashers = django_users.hashers(True)
        from bench.django_users import record

        known: dict[str, list[tuple[str, str, str]]] = {}
        login_records = []
        pk = 10_000_000
        joined = records[0]["fields"]["date_joined"]
        for algorithm, hasher in hashers.items():
            for i in range(logins + (algorithm == "bcrypt")):  # one more: upgraded first, the native account
                pk += 1
                email, password = f"{algorithm}.{i}@login.example.com", f"legacy-password-{pk}"
                django_hash = django_users.make_password(password, hasher)
                known.setdefault(algorithm, []).append((email, password, django_hash))
                rec = record(pk, email, django_hash, time_from(joined))
                rec["fields"].update(isVerified=True, is_active=True)
                login_records.append(rec)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "login-users.json"
            path.write_text(json.dumps(login_records))
            assert legacy_import.import_file(path, operator).imported == len(login_records)

        phases["hash logins"] = time.perf_counter() - started
        started = time.perf_counter()
        from tests.client import ApiClient

        api = ApiClient(Gateway(stack), outbox=None)  # type: ignore[arg-type]

        def login_ms(email: str, password: str, expect: int) -> float:
            started = time.perf_counter()
            status = api.post("/login", {"email": email, "password": password}).status
            seconds = time.perf_counter() - started
            if status != expect:
                raise RuntimeError(f"login of {email} answered {status}, not {expect}")
            return seconds

        # A native account to compare with, and every function warmed up.
        native_email, native_password, _ = known["bcrypt"].pop()
        login_ms(native_email, native_password, 200)  # upgraded: native from now on
        login_ms("warm-up@login.example.com", "not-the-password", 401)
        formats: dict[str, dict[str, float]] = {}
        native_right = [login_ms(native_email, native_password, 200) for _ in range(logins)]
        native_wrong = [login_ms(native_email, "not-the-password", 401) for _ in range(logins)]
        stranger_wrong = [login_ms(f"stranger{i}@login.example.com", "not-the-password", 401) for i in range(logins)]
        for algorithm, accounts in known.items():
            check, first_login, next_login, wrong = [], [], [], []
            for email, password, django_hash in accounts:
                started = time.perf_counter()
                assert django_hashes.verify(password, django_hash)
                check.append(time.perf_counter() - started)
                wrong.append(login_ms(email, "not-the-password", 401))
                first_login.append(login_ms(email, password, 200))
                if not store.user_by_email(email).password_hash.startswith(f"{passwords.CURRENT}$"):
                    raise RuntimeError(f"{algorithm}: the first login did not upgrade the hash")
                next_login.append(login_ms(email, password, 200))
            formats[algorithm] = {
                "cost": _cost_of(accounts[0][2]),
                "check_ms": _median_ms(check),
                "first_login_ms": _median_ms(first_login),
                "next_login_ms": _median_ms(next_login),
                "wrong_ms": _median_ms(wrong),
            }
        phases["logins"] = time.perf_counter() - started
        return {
            "phases": phases,
            "users": users,
            "generate_seconds": generated,
            "import": {"imported": first.imported, "refused": len(first.refused), "seconds": first_seconds, "rate": users / first_seconds},
            "again": {"skipped": again.skipped, "seconds": again_seconds, "rate": users / again_seconds},
            "formats": formats,
            "native": {"login_ms": _median_ms(native_right), "wrong_ms": _median_ms(native_wrong), "stranger_ms": _median_ms(stranger_wrong)},
            "argon2_memory_kib": cfg.argon2_memory_kib,
            "argon2_iterations": cfg.argon2_iterations,
            "bcrypt_cost": cfg.bcrypt_cost,
            "logins": logins,
        }
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        from carekey import aws, keys
        from carekey.config import reload_settings

        aws.reset_clients()
        keys.forget_cached_keys()
        reload_settings()


def time_from(iso: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(iso)


def _cost_of(django_hash: str) -> str:
    algorithm, _, rest = django_hash.partition("$")
    if algorithm.startswith("pbkdf2"):
        return f"{int(rest.split('$')[0]):,} rounds"
    if algorithm.startswith("bcrypt"):
        return f"cost {int(rest.split('$')[2])}"
    params = rest.split("$")[2]
    return params.replace(",", ", ")


def _native_hash(results: dict[str, Any]) -> tuple[str, str, str]:
    """(the service's own hash, its parameters, when a failed login answers)
    as measured; a run recorded before Argon2id (no Argon2id parameters) upgraded
    to bcrypt and topped a failed check up to a native check's time."""
    if "argon2_memory_kib" not in results:
        return "bcrypt", f"bcrypt cost {results['bcrypt_cost']}", "a native check's time"
    params = f"Argon2id {results['argon2_memory_kib']:,} KiB, t={results['argon2_iterations']}, p=1"
    from carekey.passwords import FLOOR_MARGIN

    margin = f"{FLOOR_MARGIN - 1:.0%}"
    return "Argon2id", params, f"one bcrypt check at cost {results['bcrypt_cost']} plus one Argon2id check after the login began (each measured once, with {margin} added)"


def section(results: dict[str, Any]) -> str:
    imp, again, native = results["import"], results["again"], results["native"]
    own, params, floor = _native_hash(results)
    rows = [
        f"| {name} | {f['cost']} | {f['check_ms']:.0f} | {f['first_login_ms']:.0f} | {f['next_login_ms']:.0f} | {f['wrong_ms']:.0f} |"
        for name, f in results["formats"].items()
    ]
    return "\n".join(
        [
            BEGIN,
            "## Importing the Django backend's users",
            "",
            f"`make import-users` (`carekey/legacy_import.py`) on a dump of {results['users']:,} generated users",
            "(`bench/django_users.py`: every format, an unusable password every 50th), into the",
            "emulator `make dev` uses (moto in server mode, over HTTP), from one process:",
            "",
            f"- **{imp['rate']:,.0f} users a second** ({imp['imported']:,} imported in {imp['seconds']:.1f} s; {imp['refused']} refused):",
            "  per 100 rows one BatchGetItem of the claims, two conditional PutItems a row (its pk's claim,",
            "  then its email's; eight in flight), four BatchWriteItems of 25 accounts and one audit event.",
            f"- The same file again: **{again['rate']:,.0f} rows a second**, all {again['skipped']:,} skipped",
            "  (what resuming an interrupted import costs for the rows already in).",
            "",
            f"First login of an imported account per Django format, at Django's default costs; the service's {params},",
            f"a failed login answering {floor},",
            f"medians of {results['logins']} accounts each (ms), through the local gateway, one format after another",
            "(a busy machine moves the rows measured at different moments by 10-20 %):",
            "",
            "| Django format | cost | Django check alone | first login (check + upgrade) | next login (native) | wrong password |",
            "|---|---|---|---|---|---|",
            *rows,
            f"| native account | {params} | - | - | {native['login_ms']:.0f} | {native['wrong_ms']:.0f} |",
            f"| no account | - | - | - | - | {native['stranger_ms']:.0f} |",
            "",
            f"A first login pays the Django check and one {own} hash for the upgrade, once; every login",
            "after it costs what a native one does. A wrong password costs an imported account what it",
            "costs a native account or a stranger: whichever checks ran (Django's, the service's own or",
            f"a stranger's dummy), the answer comes {floor}.",
            "`tests/test_legacy_import.py` compares them interleaved. A Django check dearer than that",
            "wait (PBKDF2 at 1,500,000 rounds) makes it dearer by the difference, until that account's first login.",
            END,
        ]
    )


def write(results: dict[str, Any], markdown: Path) -> None:
    """Put the section into docs/performance.md, replacing the previous one."""
    sections.replace(markdown, BEGIN, END, section(results))

"""`make load`: Locust, headless, against the local API that `make dev` runs.

Starts the local API on a free port (the same server as `make dev`, with the
password hash as deployed: Argon2id at the template's ARGON2_MEMORY_KIB and
ARGON2_ITERATIONS, and its BCRYPT_COST, the time a failed password check is
made to take; the shell's values win), creates the accounts through the API
itself (register, the emailed code, verify), runs bench/locustfile.py for
LOAD_USERS users over LOAD_SECONDS, then checks what the server answered (its
own log: every status code, so a 5xx cannot hide behind a client-side count)
and that the audit trail verifies with at least one record for every audited
answer.  Writes docs/load.json, which `make bench` renders as the report's
load section, and prints a summary.

Bounded: LOAD_USERS (default 50) for LOAD_SECONDS (default 120), loopback only.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import requests

from bench.source_address import SourceAddress
from local import runner
from local.template import ROOT, Stack

USERS = int(os.environ.get("LOAD_USERS", "50"))
SECONDS = int(os.environ.get("LOAD_SECONDS", "120"))
SPAWN_RATE = max(1, USERS // 10)
PEOPLE = USERS
VICTIMS = 5
PASSWORD = "quiet-orchard-lantern-77"
LOCUST = ROOT / ".venv-load" / "bin" / "locust"
OUT = ROOT / "docs" / "load.json"
# Answers that write an audit record each (a refused or limited request may not).
# A routine token refresh does not: its session counts it and one summary an hour
# reaches the trail (docs/audit.md), so a two-minute run leaves none.
AUDITED = {("POST", "/login"), ("POST", "/forgot-password")}
LINE = re.compile(r"^(\w+) (\S+) -> (\d{3}) \((\d+) ms\)$")
# The password hash the API runs with: the template's defaults unless the shell sets them.
_TEMPLATE = Stack().service_environment()
HASH_SETTINGS = {name: os.environ.get(name, _TEMPLATE[name]) for name in ("ARGON2_MEMORY_KIB", "ARGON2_ITERATIONS", "BCRYPT_COST")}




def _code(api: runner.LocalApi, email: str, deadline_s: float = 30.0) -> str:
    """The newest code emailed to an address (emails may leave through a queue)."""
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        mails = api.emails_to(email)
        if mails:
            match = re.search(r"\b(\d{6})\b", mails[-1]["text"])
            if match:
                return match.group(1)
        time.sleep(0.05)
    raise RuntimeError(f"no code emailed to {email} within {deadline_s:.0f} s")


def _create_account(api: runner.LocalApi, email: str, n: int) -> None:
    http = requests.Session()
    http.mount("http://", SourceAddress(f"127.0.3.{n % 250 + 1}"))  # one sign-up per address: per-address sign-up limits hold
    body = {"email": email, "first_name": "Load", "last_name": f"Person{n}", "password": PASSWORD, "password2": PASSWORD}
    r = http.post(api.url + "/register", json=body, timeout=60)
    if r.status_code != 201:
        raise RuntimeError(f"register {email}: {r.status_code} {r.text[:200]}")
    r = http.post(api.url + "/verify-otp", json={"email": email, "otp": _code(api, email)}, timeout=60)
    if r.status_code != 200:
        raise RuntimeError(f"verify {email}: {r.status_code} {r.text[:200]}")


def _server_answers(log: Path) -> dict[str, Counter]:
    answers: dict[str, Counter] = defaultdict(Counter)
    for line in log.read_text().splitlines():
        m = LINE.match(line.strip())
        if m:
            answers[f"{m.group(1)} {m.group(2)}"][m.group(3)] += 1
    return answers


def _locust_stats(prefix: Path) -> list[dict]:
    rows = []
    with open(f"{prefix}_stats.csv", newline="") as f:
        for row in csv.DictReader(f):
            rows.append(
                {
                    "name": row["Name"],
                    "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "rps": float(row["Requests/s"]),
                    "p50_ms": float(row["50%"] or 0),
                    "p95_ms": float(row["95%"] or 0),
                    "p99_ms": float(row["99%"] or 0),
                }
            )
    return rows


def _audit_verify() -> tuple[int, bool, str]:
    """`make audit-verify` against the running API's emulator: (records, intact, its last line)."""
    done = subprocess.run([sys.executable, "-m", "local.audit_tool", "verify"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    counted = re.search(r"(\d[\d,]*) (?:audit )?records", done.stdout)
    return (int(counted.group(1).replace(",", "")) if counted else 0), done.returncode == 0, last


def main() -> int:
    if not LOCUST.exists():
        print("Locust is not installed: run `make load` (it installs .venv-load).")
        return 2
    work = Path(tempfile.mkdtemp(prefix="carekey-load-"))
    api = runner.start(work, **HASH_SETTINGS)
    try:
        started = time.time()
        people = [f"load.person{n}@example.com" for n in range(PEOPLE)]
        victims = [f"load.victim{n}@example.com" for n in range(VICTIMS)]
        for n, email in enumerate(people + victims):
            _create_account(api, email, n)
        print(f"{len(people) + len(victims)} accounts created through the API in {time.time() - started:.0f} s", flush=True)
        accounts = work / "accounts.json"
        accounts.write_text(json.dumps({"people": [{"email": e, "password": PASSWORD} for e in people], "victims": victims}))
        mark = len(api.log.read_text().splitlines())
        before, _, _ = _audit_verify()

        prefix = work / "locust"
        command = [
            str(LOCUST), "-f", str(ROOT / "bench" / "locustfile.py"), "--headless", "--only-summary",
            "-u", str(USERS), "-r", str(SPAWN_RATE), "-t", f"{SECONDS}s", "--stop-timeout", "10",
            "--host", api.url, "--csv", str(prefix), "--exit-code-on-error", "0", "--loglevel", "WARNING",
        ]  # fmt: skip
        env = {**os.environ, "LOAD_ACCOUNTS": str(accounts)}
        subprocess.run(command, check=True, env=env, cwd=ROOT, timeout=SECONDS + 120)

        lines = api.log.read_text().splitlines()[mark:]
        during = work / "during.log"
        during.write_text("\n".join(lines))
        answers = _server_answers(during)
        server_5xx = sum(n for codes in answers.values() for code, n in codes.items() if code.startswith("5"))
        audited_answers = sum(
            n
            for route, codes in answers.items()
            if tuple(route.split(" ", 1)) in AUDITED
            for code, n in codes.items()
            if code in ("200", "401", "403")
        )
        # The audit writer works after the answers, from its queue: wait until it has
        # caught up (the count stops growing) before checking the trail, at most 5 minutes.
        after, verify_ok, verify_line = _audit_verify()
        settle = time.time() + 300
        while time.time() < settle:
            time.sleep(10)
            again, verify_ok, verify_line = _audit_verify()
            if again == after:
                break
            after = again
        audit_records = after - before
    finally:
        api.stop()

    stats = _locust_stats(prefix)
    result = {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "users": USERS,
        "seconds": SECONDS,
        "machine_cores": os.cpu_count(),
        "argon2_memory_kib": int(HASH_SETTINGS["ARGON2_MEMORY_KIB"]),
        "argon2_iterations": int(HASH_SETTINGS["ARGON2_ITERATIONS"]),
        "bcrypt_cost": int(HASH_SETTINGS["BCRYPT_COST"]),
        "endpoints": stats,
        "server_answers": {route: dict(sorted(codes.items())) for route, codes in sorted(answers.items())},
        "server_5xx": server_5xx,
        "audited_answers": audited_answers,
        "audit_records": audit_records,
        "audit_verify_ok": verify_ok,
        "audit_verify": verify_line,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    total = next((r for r in stats if r["name"] == "Aggregated"), None)
    print(f"\n{USERS} users for {SECONDS} s: {total['requests'] if total else 0} requests, {total['rps'] if total else 0:.1f} a second")
    for row in stats:
        print(f"  {row['name']:32} {row['requests']:6} req  p50 {row['p50_ms']:6.0f} ms  p95 {row['p95_ms']:6.0f} ms  p99 {row['p99_ms']:6.0f} ms  failures {row['failures']}")
    print(f"server 5xx answers: {server_5xx}")
    print(f"audit: {verify_line}; {audit_records} records written during the run for {audited_answers} audited answers")
    print(f"written to {OUT.relative_to(ROOT)}")
    complete = verify_ok and audit_records >= audited_answers
    return 0 if server_5xx == 0 and complete else 1


if __name__ == "__main__":
    sys.exit(main())

"""`make audit-verify` and `make audit-export EMAIL=...`.

Against a deployed stack when STACK_NAME is set (credentials with the stack's
AuditReadPolicy; the stack's parameter values are read, AuditHotDays among
them), else against the emulator of a running `make dev` (its endpoint is in
.local/emulator.json).  With neither, or when the target does not answer, each
says so in one line and exits 2.  Settings from the shell win (e.g.
AUDIT_HOT_DAYS=30 make audit-verify).

`export` prints the whole trail: the locked archive's records (all of them,
past the audit table's hot window too) and any DynamoDB holds that are not
archived yet.  It reads the whole archive, so it takes as long as `verify`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from local.template import ROOT

STATE = ROOT / ".local" / "emulator.json"


class Unreachable(Exception):
    """The audit trail cannot be reached: said in one line, no traceback."""


def _emulator_answers(endpoint: str) -> bool:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=2):
            return True
    except OSError:
        return False


def _connect() -> str:
    from local.server import DeployedStack, _deployed_parameters, _deployed_stack, configure_environment
    from local.template import Stack

    region = os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
    deployed = os.environ.get("STACK_NAME")
    if deployed:
        try:
            DeployedStack.physical = _deployed_stack(deployed, region)
            # The deployed values (AuditHotDays: how long DynamoDB keeps records, which verify needs)
            parameters = _deployed_parameters(deployed, region)
        except Exception as exc:  # noqa: BLE001 - any AWS failure is one line for the operator
            raise Unreachable(f"cannot read stack {deployed} in {region}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
        stack: Stack = DeployedStack(name=deployed, region=region, overrides=parameters)
        where = f"stack {deployed} ({region})"
    else:
        if not STATE.exists():
            raise Unreachable("no running `make dev` found (.local/emulator.json) and no STACK_NAME set: start `make dev` or set STACK_NAME")
        state = json.loads(STATE.read_text())
        if not _emulator_answers(state["endpoint"]):
            raise Unreachable(f"the `make dev` emulator at {state['endpoint']} does not answer: start `make dev` or set STACK_NAME")
        os.environ.update({"AWS_ENDPOINT_URL": state["endpoint"], "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"})
        stack = Stack(name=state["stack"], region=region)
        where = f"the `make dev` emulator ({state['endpoint']})"
    configure_environment(stack)
    if deployed:
        os.environ["PEPPER_SECRET_ID"] = stack.physical_name("PepperSecret")
    sys.path.insert(0, str(ROOT / "layers" / "common"))
    return where


def verify() -> int:
    from carekey import audit_verify

    verdict = audit_verify.verify()
    for seq, problem in verdict.problems:
        print(f"TAMPERED at record {seq}: {problem}")
    from carekey.config import settings

    def count(n: int, what: str) -> str:
        return f"{n} {what}{'' if n == 1 else 's'}"

    past = ""
    if verdict.expired or verdict.expired_seals:
        gone = f"{count(verdict.expired, 'record')} and {count(verdict.expired_seals, 'seal')}"
        past = f" ({gone} past the {settings().audit_hot_days}-day hot window, there only)"
    summary = (
        f"{verdict.records} audit records in DynamoDB, {verdict.archived} in the locked archive{past}, "
        f"verified in {verdict.seconds:.2f}s ({verdict.rate:,.0f} records/s): "
    )
    if verdict.intact:
        print(summary + "chain intact, every MAC valid, both copies agree")
        return 0
    print(summary + f"{len(verdict.problems)} problem(s); the first bad record is {verdict.first_bad}")
    return 1


def export(email: str) -> int:
    """The person's whole trail: every record in the locked archive (past the
    audit table's hot window too), and those DynamoDB holds that are not archived
    yet (the writer's last batch, being stored).  Records naming the person's id
    while the account exists, and those naming only the keyed hash of the address."""
    from carekey import audit_verify, otp, store
    from carekey.schemas import normalise_email

    email = normalise_email(email)
    user = store.user_by_email(email)
    key = otp.email_key(email)
    subjects = {key} | ({user.user_id} if user else set())
    records = {r["seq"]: r for s in subjects for r in audit_verify.trail_of(s)}
    records.update({r["seq"]: r for r in audit_verify.archived_trail_of(subjects)})  # the locked copy wins
    ordered = sorted(records.values(), key=lambda r: r["seq"])
    print(json.dumps({"email_hash": key, "user_id": user.user_id if user else None, "records": ordered}, indent=2, default=str))
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("verify", "export"):
        print("usage: python -m local.audit_tool verify | export EMAIL")
        return 2
    if argv[0] == "export" and (len(argv) < 2 or not argv[1]):
        print("usage: make audit-export EMAIL=person@example.com")
        return 2
    try:
        where = _connect()
    except Unreachable as exc:
        print(f"audit-{argv[0]}: {exc}")
        return 2
    try:
        return verify() if argv[0] == "verify" else export(argv[1])
    except Exception as exc:  # noqa: BLE001 - a failing call becomes one line, not a traceback
        first = (str(exc).splitlines() or [""])[0][:200]
        print(f"audit-{argv[0]}: cannot read the audit trail of {where}: {type(exc).__name__}: {first}")
        return 2


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main(sys.argv[1:]))

"""`make audit-verify` and `make audit-export EMAIL=...`.

Against a deployed stack when STACK_NAME is set (real credentials), else
against the emulator of a running `make dev` (its endpoint is in
.local/emulator.json).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from local.template import ROOT

STATE = ROOT / ".local" / "emulator.json"


def _connect() -> None:
    from local.server import DeployedStack, _deployed_stack, configure_environment
    from local.template import Stack

    region = os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    deployed = os.environ.get("STACK_NAME")
    if deployed:
        DeployedStack.physical = _deployed_stack(deployed, region)
        stack: Stack = DeployedStack(name=deployed, region=region)
    else:
        if not STATE.exists():
            sys.exit("No running `make dev` found (.local/emulator.json) and no STACK_NAME set.")
        state = json.loads(STATE.read_text())
        os.environ.update({"AWS_ENDPOINT_URL": state["endpoint"], "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"})
        stack = Stack(name=state["stack"], region=region)
    configure_environment(stack)
    if deployed:
        os.environ["PEPPER_SECRET_ID"] = stack.physical_name("PepperSecret")
    sys.path.insert(0, str(ROOT / "layers" / "common"))


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("verify", "export"):
        print("usage: python -m local.audit_tool verify | export EMAIL")
        return 2
    _connect()
    from carekey import audit, otp, store
    from carekey.schemas import normalise_email

    if argv[0] == "verify":
        count, problems = audit.verify_all()
        for p in problems:
            print(f"TAMPERED {p}")
        print(f"{count} audit records in {audit.CHAINS} chains: " + ("chains intact" if not problems else f"{len(problems)} problem(s)"))
        return 1 if problems else 0
    if len(argv) < 2 or not argv[1]:
        print("usage: make audit-export EMAIL=person@example.com")
        return 2
    email = normalise_email(argv[1])
    user = store.user_by_email(email)
    records = audit.trail_of(otp.email_key(email)) + (audit.trail_of(user.user_id) if user else [])
    records.sort(key=lambda r: r["at"])
    print(json.dumps({"email_hash": otp.email_key(email), "user_id": user.user_id if user else None, "records": records}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main(sys.argv[1:]))

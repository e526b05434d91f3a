"""`make fuzz`: schemathesis against the local API, every operation, bounded in time.

Starts the local API with limits raised (so the fuzzer exercises the flows,
not only the rate limiter; the limits have their own tests), signs a user in
so protected operations are exercised with a real token too, and runs
`st run` with schemathesis.toml, which chooses the checks (every one but
positive_data_acceptance; no --checks flag here, as a CLI flag would override
the file's per-operation settings).  Exits with schemathesis's status.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from local import runner
from local.template import ROOT

FUZZ_ENV = {
    "BCRYPT_COST": "4",
    "ARGON2_MEMORY_KIB": "1024",
    "ACCESS_TOKEN_MINUTES": "60",
    "OTP_RESEND_COOLDOWN_SECONDS": "0",
    "OTP_SENDS_PER_HOUR": "1000000",
    "OTP_FAILURES_PER_DAY": "1000000",
    "IP_FAILURES_PER_HOUR": "1000000",
    "IP_REGISTRATIONS_PER_HOUR": "1000000",
    "LOGIN_LOCKOUT_THRESHOLD": "1000000",
    "LOGIN_FAILURES_PER_HOUR": "1000000",
}


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        api = runner.start(Path(tmp), **FUZZ_ENV)
        try:
            login = api.signed_in_user("schemathesis@example.com", "quiet-orchard-lantern-2026")
            # /logout gets a user of its own, so ending sessions does not sign the other operations out.
            leaver = api.signed_in_user("schemathesis.logout@example.com", "amber-meadow-violin-2026")
            env = {**os.environ, "API_TOKEN": login["access"], "LOGOUT_TOKEN": leaver["access"]}
            st = Path(sys.executable).parent / "st"
            cmd = [str(st), "run", f"{api.url}/openapi.json", "--workers", "2", "--max-time", os.environ.get("FUZZ_SECONDS", "300"), *argv]
            print("$ " + " ".join(cmd), flush=True)
            result = subprocess.run(cmd, cwd=ROOT, env=env)
            server_errors = [ln for ln in api.log.read_text().splitlines() if "-> 5" in ln]
            if server_errors:
                print(f"local API answered {len(server_errors)} request(s) with 5xx:\n" + "\n".join(server_errors[:20]))
                return 1
            return result.returncode
        finally:
            api.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

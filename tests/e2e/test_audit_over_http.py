"""The audit trail of a running local API: written by the writer in the
background, verified and exported by `make audit-verify` / `make audit-export`,
and a rewrite made by hand is caught."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import boto3
import pytest

from local.template import ROOT, Stack

pytestmark = pytest.mark.e2e

PASSWORD = "violet-kettle-harbour-42"


def _tool(*args: str) -> subprocess.CompletedProcess:
    service = set(Stack().service_environment())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "STACK_NAME" and k not in service}
    return subprocess.run([sys.executable, "-m", "local.audit_tool", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_verify_export_and_a_hand_made_rewrite_caught(local_api):
    # Given a person who registered, verified and logged in over HTTP
    local_api.signed_in_user("trail@example.com", PASSWORD)
    # When the background writer has caught up
    deadline = time.time() + 60
    while True:
        done = _tool("verify")
        if done.returncode == 0 and "chain intact" in done.stdout and not done.stdout.startswith(("0 ", "1 ", "2 ")):
            break
        assert time.time() < deadline, done.stdout + done.stderr
        time.sleep(0.5)
    # Then verify reports every record checked, with its rate
    assert "every MAC valid, both copies agree" in done.stdout and "records/s" in done.stdout
    # And export prints the person's trail as JSON
    exported = _tool("export", "trail@example.com")
    assert exported.returncode == 0, exported.stdout + exported.stderr
    trail = json.loads(exported.stdout)
    assert {(r["event"], r["outcome"]) for r in trail["records"]} >= {("register", "success"), ("verify_email", "success"), ("login", "success")}

    # When someone rewrites a record by hand in the emulator's table
    state = json.loads((ROOT / ".local" / "emulator.json").read_text())
    ddb = boto3.client("dynamodb", endpoint_url=state["endpoint"], region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")
    seq = trail["records"][-1]["seq"]
    ddb.update_item(
        TableName=Stack(name=state["stack"]).physical_name("AuditTable"),
        Key={"chain": {"S": "trail"}, "seq": {"N": str(seq)}},
        UpdateExpression="SET outcome = :o",
        ExpressionAttributeValues={":o": {"S": "failure"}},
    )
    # Then verify names it and fails
    caught = _tool("verify")
    assert caught.returncode == 1
    assert f"TAMPERED at record {seq}" in caught.stdout and f"the first bad record is {seq}" in caught.stdout
    assert "Traceback" not in caught.stdout + caught.stderr

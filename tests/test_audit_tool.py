"""`make audit-verify` and `make audit-export` say in one line when they have
nothing to talk to, instead of a traceback; against a deployed stack they use
its parameter values, and an export is the whole trail, from the archive."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
from carekey import audit_trail, audit_verify, otp, store
from carekey.config import reload_settings, settings

from local import audit_tool
from local.server import DeployedStack
from local.template import ROOT


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "local.audit_tool", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _env(tmp_path, **extra: str) -> dict[str, str]:
    from local.template import Stack

    service = set(Stack().service_environment())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "STACK_NAME" and k not in service}
    return {**env, "PATH": os.environ["PATH"], **extra}


def test_without_make_dev_or_stack_name_each_verb_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    # Given no emulator state file and no STACK_NAME
    monkeypatch.setattr(audit_tool, "STATE", tmp_path / "missing.json")
    monkeypatch.delenv("STACK_NAME", raising=False)
    for verb in (["verify"], ["export", "ada@example.com"]):
        # When the tool runs
        code = audit_tool.main(verb)
        out = capsys.readouterr()
        # Then it prints one line naming both ways out, and exits 2
        assert code == 2
        lines = out.out.strip().splitlines()
        assert len(lines) == 1 and "make dev" in lines[0] and "STACK_NAME" in lines[0], out.out
        assert "Traceback" not in out.out + out.err


def test_a_stale_make_dev_state_is_one_line_too(tmp_path, monkeypatch, capsys):
    # Given the state file of a `make dev` that has stopped
    from local.runner import free_port

    state = tmp_path / "emulator.json"
    state.write_text(json.dumps({"endpoint": f"http://127.0.0.1:{free_port()}", "stack": "carekey-local", "pid": 1}))
    monkeypatch.setattr(audit_tool, "STATE", state)
    monkeypatch.delenv("STACK_NAME", raising=False)
    code = audit_tool.main(["verify"])
    out = capsys.readouterr()
    assert code == 2
    assert out.out.count("\n") == 1 and "does not answer" in out.out


def test_the_make_verbs_print_one_line_without_a_traceback(tmp_path):
    # Given a shell with no STACK_NAME, no AWS settings and no running `make dev`
    env = _env(tmp_path)
    if (ROOT / ".local" / "emulator.json").exists():
        env["STACK_NAME"] = ""  # a developer's own `make dev` state is not ours to move
    done = _run("export", "", env=env)
    # Then a missing EMAIL is a usage line
    assert done.returncode == 2 and done.stdout.strip() == "usage: make audit-export EMAIL=person@example.com"
    assert "Traceback" not in done.stderr


def test_an_export_is_the_whole_trail_from_the_locked_archive(api, monkeypatch, capsys):
    # Given a person's trail, then 91 days later DynamoDB's TTL has deleted it, records and seals (past the hot window)
    api.verified_user("old@example.com")
    api.login("old@example.com")
    written = [int(item.seq) for item in audit_trail.AuditRecord.query(audit_trail.TRAIL)]  # all about them
    assert len(written) == 3
    later = store.now() + 91 * 86400
    monkeypatch.setattr(store, "now", lambda: later)
    ddb = boto3.client("dynamodb")
    sealed = [int(item.seq) for item in audit_trail.AuditRecord.query(audit_trail.SEAL)]
    for chain, seqs in (("trail", written), ("seal", sealed)):
        for seq in seqs:
            ddb.delete_item(TableName=settings().audit_table, Key={"chain": {"S": chain}, "seq": {"N": str(seq)}})
    assert audit_verify.verify().problems == []
    # And verify says what is in the archive only
    capsys.readouterr()
    assert audit_tool.verify() == 0
    seals = f"{len(sealed)} seal{'' if len(sealed) == 1 else 's'}"
    assert f"0 audit records in DynamoDB, 3 in the locked archive (3 records and {seals} past the 90-day hot window, there only)" in capsys.readouterr().out
    # When it is exported
    capsys.readouterr()
    assert audit_tool.export("Old@Example.com") == 0
    exported = json.loads(capsys.readouterr().out)
    # Then every record about the person is there, read from the archive, in chain order
    events = [(r["event"], r["outcome"]) for r in exported["records"]]
    assert {("register", "success"), ("verify_email", "success"), ("login", "success")} <= set(events)
    assert [r["seq"] for r in exported["records"]] == written
    assert exported["email_hash"] == otp.email_key("old@example.com") and exported["user_id"]
    assert all(r["hash"] == audit_trail.digest(r) for r in exported["records"])


def test_against_a_deployed_stack_the_tools_use_its_parameter_values(monkeypatch):
    # Given a deployed stack whose audit table keeps 30 days, and a shell that does not set AUDIT_HOT_DAYS
    boto3.client("cloudformation").create_stack(
        StackName="carekey-prod",
        TemplateBody=json.dumps({
            "Parameters": {"AuditHotDays": {"Type": "Number", "Default": 90}},
            "Resources": {"AuditQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "carekey-prod-audit"}}},
        }),
        Parameters=[{"ParameterKey": "AuditHotDays", "ParameterValue": "30"}],
    )
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k != "AUDIT_HOT_DAYS"})
    monkeypatch.setattr(DeployedStack, "physical", {})
    monkeypatch.setenv("STACK_NAME", "carekey-prod")
    # When the tool connects to it
    audit_tool._connect()
    # Then verify and export judge the hot window by the deployed 30 days, not the template's default
    assert os.environ["AUDIT_HOT_DAYS"] == "30"
    assert reload_settings().audit_hot_days == 30

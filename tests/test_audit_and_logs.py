"""The audit trail is complete and tamper-evident; logs never hold a secret."""

from __future__ import annotations

import io
import json
import logging

import boto3
import pytest
from carekey import audit, otp

from tests.client import PASSWORD

NEW = "another-long-passphrase-9"


@pytest.fixture
def full_flow(api, settings_override):
    """Given one person's whole life cycle through the API."""
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0", REFRESH_REUSE_SECONDS="0")
    email = "audited@example.com"
    secrets: list[str] = [PASSWORD, NEW]
    api.register(email)
    secrets.append(api.latest_code(email))
    api.post("/verify-otp", {"email": email, "otp": "000000"})
    api.post("/verify-otp", {"email": email, "otp": secrets[-1]})
    api.post("/login", {"email": email, "password": "wrong-password-x"})
    pair = api.login(email)
    secrets += [pair["access"], pair["refresh"]]
    refreshed = api.post("/token/refresh", {"refresh": pair["refresh"]}).json()
    secrets += [refreshed["access"], refreshed["refresh"]]
    api.post("/token/refresh", {"refresh": pair["refresh"]})  # replay: the session ends
    fresh = api.login(email)
    secrets += [fresh["access"], fresh["refresh"]]
    api.put("/profile", {"first_name": "Audra"}, token=fresh["access"])
    api.post("/forgot-password", {"email": email})
    reset_code = api.latest_code(email)
    secrets.append(reset_code)
    api.post("/reset-password", {"email": email, "otp": reset_code, "new_password": NEW, "confirm_password": NEW})
    last = api.login(email, NEW)
    secrets += [last["access"], last["refresh"]]
    api.post("/logout", {}, token=last["access"])
    return email, secrets


def test_every_auth_event_is_recorded_and_the_chains_verify(full_flow):
    email, _ = full_flow
    count, problems = audit.verify_all()
    assert problems == []
    from carekey import store

    user = store.user_by_email(email)
    trail = audit.trail_of(user.user_id) + audit.trail_of(otp.email_key(email))
    events = {(r["event"], r["outcome"]) for r in trail}
    for expected in [
        ("register", "success"),
        ("verify_email", "failure"),
        ("verify_email", "success"),
        ("login", "failure"),
        ("login", "success"),
        ("refresh", "success"),
        ("refresh", "reuse_detected"),
        ("profile.update", "success"),
        ("password_reset.requested", "sent"),
        ("password_reset.done", "success"),
        ("logout", "this_session"),
    ]:
        assert expected in events, expected
    assert count >= len(trail)
    record = trail[0]
    assert record["ip"] == "198.51.100.7" and record["user_agent"] == "pytest" and record["request_id"]
    assert record["at"].endswith("Z")


def test_the_trail_holds_no_secret_and_no_email(full_flow):
    email, secrets = full_flow
    items = boto3.client("dynamodb").scan(TableName=audit.AuditRecord.Meta.table_name)["Items"]
    dump = json.dumps(items)
    assert email not in dump
    for secret in secrets:
        assert secret not in dump


def test_a_changed_record_is_detected(full_flow):
    table = audit.AuditRecord.Meta.table_name
    ddb = boto3.client("dynamodb")
    victim = next(i for i in ddb.scan(TableName=table)["Items"] if i["chain"]["S"].startswith("chain#") and i.get("outcome", {}).get("S") == "failure")
    ddb.update_item(
        TableName=table,
        Key={"chain": victim["chain"], "seq": victim["seq"]},
        UpdateExpression="SET outcome = :o",
        ExpressionAttributeValues={":o": {"S": "success"}},
    )
    _, problems = audit.verify_all()
    assert any("do not match its hash" in p for p in problems)


def test_a_removed_record_is_detected(full_flow):
    table = audit.AuditRecord.Meta.table_name
    ddb = boto3.client("dynamodb")
    victim = next(i for i in ddb.scan(TableName=table)["Items"] if i["chain"]["S"].startswith("chain#") and i["seq"]["N"] == "1")
    ddb.delete_item(TableName=table, Key={"chain": victim["chain"], "seq": victim["seq"]})
    _, problems = audit.verify_all()
    assert problems


def test_a_rewritten_chain_still_disagrees_with_its_head(full_flow):
    # An attacker who recomputes every hash of a chain after editing a record
    # must also move the head, which functions cannot do to records' partitions.
    table = audit.AuditRecord.Meta.table_name
    chain = next(f"chain#{n}" for n in range(audit.CHAINS) if list(audit.chain_records(f"chain#{n}")))
    records = list(audit.chain_records(chain))
    ddb = boto3.client("dynamodb")
    ddb.delete_item(TableName=table, Key={"chain": {"S": chain}, "seq": {"N": str(records[-1].seq)}})
    assert any("head says" in p for p in audit.verify_chain(chain))


@pytest.fixture
def service_logs():
    """Everything the service logs, formatted exactly as in Lambda."""
    from carekey.observability import logger

    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logger.registered_formatter)
    logger._logger.addHandler(handler)
    root = logging.getLogger()
    root.addHandler(handler)
    yield sink
    logger._logger.removeHandler(handler)
    root.removeHandler(handler)


def test_logs_of_a_full_flow_hold_no_password_code_token_or_email(api, settings_override, capsys, service_logs):
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    email = "quiet@example.com"
    api.register(email)
    code = api.latest_code(email)
    api.post("/verify-otp", {"email": email, "otp": "999999" if code != "999999" else "111111"})
    api.post("/verify-otp", {"email": email, "otp": code})
    api.post("/login", {"email": email, "password": "wrong-password-x"})
    pair = api.login(email)
    api.post("/token/refresh", {"refresh": pair["refresh"]})
    api.post("/token/refresh", {"refresh": pair["refresh"]})
    api.get("/profile", token=pair["access"])
    api.post("/login", raw=b'{"email": "' + email.encode() + b'", "password": 5}')
    logs = capsys.readouterr().out + service_logs.getvalue()
    assert "audit anchor" in logs and "request refused" in logs  # the capture really holds the service's logs
    for secret in (PASSWORD, code, pair["access"], pair["refresh"], email, "wrong-password-x"):
        assert secret not in logs

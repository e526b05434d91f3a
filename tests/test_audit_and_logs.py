"""The audit trail is complete and tamper-evident; logs never hold a secret."""

from __future__ import annotations

import gzip
import json

import boto3
import pytest
from carekey import audit_trail, audit_verify, otp
from carekey.config import settings

from tests.client import PASSWORD

NEW = "another-long-passphrase-9"
MOVED = "audited.moved@example.com"


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
    refreshed = api.post("/token/refresh", {"refresh": pair["refresh"]}, ip="203.0.113.9").json()  # a new address: audited at once
    secrets += [refreshed["access"], refreshed["refresh"]]
    api.post("/token/refresh", {"refresh": pair["refresh"]})  # replay: the session ends
    fresh = api.login(email)
    secrets += [fresh["access"], fresh["refresh"]]
    api.put("/profile", {"first_name": "Audra"}, token=fresh["access"])
    api.post("/forgot-password", {"email": email})
    reset_code = api.latest_code(email)
    secrets.append(reset_code)
    api.post("/reset-password", {"email": email, "otp": reset_code, "new_password": NEW, "confirm_password": NEW})
    other = api.login(email, NEW)
    last = api.login(email, NEW)
    secrets += [other["access"], other["refresh"], last["access"], last["refresh"]]
    [other_id] = [s["id"] for s in api.get("/sessions", token=last["access"]).json()["sessions"] if not s["current"]]
    api.request("DELETE", f"/sessions/{other_id}", token=last["access"])
    api.post("/change-email", {"password": NEW, "new_email": MOVED}, token=last["access"])
    change_code = api.latest_code(MOVED)
    api.post("/change-email/verify", {"otp": "000000" if change_code != "000000" else "111111"}, token=last["access"])
    moved = api.post("/change-email/verify", {"otp": change_code}, token=last["access"]).json()
    secrets += [change_code, moved["access"], moved["refresh"]]
    api.post("/logout", {}, token=moved["access"])
    return email, secrets


def test_every_auth_event_is_recorded_and_the_chain_verifies(full_flow):
    email, _ = full_flow
    verdict = audit_verify.verify()
    assert verdict.problems == []
    from carekey import store

    user = store.user_by_email(MOVED)
    trail = audit_verify.trail_of(user.user_id) + audit_verify.trail_of(otp.email_key(email))
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
        ("session.end", "other_session"),
        ("email_change.requested", "sent"),
        ("email_change.code_check", "failure"),
        ("email_change", "success"),
        ("logout", "this_session"),
    ]:
        assert expected in events, expected
    assert verdict.records == verdict.archived >= len(trail)
    record = trail[0]
    assert record["ip"] == "198.51.100.7" and record["user_agent"] == "pytest" and record["request_id"]
    assert record["at"].endswith("Z") and record["hash"] and record["prev_hash"]


def test_the_trail_holds_no_secret_and_no_email(full_flow):
    email, secrets = full_flow
    items = boto3.client("dynamodb").scan(TableName=settings().audit_table)["Items"]
    s3 = boto3.client("s3")
    objects = s3.list_objects_v2(Bucket=settings().audit_bucket)["Contents"]
    # Both stores as they hold it, unpacked: the archive objects and the head's batch are gzipped
    archived = "".join("\n".join(audit_trail.archive_lines(s3.get_object(Bucket=settings().audit_bucket, Key=o["Key"])["Body"].read())) for o in objects)
    heads = [gzip.decompress(i["pending_gz"]["B"]).decode() for i in items if "pending_gz" in i]
    assert heads and all(not i.get("pending") for i in items)
    dump = json.dumps([{k: v for k, v in i.items() if k != "pending_gz"} for i in items]) + archived + "".join(heads)
    assert '"register"' in dump and "login" in archived  # the dump really holds the trail
    assert email not in dump and MOVED not in dump
    for secret in secrets:
        assert secret not in dump


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

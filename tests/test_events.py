"""events/*.json: one sample per function, valid for `sam local invoke -e`,
and what each function answers to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.functions import LambdaContext, handler
from local.template import ROOT
from tests.conftest import STACK

EVENTS = ROOT / "events"
EXPECTED = {
    "api_root": 200,
    "jwks": 200,
    "docs": 200,
    "register": 201,
    "verify_otp": 400,
    "resend_otp": 200,
    "login": 401,
    "login_mfa": 401,  # the sample's mfa_token was never issued
    "forgot_password": 200,
    "verify_password_reset_otp": 400,
    "reset_password": 400,
    "resend_password_reset_otp": 200,
    "token_refresh": 401,
    "profile": 401,  # the sample's user id does not exist
    "logout": 200,
    "change_password": 401,
    "change_email": 401,  # the sample's user id does not exist
    "sessions": 401,  # the sample's user id does not exist
    "webauthn_register": 401,  # the sample's user id does not exist
    "webauthn_login": 200,
    "webauthn_credentials": 401,
    "mfa": 401,  # the sample's user id does not exist
    "ui": 200,
    "admin_users": 404,  # signed by an operator; the sample's user id does not exist
    "admin_audit": 404,  # no record names the sample's user id
    "delete_account": 401,  # the sample's user id does not exist
}


def _functions() -> dict[str, str]:
    """function folder -> logical id, from the template."""
    return {Path(STACK.handler_of(lid)[0]).name: lid for lid in STACK.of_type("AWS::Serverless::Function")}


def test_every_function_has_exactly_one_sample_event():
    assert {p.stem for p in EVENTS.glob("*.json")} == set(_functions())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_sample_event_gets_its_expected_answer(name):
    event = json.loads((EVENTS / f"{name}.json").read_text())
    route_paths = {(r.path, r.method) for r in STACK.routes() if r.function == _functions()[name]}
    assert (event["resource"], event["httpMethod"]) in route_paths
    result = handler(STACK, _functions()[name])(event, LambdaContext(name, "sample"))
    assert result["statusCode"] == EXPECTED[name], result["body"]
    if not result["headers"]["Content-Type"].startswith("text/html"):
        json.loads(result["body"])


def test_the_authorizer_sample_is_refused_without_a_real_token():
    event = json.loads((EVENTS / "authorizer.json").read_text())
    result = handler(STACK, "AuthorizerFunction")(event, LambdaContext("authorizer", "sample"))
    assert [s["Effect"] for s in result["policyDocument"]["Statement"]] == ["Deny"]
    assert "context" not in result
    with pytest.raises(Exception, match="^Unauthorized$"):
        handler(STACK, "AuthorizerFunction")({**event, "authorizationToken": "Basic abc"}, LambdaContext("authorizer", "sample"))


def test_the_audit_writer_sample_becomes_one_verified_record():
    # Given the sample SQS event of one submitted audit event
    event = json.loads((EVENTS / "audit_writer.json").read_text())
    # When the writer handles it
    handler(STACK, "AuditWriterFunction")(event, LambdaContext("audit_writer", "sample"))
    # Then the chain holds it, MAC'd, in both copies
    from carekey import audit_verify

    verdict = audit_verify.verify()
    assert verdict.intact and verdict.records == verdict.archived == 1
    (record,) = audit_verify.trail_of("3f2a6c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b")
    assert (record["seq"], record["event"], record["outcome"]) == (1, "logout", "this_session")


def test_the_email_sender_sample_is_a_job_it_performs():
    event = json.loads((EVENTS / "email_sender.json").read_text())
    result = handler(STACK, "EmailSenderFunction")(event, LambdaContext("email_sender", "sample"))
    assert result == {"batchItemFailures": []}  # a reset code for an address with no account: nothing to send


def test_the_feedback_sample_suppresses_its_address():
    from carekey import otp, store

    event = json.loads((EVENTS / "email_feedback.json").read_text())
    handler(STACK, "EmailFeedbackFunction")(event, LambdaContext("email_feedback", "sample"))
    assert store.is_suppressed(otp.email_key("bounced@example.com"))

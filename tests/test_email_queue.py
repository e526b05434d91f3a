"""One answer, one time: the email work of register, resend-otp,
forgot-password and resend-password-reset-otp happens after the answer,
through the email queue; bounces and complaints suppress an address."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from carekey import audit, mailer, otp, store
from pynamodb.connection.base import Connection

from local.functions import LambdaContext, handler
from local.gateway import Gateway
from local.template import ROOT
from tests.client import PASSWORD, ApiClient
from tests.conftest import QUEUES, STACK

EVENTS = ROOT / "events"


def _queue_url(logical: str) -> str:
    return STACK.queue_url(logical)


def _messages(logical: str) -> list[dict]:
    """Every message waiting in a queue, left there (visible again)."""
    sqs = boto3.client("sqs")
    out: list[dict] = []
    while got := sqs.receive_message(QueueUrl=_queue_url(logical), MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", []):
        out += got
    for m in out:
        sqs.change_message_visibility(QueueUrl=_queue_url(logical), ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    return out


@pytest.fixture
def undrained(gateway, outbox) -> ApiClient:
    """The API with nobody consuming the email queue: what a request does
    before its answer, and nothing after."""
    return ApiClient(Gateway(STACK), outbox)


@pytest.fixture
def aws_calls(monkeypatch):
    """Every AWS call made, as (service, operation, table or queue)."""
    seen: list[tuple[str, ...]] = []
    real = Connection.dispatch

    def dispatch(self, operation_name, operation_kwargs):
        tables = operation_kwargs.get("TableName") or ",".join(
            sorted({next(iter(i.values())).get("TableName", "") for i in operation_kwargs.get("TransactItems", [])})
        )
        seen.append(("dynamodb", operation_name, tables))
        return real(self, operation_name, operation_kwargs)

    monkeypatch.setattr(Connection, "dispatch", dispatch)

    def before_parameter_build(params, model, **_):
        if model.service_model.service_name != "dynamodb":
            seen.append((model.service_model.service_name, model.name, params.get("QueueUrl", "")))

    boto3.DEFAULT_SESSION.events.register("before-parameter-build", before_parameter_build)
    yield seen
    boto3.DEFAULT_SESSION.events.unregister("before-parameter-build", before_parameter_build)


# ---- one answer, one time ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/register", {"password": "ordinary-lantern-31", "password2": "ordinary-lantern-31"}),
        ("/forgot-password", {}),
        ("/resend-otp", {"context": "registration"}),
        ("/resend-otp", {"context": "password_reset"}),
        ("/resend-password-reset-otp", {}),
    ],
)
def test_each_endpoint_does_the_same_synchronous_work_for_every_address(api, undrained, aws_calls, settings_override, path, body):
    # Given an account, a pending sign-up and a stranger (and a warm function)
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    api.verified_user("account@example.com")
    api.register("pending@example.com")
    undrained.post(path, {"email": "warm-up@example.com", **body})
    work = {}
    # When each is asked about, interleaved, with nobody consuming the queue
    for email in ("account@example.com", "stranger@example.com", "pending@example.com") * 2:
        aws_calls.clear()
        r = undrained.post(path, {"email": email, **body})
        work.setdefault(email, []).append((r.status, tuple(aws_calls)))
    # Then every request made the same AWS calls, in the same order, and got the same status
    assert len({w for runs in work.values() for w in runs}) == 1, work
    [(status, calls)] = {w for runs in work.values() for w in runs}
    assert status in (200, 201)
    assert ("sqs", "SendMessage", _queue_url("EmailQueue")) in calls
    assert not any(service == "sesv2" for service, *_ in calls)


@pytest.fixture
def aws_requests(monkeypatch):
    """Every AWS request made, in full: (service, operation, its parameters as JSON)."""
    seen: list[tuple[str, str, str]] = []
    real = Connection.dispatch

    def dispatch(self, operation_name, operation_kwargs):
        seen.append(("dynamodb", operation_name, json.dumps(operation_kwargs, sort_keys=True)))
        return real(self, operation_name, operation_kwargs)

    monkeypatch.setattr(Connection, "dispatch", dispatch)

    def before_parameter_build(params, model, **_):
        if model.service_model.service_name != "dynamodb":
            seen.append((model.service_model.service_name, model.name, json.dumps(params, sort_keys=True, default=str)))

    boto3.DEFAULT_SESSION.events.register("before-parameter-build", before_parameter_build)
    yield seen
    boto3.DEFAULT_SESSION.events.unregister("before-parameter-build", before_parameter_build)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_EPOCH = re.compile(r"\b1[0-9]{9}\b")
_PASSWORD_HASH = re.compile(r"\$2b\$[0-9]{2}\$[./A-Za-z0-9]{53}|\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+")


def _shape(calls: list[tuple[str, str, str]], email: str) -> tuple[tuple[str, str, int, str], ...]:
    """The calls with what names this address (the address, its keyed hash) and
    what differs by request (ids, clock) replaced by placeholders; each keeps
    the size of its parameters, so an item or key of another size shows."""
    out = []
    for service, operation, params in calls:
        masked = params.replace(email, "<email>").replace(otp.email_key(email), "<email-hash>")
        masked = _PASSWORD_HASH.sub("<password-hash>", _EPOCH.sub("<time>", _UUID.sub("<uuid>", masked)))
        out.append((service, operation, len(params), masked))
    return tuple(out)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/register", {"password": "ordinary-lantern-31", "password2": "ordinary-lantern-31"}),
        ("/forgot-password", {}),
        ("/resend-otp", {"context": "registration"}),
        ("/resend-otp", {"context": "password_reset"}),
        ("/resend-password-reset-otp", {}),
    ],
)
def test_the_synchronous_aws_requests_are_identical_for_an_account_and_a_stranger(
    api, undrained, aws_requests, settings_override, path, body
):
    # Given an account, a pending sign-up and a stranger, three addresses of one length,
    # each with email work behind it (codes, cooldowns, counters, audit records)
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    account, pending, stranger = "account1@example.com", "pending1@example.com", "stranger@example.com"
    api.verified_user(account)
    api.register(pending)
    for email in (account, pending, stranger):
        api.post("/forgot-password", {"email": email})
        api.post("/resend-otp", {"email": email})
    undrained.post(path, {"email": "warm-up1@example.com", **body})
    shapes = {}
    # When each is asked about, with nobody consuming the queue
    for email in (account, stranger, pending, stranger, account, pending):
        aws_requests.clear()
        r = undrained.post(path, {"email": email, **body})
        assert r.status in (200, 201)
        shapes.setdefault(_shape(aws_requests, email), []).append(email)
    # Then every request made the same calls: operations, tables and queues, keys,
    # read consistency, expressions and the size of every parameter
    assert len(shapes) == 1, "\n".join(f"{emails}: {shape}" for shape, emails in shapes.items())
    [shape] = shapes
    # And none of them reads anything about the address: a write of a per-IP counter,
    # the sign-up itself for /register, and the job
    assert not any(operation in ("GetItem", "Query", "TransactGetItems") for _, operation, *_ in shape)
    assert shape[0][:2] == ("dynamodb", "UpdateItem") and "<email-hash>" not in shape[0][3]
    assert shape[-1][:2] == ("sqs", "SendMessage")


def test_the_answer_comes_before_the_email_work(undrained, outbox):
    # Given nobody consuming the email queue
    # When someone registers
    r = undrained.register("queued@example.com")
    # Then the answer is 201 with nothing sent yet, and the queued job holds no secret
    assert r.status == 201 and outbox.to("queued@example.com") == []
    [message] = _messages("EmailQueue")
    job = json.loads(message["Body"])
    assert job["kind"] == "signup" and job["email"] == "queued@example.com"
    assert PASSWORD not in message["Body"] and "password" not in message["Body"]
    # And once the queue is consumed, the code arrives and verifies the sign-up
    QUEUES.drain()
    code = undrained.latest_code("queued@example.com")
    assert undrained.post("/verify-otp", {"email": "queued@example.com", "otp": code}).status == 200


def _run_senders_in_parallel() -> None:
    """Hand every queued email job to its own concurrent sender invocation, as
    Lambda does with the batches of a standard queue (the local pump runs one
    batch per queue at a time, which would hide a race)."""
    sqs = boto3.client("sqs")
    received: list[dict] = []
    while got := sqs.receive_message(QueueUrl=_queue_url("EmailQueue"), MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", []):
        received += got
    sender = handler(STACK, "EmailSenderFunction")

    def invoke(m: dict) -> dict:
        record = {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], "attributes": {"ApproximateReceiveCount": "1"}}
        return sender({"Records": [record]}, LambdaContext("EmailSenderFunction", "test"))

    with ThreadPoolExecutor(max_workers=len(received) or 1) as pool:
        results = list(pool.map(invoke, received))
    assert results == [{"batchItemFailures": []}] * len(received)
    for m in received:
        sqs.delete_message(QueueUrl=_queue_url("EmailQueue"), ReceiptHandle=m["ReceiptHandle"])


def test_the_hourly_cap_holds_when_senders_run_in_parallel(api, undrained, outbox, settings_override):
    # Given an account (its sign-up code was the hour's first email), and no cooldown
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    api.verified_user("flood@example.com")
    # When 20 reset codes are asked for, and their jobs all run at once
    assert {undrained.post("/forgot-password", {"email": "flood@example.com"}).status for _ in range(20)} == {200}
    _run_senders_in_parallel()
    # Then the address got exactly the hour's 5 emails, no more
    assert len(outbox.to("flood@example.com")) == 5


def test_parallel_sign_ups_of_one_address_send_at_most_the_hourly_cap(undrained, outbox):
    # Given 20 sign-ups of one address (a new sign-up's code skips the cooldown)
    for i in range(20):
        assert undrained.register("bomb@example.com", password=f"parallel-passphrase-{i:02d}").status == 201
    # When their jobs all run at once
    _run_senders_in_parallel()
    # Then the mailbox got at most the hour's 5 emails
    assert 1 <= len(outbox.to("bomb@example.com")) <= 5


def test_a_send_that_fails_is_retried_and_then_succeeds(api, outbox, monkeypatch):
    # Given SES refusing the first attempt only
    real_send, attempts = mailer.send, []

    def flaky(email):
        attempts.append(email.subject)
        return len(attempts) > 1 and real_send(email)

    monkeypatch.setattr(mailer, "send", flaky)
    # When someone registers
    assert api.register("flaky@example.com").status == 201
    # Then the job ran twice, the code arrived once and it verifies
    assert len(attempts) == 2
    assert len(outbox.to("flaky@example.com")) == 1
    assert api.post("/verify-otp", {"email": "flaky@example.com", "otp": api.latest_code("flaky@example.com")}).status == 200
    assert _messages("EmailDeadLetterQueue") == []


def test_a_job_that_fails_before_its_email_went_out_gives_its_slot_back(api, outbox, monkeypatch):
    # Given an account, and the code's write failing once (after the job took its
    # cooldown and its unit of the hourly cap)
    api.verified_user("retry@example.com")
    real_put, failures = store.put_otp, []

    def failing_once(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise RuntimeError("DynamoDB was unavailable")
        return real_put(*args, **kwargs)

    monkeypatch.setattr(store, "put_otp", failing_once)
    # When a reset code is asked for (the queue retries the failed job at once here)
    assert api.post("/forgot-password", {"email": "retry@example.com"}).status == 200
    # Then the retry found the cooldown and the cap as they were, and sent the code
    assert failures == [1]
    assert outbox.to("retry@example.com")[-1]["subject"] == "Your CareKey password reset code"
    assert store.counter_value(f"sendhour#{otp.email_key('retry@example.com')}", 3600) == 2
    assert _messages("EmailDeadLetterQueue") == []


def test_a_send_that_always_fails_ends_in_the_dead_letter_queue(api, outbox, monkeypatch):
    # Given an account, and SES refusing every attempt
    api.verified_user("doomed@example.com")
    monkeypatch.setattr(mailer, "send", lambda email: False)
    # When a reset code is asked for it
    assert api.post("/forgot-password", {"email": "doomed@example.com"}).status == 200
    # Then after the queue's five receives the job waits in the dead-letter queue (which the alarm watches)
    [dead] = _messages("EmailDeadLetterQueue")
    assert json.loads(dead["Body"])["kind"] == "reset_code"
    assert _messages("EmailQueue") == []


def test_failed_jobs_come_back_after_waits_that_grow(monkeypatch):
    # Given a job whose email cannot be sent, received for the 1st, 2nd and 4th time
    monkeypatch.setattr(mailer, "send", lambda email: False)
    store.put_signup(otp.email_key("wait@example.com"), "wait@example.com", "x", "", "", None, 3600)
    signup = store.pending_signup(otp.email_key("wait@example.com"))
    body = json.dumps({"kind": "signup", "email": "wait@example.com", "event": "register", "signup_id": signup.signup_id})
    waits = []

    def before_parameter_build(params, model, **_):
        waits.append(params["VisibilityTimeout"])

    boto3.DEFAULT_SESSION.events.register("before-parameter-build.sqs.ChangeMessageVisibility", before_parameter_build)
    sender = handler(STACK, "EmailSenderFunction")
    sqs = boto3.client("sqs")
    try:
        for receives in (1, 2, 4):
            sqs.send_message(QueueUrl=_queue_url("EmailQueue"), MessageBody=body)
            [m] = sqs.receive_message(QueueUrl=_queue_url("EmailQueue"), MaxNumberOfMessages=1)["Messages"]
            record = {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                      "attributes": {"ApproximateReceiveCount": str(receives)}}
            # When the sender handles it
            result = sender({"Records": [record]}, LambdaContext("EmailSenderFunction", "test"))
            # Then it reports the failure (the queue retries it)
            assert result == {"batchItemFailures": [{"itemIdentifier": m["MessageId"]}]}
            sqs.delete_message(QueueUrl=_queue_url("EmailQueue"), ReceiptHandle=m["ReceiptHandle"])
    finally:
        boto3.DEFAULT_SESSION.events.unregister("before-parameter-build.sqs.ChangeMessageVisibility", before_parameter_build)
    # And each wait is longer than the one before (15 s, 30 s, 120 s, plus up to 9 s of jitter)
    assert len(waits) == 3 and 15 <= waits[0] < 25 and 30 <= waits[1] < 40 and 120 <= waits[2] < 130


def test_a_malformed_job_is_reported_not_lost(monkeypatch):
    sender = handler(STACK, "EmailSenderFunction")
    record = {"messageId": "m-1", "receiptHandle": "r-1", "body": "{not json", "attributes": {"ApproximateReceiveCount": "1"}}
    assert sender({"Records": [record]}, LambdaContext("EmailSenderFunction", "test")) == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}


# ---- bounces and complaints -----------------------------------------------------------------


def _feedback(kind: str, address: str, bounce_type: str = "Permanent") -> dict:
    event = json.loads((EVENTS / "email_feedback.json").read_text())
    message = json.loads(event["Records"][0]["Sns"]["Message"])
    if kind == "Complaint":
        message = {"eventType": "Complaint", "mail": message["mail"], "complaint": {"complainedRecipients": [{"emailAddress": address}]}}
    else:
        message["bounce"]["bounceType"] = bounce_type
        message["bounce"]["bouncedRecipients"] = [{"emailAddress": address}]
    event["Records"][0]["Sns"]["Message"] = json.dumps(message)
    return event


def _deliver_feedback(event: dict) -> None:
    handler(STACK, "EmailFeedbackFunction")(event, LambdaContext("EmailFeedbackFunction", "test"))


def test_a_permanent_bounce_stops_every_email_to_the_address(api, outbox, settings_override):
    # Given an account whose mailbox then bounces permanently
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    api.verified_user("gone@example.com")
    _deliver_feedback(_feedback("Bounce", "Gone@Example.com"))
    outbox.clear()
    # When codes are asked for it, and it is registered again
    assert api.post("/forgot-password", {"email": "gone@example.com"}).status == 200
    assert api.register("gone@example.com", password="another-lantern-77").status == 201
    # Then the answers are unchanged and nothing is sent
    assert outbox.to("gone@example.com") == []
    # And the suppression is in the audit trail, by the keyed hash of the address
    events = [(r["event"], r["outcome"]) for r in audit.trail_of(otp.email_key("gone@example.com"))]
    assert ("email.bounce", "suppressed") in events
    assert ("reset_code" not in str(events))


def test_a_complaint_suppresses_and_notices_stop_too(api, outbox):
    api.verified_user("angry@example.com")
    pair = api.login("angry@example.com")
    _deliver_feedback(_feedback("Complaint", "angry@example.com"))
    outbox.clear()
    # The password-changed notice goes through the same check
    new = "completely-new-lantern-9"
    r = api.post("/change-password", {"current_password": PASSWORD, "new_password": new, "confirm_password": new}, token=pair["access"])
    assert r.status == 200
    assert outbox.to("angry@example.com") == []
    assert store.is_suppressed(otp.email_key("angry@example.com"))


def test_a_transient_bounce_changes_nothing(api, outbox):
    _deliver_feedback(_feedback("Bounce", "full@example.com", bounce_type="Transient"))
    assert not store.is_suppressed(otp.email_key("full@example.com"))
    api.register("full@example.com")
    assert len(outbox.to("full@example.com")) == 1


def test_feedback_that_is_not_json_fails_so_lambda_retries_it():
    event = _feedback("Bounce", "x@example.com")
    event["Records"][0]["Sns"]["Message"] = "{not json"
    with pytest.raises(ValueError):
        _deliver_feedback(event)

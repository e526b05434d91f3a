"""The local SQS event source (local/queues.py): consumers come from the
template, get real SQS events, and failures follow Lambda's rules."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from local import template
from local.emulator import provision
from local.functions import handler
from local.gateway import Gateway
from local.queues import QueuePump, failed_ids, queue_depths, sources
from local.template import Stack

PROBE = {
    "ProbeDeadLetters": {"Type": "AWS::SQS::Queue", "Properties": {"FifoQueue": True, "MessageRetentionPeriod": 1209600}},
    "ProbeQueue": {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "FifoQueue": True,
            "VisibilityTimeout": 30,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["ProbeDeadLetters", "Arn"]}, "maxReceiveCount": 3},
        },
    },
    "PlainQueue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 30}},
    "ProbeFunction": {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "CodeUri": "tests/fixtures/queue_probe/",
            "Events": {
                "Fifo": {
                    "Type": "SQS",
                    "Properties": {
                        "Queue": {"Fn::GetAtt": ["ProbeQueue", "Arn"]},
                        "BatchSize": 4,
                        "FunctionResponseTypes": ["ReportBatchItemFailures"],
                    },
                },
                "Plain": {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["PlainQueue", "Arn"]}, "BatchSize": 10}},
            },
        },
    },
}


@dataclass
class ProbeStack(Stack):
    """The real template plus a consumer of two queues (one FIFO with a DLQ)."""

    name: str = "carekey-probe"

    @property
    def template(self) -> dict[str, Any]:
        if not hasattr(self, "_template"):
            data = copy.deepcopy(template.load())
            data["Resources"].update(copy.deepcopy(PROBE))
            self._template = data
        return self._template


STACK = ProbeStack()


class _Probe:
    """The probe consumer's module state, as loaded by the local Lambda loader."""

    def __getattr__(self, name: str) -> Any:
        return handler(STACK, "ProbeFunction").__globals__[name]


probe = _Probe()


@pytest.fixture
def pump() -> QueuePump:
    provision(STACK)
    probe.EVENTS.clear()
    probe.INVALID_REPLY["on"] = False
    return QueuePump(STACK)


def sqs():
    return boto3.client("sqs", region_name="us-east-1")


def send(queue: str, body: str, group: str | None = "g1") -> None:
    extra = {"MessageGroupId": group, "MessageDeduplicationId": f"{body}-{time.monotonic_ns()}"} if group else {}
    sqs().send_message(QueueUrl=STACK.queue_url(queue), MessageBody=body, **extra)


def delivered(queue: str) -> list[str]:
    arn = STACK.arn(queue)
    return [r["body"] for e in probe.EVENTS for r in e["Records"] if r["eventSourceARN"] == arn]


def dead_letters() -> list[str]:
    got = sqs().receive_message(QueueUrl=STACK.queue_url("ProbeDeadLetters"), MaxNumberOfMessages=10)
    return [m["Body"] for m in got.get("Messages", [])]


def test_consumers_come_from_the_template():
    # Given the template with the probe function
    # When its event sources are read
    found = {(s.function, s.queue): s for s in sources(STACK)}
    # Then both SQS events are there, with their settings
    fifo, plain = found[("ProbeFunction", "ProbeQueue")], found[("ProbeFunction", "PlainQueue")]
    assert (fifo.batch_size, fifo.report_item_failures, fifo.fifo, fifo.has_dead_letter_queue) == (4, True, True, True)
    assert (plain.batch_size, plain.report_item_failures, plain.fifo, plain.has_dead_letter_queue) == (10, False, False, False)
    assert fifo.url.endswith("/carekey-probe-ProbeQueue.fifo")
    # And the real template's consumers are exactly its functions with an SQS event
    real = Stack()
    expected = {
        logical
        for logical, res in real.of_type("AWS::Serverless::Function").items()
        if any(e["Type"] == "SQS" for e in (res["Properties"].get("Events") or {}).values())
    }
    assert {s.function for s in sources(real)} == expected


def test_a_batch_is_a_real_sqs_event(pump):
    # Given six messages, one with an attribute
    for n in range(5):
        send("ProbeQueue", f"m{n}")
    sqs().send_message(
        QueueUrl=STACK.queue_url("ProbeQueue"),
        MessageBody="m5",
        MessageGroupId="g1",
        MessageDeduplicationId="m5",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "notice"}},
    )
    # When the queues are drained
    assert pump.drain() == 6
    # Then they arrive in order, in batches of at most BatchSize, as Lambda shapes them
    assert [len(e["Records"]) for e in probe.EVENTS] == [4, 2]
    assert delivered("ProbeQueue") == [f"m{n}" for n in range(6)]
    record = probe.EVENTS[1]["Records"][1]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:carekey-probe-ProbeQueue.fifo"
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["MessageGroupId"] == "g1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"] == {"kind": {"stringValue": "notice", "stringListValues": [], "binaryListValues": [], "dataType": "String"}}
    assert record["messageId"] and record["receiptHandle"] and record["md5OfBody"]
    # And the queue is empty
    assert queue_depths(pump)["ProbeQueue"] == 0


def test_reported_failures_are_retried_and_the_rest_deleted(pump):
    # Given a message that fails on its first delivery, in its own group
    send("ProbeQueue", "ok-a", group="a")
    send("ProbeQueue", "fail-once", group="b")
    send("ProbeQueue", "ok-c", group="c")
    # When drained
    pump.drain()
    # Then the others were delivered once and the failed one twice
    bodies = delivered("ProbeQueue")
    assert sorted(bodies) == ["fail-once", "fail-once", "ok-a", "ok-c"]
    assert queue_depths(pump)["ProbeQueue"] == 0
    assert dead_letters() == []


def test_a_message_that_keeps_failing_ends_in_the_dead_letter_queue(pump):
    # Given a message that always fails and one that succeeds, in different groups
    send("ProbeQueue", "fail-always", group="a")
    send("ProbeQueue", "fine", group="b")
    # When drained
    pump.drain()
    # Then the failing one was tried maxReceiveCount (3) times, then moved to the DLQ
    assert delivered("ProbeQueue").count("fail-always") == 3
    assert delivered("ProbeQueue").count("fine") == 1
    assert dead_letters() == ["fail-always"]
    assert queue_depths(pump)["ProbeQueue"] == 0


def test_a_crashed_consumer_fails_the_whole_batch(pump):
    # Given a batch where the consumer raises
    errors = []
    pump.on_error = lambda source, exc: errors.append(str(exc))
    send("ProbeQueue", "one", group="a")
    send("ProbeQueue", "crash", group="b")
    # When drained
    pump.drain()
    # Then every message of the batch was retried, and all reached the DLQ after 3 receives
    assert errors == ["consumer crashed"] * 3
    assert delivered("ProbeQueue").count("one") == 3
    assert sorted(dead_letters()) == ["crash", "one"]


def test_an_invalid_failure_report_fails_the_whole_batch(pump):
    # Given a consumer that names a message not in its batch
    probe.INVALID_REPLY["on"] = True
    send("ProbeQueue", "x", group="a")
    # When drained
    pump.drain()
    # Then the message was never deleted: retried, then dead-lettered
    assert delivered("ProbeQueue") == ["x", "x", "x"]
    assert dead_letters() == ["x"]


def test_fifo_order_holds_within_a_group_through_a_retry(pump):
    # Given a group whose second message fails once, and another group
    for body in ("a1", "fail-once-a2", "a3", "a4", "a5"):
        send("ProbeQueue", body, group="a")
    for body in ("b1", "b2"):
        send("ProbeQueue", body, group="b")
    # When drained
    pump.drain()
    # Then each group was processed in order: the successes, in delivery order, keep the send order
    processed = []
    for event in probe.EVENTS:
        failed_group: set[str] = set()
        for r in event["Records"]:
            group, first = r["attributes"]["MessageGroupId"], r["attributes"]["ApproximateReceiveCount"] == "1"
            if group in failed_group or (r["body"].startswith("fail-once") and first):
                failed_group.add(group)
                continue
            processed.append(r["body"])
    assert [b for b in processed if b.startswith(("a", "fail"))] == ["a1", "fail-once-a2", "a3", "a4", "a5"]
    assert [b for b in processed if b.startswith("b")] == ["b1", "b2"]
    assert queue_depths(pump)["ProbeQueue"] == 0


def test_without_item_reports_a_normal_return_deletes_the_batch(pump):
    # Given the plain queue, whose event does not report item failures
    sqs().send_message(QueueUrl=STACK.queue_url("PlainQueue"), MessageBody="fail-always")
    # When drained
    pump.drain()
    # Then the handler's return value is ignored: delivered once, deleted
    assert delivered("PlainQueue") == ["fail-always"]
    assert queue_depths(pump)["PlainQueue"] == 0


def test_a_failed_message_without_dead_letter_queue_waits_for_its_visibility_timeout(pump):
    # Given the plain queue (no redrive policy) and a consumer that crashes
    pump.on_error = lambda source, exc: None
    sqs().send_message(QueueUrl=STACK.queue_url("PlainQueue"), MessageBody="crash")
    # When drained
    pump.drain()
    # Then it was tried once and stays in the queue, invisible until the timeout
    assert delivered("PlainQueue") == ["crash"]
    assert queue_depths(pump)["PlainQueue"] == 1


def test_the_gateway_drains_the_queues_after_each_request(pump):
    # Given a message waiting and a gateway with the pump
    gateway = Gateway(STACK, queues=pump)
    send("ProbeQueue", "queued-before-the-request")
    # When any request is served
    response = gateway.handle("GET", "/", [("Host", "127.0.0.1")], [], None, "198.51.100.7")
    # Then the consumer has run by the time the response is back
    assert response.status == 200
    assert delivered("ProbeQueue") == ["queued-before-the-request"]


def test_the_background_pump_delivers_continuously(pump):
    # Given the pump running in its thread
    pump.start(interval=0.05)
    try:
        # When messages arrive later
        send("ProbeQueue", "late-1")
        send("ProbeQueue", "late-2")
        pump.nudge()
        deadline = time.monotonic() + 10
        while len(delivered("ProbeQueue")) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        pump.stop()
    # Then they were delivered without anyone draining
    assert delivered("ProbeQueue") == ["late-1", "late-2"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemId": "b"}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, {"a", "b"}),
        ("not a dict", set()),
    ],
)
def test_failure_reports_are_read_as_lambda_reads_them(reply, expected):
    assert failed_ids(reply, ["a", "b"], report_item_failures=True) == expected
    assert failed_ids(reply, ["a", "b"], report_item_failures=False) == set()


def test_filter_criteria_are_refused_rather_than_ignored():
    # Given a template whose SQS event filters messages
    filtered = ProbeStack(name="carekey-filtered")
    events = filtered.template["Resources"]["ProbeFunction"]["Properties"]["Events"]
    events["Plain"]["Properties"]["FilterCriteria"] = {"Filters": [{"Pattern": json.dumps({"body": {"kind": ["x"]}})}]}
    # Then reading its sources fails loudly
    with pytest.raises(NotImplementedError, match="FilterCriteria"):
        sources(filtered)

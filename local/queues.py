"""A local stand-in for Lambda's SQS event source mappings.

Every function of template.yaml with an `Events` entry of `Type: SQS` is a
queue consumer; nothing else declares them.  The pump receives from each
consumer's queue and calls the function's handler with the event Lambda would
send, then settles the batch the way Lambda does:

- A batch holds up to the event's `BatchSize` (default 10) messages, each a
  record with `messageId`, `receiptHandle`, `body`, `attributes`
  (`ApproximateReceiveCount`, `SentTimestamp`, `MessageGroupId`, ...),
  `messageAttributes`, `md5OfBody`, `eventSource: aws:sqs`, `eventSourceARN`
  and `awsRegion`.
- A handler that returns normally succeeds for the whole batch: every message
  is deleted.  A handler that raises fails the whole batch.
- With `FunctionResponseTypes: [ReportBatchItemFailures]`, the handler may
  return `{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}`: only
  those messages fail and the rest are deleted.  An item without an
  identifier, or naming a message not in the batch, fails the whole batch, as
  in Lambda.  Without that setting the return value is ignored.
- A failed message stays in the queue and is received again; once it has been
  received the redrive policy's `maxReceiveCount` times, the queue moves it
  to its dead-letter queue (the emulator's SQS applies the redrive policy).
- FIFO queues deliver a message group in order and hold back a group while
  one of its messages is in flight, so a failed message is retried before
  anything after it in its group.  A FIFO handler that fails a message must
  also report the rest of that group in the batch, as Lambda asks.

Two ways to run it:

- `drain()` delivers until every queue is empty, in the calling thread.  The
  tests' gateway calls it after each request, so what a request queued (an
  email, an audit event) has been handled when the response comes back.  A
  failed message is made visible again at once, so a drain ends with every
  message either handled or in its dead-letter queue.
- `start()` runs a background thread that polls every queue continuously
  (`make dev`).  A failed message becomes visible again after the queue's
  `VisibilityTimeout`, as in AWS.

Not emulated: `MaximumBatchingWindowInSeconds` (a batch is whatever one
receive returns), `ScalingConfig` (one batch per queue at a time) and
`FilterCriteria` (refused, so a template that needs it fails loudly here).
"""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import boto3

from local.functions import LambdaContext, handler
from local.template import Stack

log = logging.getLogger("local.queues")

SQS_MAX_BATCH = 10  # ReceiveMessage returns at most 10 messages


@dataclass(frozen=True)
class QueueSource:
    """One SQS event source mapping of the template."""

    function: str  # logical id of the consumer
    queue: str  # logical id of the queue
    url: str
    arn: str
    batch_size: int
    report_item_failures: bool
    fifo: bool
    has_dead_letter_queue: bool


def sources(stack: Stack) -> list[QueueSource]:
    """Every `Type: SQS` event of every function in the template."""
    out = []
    for function, resource in stack.of_type("AWS::Serverless::Function").items():
        for name, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
            if event.get("Type") != "SQS":
                continue
            props = event.get("Properties") or {}
            if props.get("FilterCriteria"):
                raise NotImplementedError(f"{function}.{name}: FilterCriteria is not emulated by local/queues.py")
            if stack.resolve(props.get("Enabled", True)) in (False, "false"):
                continue
            queue = props["Queue"]["Fn::GetAtt"][0]
            queue_props = stack.resolve(stack.resources[queue].get("Properties") or {})
            out.append(
                QueueSource(
                    function=function,
                    queue=queue,
                    url=stack.queue_url(queue),
                    arn=stack.arn(queue),
                    batch_size=int(stack.resolve(props.get("BatchSize", 10))),
                    report_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                    fifo=queue_props.get("FifoQueue") in (True, "true"),
                    has_dead_letter_queue="RedrivePolicy" in queue_props,
                )
            )
    return out


def lambda_record(message: dict[str, Any], source: QueueSource, region: str) -> dict[str, Any]:
    """One record of an SQS event, from a ReceiveMessage result."""
    attributes = {}
    for key, value in (message.get("MessageAttributes") or {}).items():
        attributes[key] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(value["BinaryValue"]).decode() if "BinaryValue" in value else None,
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": [base64.b64encode(v).decode() for v in value.get("BinaryListValues", [])],
            "dataType": value.get("DataType"),
        }
        attributes[key] = {k: v for k, v in attributes[key].items() if v is not None}
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": source.arn,
        "awsRegion": region,
    }


def failed_ids(result: Any, batch_ids: list[str], report_item_failures: bool) -> set[str]:
    """The message ids of a batch that failed, from the handler's return value."""
    if not report_item_failures or not isinstance(result, dict):
        return set()
    failures = result.get("batchItemFailures")
    if not failures:
        return set()
    ids = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in batch_ids:
            return set(batch_ids)  # Lambda reads an invalid response as the whole batch failing
        ids.add(identifier)
    return ids


class QueuePump:
    """Delivers the template's queues to their consumers (see the module doc)."""

    def __init__(self, stack: Stack, session: boto3.Session | None = None, endpoint_url: str | None = None) -> None:
        self.stack = stack
        self.sources = sources(stack)
        self._session = session
        self._endpoint_url = endpoint_url
        self._client: Any = None
        self._locks = {s.queue: threading.Lock() for s in self.sources}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_error: Callable[[QueueSource, BaseException], None] = self._log_error

    # ---- the SQS client ---------------------------------------------------------------

    @property
    def sqs(self) -> Any:
        if self._client is None:
            session = self._session or boto3.DEFAULT_SESSION or boto3.Session()
            kw = {"endpoint_url": self._endpoint_url} if self._endpoint_url else {}
            self._client = session.client("sqs", region_name=self.stack.region, **kw)
        return self._client

    def reset(self) -> None:
        """Forget the client (tests start a fresh emulator for each test)."""
        self._client = None

    # ---- delivering -------------------------------------------------------------------

    def deliver_once(self, source: QueueSource, *, retry_now: bool) -> int:
        """Receive one batch from the source's queue and hand it to its consumer.
        Returns how many messages were received (0: nothing visible)."""
        with self._locks[source.queue]:
            received = self.sqs.receive_message(
                QueueUrl=source.url,
                MaxNumberOfMessages=min(source.batch_size, SQS_MAX_BATCH),
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not received:
                return 0
            event = {"Records": [lambda_record(m, source, self.stack.region) for m in received]}
            ids = [m["MessageId"] for m in received]
            try:
                result = handler(self.stack, source.function)(event, LambdaContext(source.function, str(uuid.uuid4())))
                failed = failed_ids(result, ids, source.report_item_failures)
            except Exception as exc:  # noqa: BLE001 - a crashed consumer fails its batch, as in Lambda
                self.on_error(source, exc)
                failed = set(ids)
            done = [m for m in received if m["MessageId"] not in failed]
            for start in range(0, len(done), SQS_MAX_BATCH):
                chunk = done[start : start + SQS_MAX_BATCH]
                self.sqs.delete_message_batch(
                    QueueUrl=source.url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
                )
            if failed and retry_now and source.has_dead_letter_queue:
                # Skip the visibility timeout: the next receive retries the message,
                # or moves it to the dead-letter queue once it has used its receives.
                retry = [m for m in received if m["MessageId"] in failed]
                for start in range(0, len(retry), SQS_MAX_BATCH):
                    chunk = retry[start : start + SQS_MAX_BATCH]
                    self.sqs.change_message_visibility_batch(
                        QueueUrl=source.url,
                        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for i, m in enumerate(chunk)],
                    )
            return len(received)

    def drain(self, max_batches: int = 10_000) -> int:
        """Deliver until no queue has a visible message; returns the messages received.

        A failed message without a dead-letter queue stays invisible for its
        visibility timeout rather than being retried for ever."""
        total, batches, busy = 0, 0, True
        while busy and batches < max_batches:
            busy = False
            for source in self.sources:
                while batches < max_batches:
                    try:
                        count = self.deliver_once(source, retry_now=True)
                    except self.sqs.exceptions.QueueDoesNotExist as exc:
                        self.on_error(source, exc)  # a test took the queue away; the others still drain
                        break
                    if not count:
                        break
                    total, batches, busy = total + count, batches + 1, True
        return total

    # ---- in the background (make dev) -------------------------------------------------

    def start(self, interval: float = 0.2) -> None:
        """Poll every queue in a background thread until `stop()`."""
        if self._thread is not None or not self.sources:
            return

        def run() -> None:
            while not self._stop.is_set():
                delivered = 0
                for source in self.sources:
                    try:
                        delivered += self.deliver_once(source, retry_now=False)
                    except Exception as exc:  # noqa: BLE001 - the emulator going away must not kill the pump
                        self.on_error(source, exc)
                if not delivered:
                    self._wake.wait(interval)
                    self._wake.clear()

        self._thread = threading.Thread(target=run, name="queue-pump", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """Poll now rather than at the next interval (after a request queued something)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    @staticmethod
    def _log_error(source: QueueSource, exc: BaseException) -> None:
        log.error("%s failed a batch from %s: %s", source.function, source.queue, type(exc).__name__, exc_info=exc)


def describe(pump: QueuePump) -> str:
    """One line for the `ready on` banner."""
    if not pump.sources:
        return "no queue consumers"
    return ", ".join(f"{s.queue} -> {s.function}" for s in pump.sources)


def queue_depths(pump: QueuePump) -> dict[str, int]:
    """Visible plus in-flight messages per queue (for tests and diagnostics)."""
    out = {}
    for s in pump.sources:
        attrs = pump.sqs.get_queue_attributes(
            QueueUrl=s.url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        out[s.queue] = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
    return out


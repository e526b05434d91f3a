"""The audit trail, as the request path sees it: one SQS SendMessage per event.

A flow calls `record(...)` for every auth event.  The event goes to the audit
queue (SQS FIFO, one message group, so one total order) and nothing else
happens on the request path: the audit writer (`carekey.audit_writer`) takes
events off the queue in order, chains them with a KMS MAC and stores them in
DynamoDB and in the Object-Locked S3 archive.  docs/audit.md explains the
design and why a queue.

If the event cannot be submitted, `record` raises `AuditUnavailable`: the
request fails closed with 503 and never succeeds unaudited.

An event says who (user id and the keyed hash of the email), what (event and
outcome), when (UTC), and from where (source IP, user agent, request id).  It
never holds a password, code, token or health information.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from carekey import aws, errors
from carekey.api import Client
from carekey.config import settings
from carekey.observability import logger, metrics

# One message group: the writer sees every event in one order and runs one batch at a time.
MESSAGE_GROUP = "trail"
SUBMISSION_VERSION = 1


def _submission(
    event: str, outcome: str, client: Client, user_id: str | None, email_hash: str | None, detail: dict[str, str] | None
) -> dict:
    return {
        "v": SUBMISSION_VERSION,
        "event_id": secrets.token_hex(16),
        "event": event,
        "outcome": outcome,
        "at": datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "user_id": user_id,
        "email_hash": email_hash,
        "ip": client.ip,
        "user_agent": client.user_agent,
        "request_id": client.request_id,
        "detail": detail or None,
    }


def _unavailable(event: str, exc: Exception) -> errors.AuditUnavailable:
    metrics.add_metric(name="AuditSubmissionFailures", unit=MetricUnit.Count, value=1)
    logger.error("audit submission failed", extra={"audit_event": event, "error_type": type(exc).__name__})
    return errors.AuditUnavailable()


def record(
    event: str,
    outcome: str,
    client: Client,
    *,
    user_id: str | None = None,
    email_hash: str | None = None,
    detail: dict[str, str] | None = None,
) -> None:
    """Submit one event to the audit trail; raise AuditUnavailable if it cannot be."""
    submission = _submission(event, outcome, client, user_id, email_hash, detail)
    try:
        aws.client("sqs").send_message(
            QueueUrl=settings().audit_queue_url,
            MessageBody=json.dumps(submission, separators=(",", ":"), sort_keys=True),
            MessageGroupId=MESSAGE_GROUP,
            # A retried SendMessage (botocore retries timeouts) is not queued twice.
            MessageDeduplicationId=submission["event_id"],
        )
    except (BotoCoreError, ClientError) as exc:
        raise _unavailable(event, exc) from exc


@dataclass(frozen=True)
class Event:
    """One event of a `record_many` call."""

    outcome: str
    user_id: str | None = None
    email_hash: str | None = None
    detail: dict[str, str] | None = None


def record_many(event: str, events: list[Event], client: Client) -> None:
    """Submit many events of one kind (an import's accounts), ten to a
    SendMessageBatch, in order; entries SQS did not take are sent again.
    Raises AuditUnavailable if any cannot be submitted."""
    sqs = aws.client("sqs")
    submissions = [_submission(event, e.outcome, client, e.user_id, e.email_hash, e.detail) for e in events]
    for start in range(0, len(submissions), 10):
        entries = [
            {
                "Id": str(n),
                "MessageBody": json.dumps(s, separators=(",", ":"), sort_keys=True),
                "MessageGroupId": MESSAGE_GROUP,
                "MessageDeduplicationId": s["event_id"],
            }
            for n, s in enumerate(submissions[start : start + 10])
        ]
        try:
            for _ in range(5):
                answer = sqs.send_message_batch(QueueUrl=settings().audit_queue_url, Entries=entries)
                failed = {f["Id"] for f in answer.get("Failed", [])}
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
            else:
                raise ClientError({"Error": {"Code": "BatchEntriesFailed", "Message": f"{len(entries)} entries refused"}}, "SendMessageBatch")
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(event, exc) from exc


def trail_of(subject: str) -> list[dict]:
    """Every record about one user id or email hash, oldest first (see carekey.audit_verify).
    Imported only when called: reading the trail is not the request path's business."""
    from carekey.audit_verify import trail_of as read_trail

    return read_trail(subject)

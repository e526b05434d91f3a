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
    event_id = secrets.token_hex(16)
    submission = {
        "v": SUBMISSION_VERSION,
        "event_id": event_id,
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
    try:
        aws.client("sqs").send_message(
            QueueUrl=settings().audit_queue_url,
            MessageBody=json.dumps(submission, separators=(",", ":"), sort_keys=True),
            MessageGroupId=MESSAGE_GROUP,
            # A retried SendMessage (botocore retries timeouts) is not queued twice.
            MessageDeduplicationId=event_id,
        )
    except (BotoCoreError, ClientError) as exc:
        metrics.add_metric(name="AuditSubmissionFailures", unit=MetricUnit.Count, value=1)
        logger.error("audit submission failed", extra={"audit_event": event, "error_type": type(exc).__name__})
        raise errors.AuditUnavailable() from exc


def trail_of(subject: str, since: str | None = None) -> list[dict]:
    """Every record about one user id or email hash in DynamoDB (from `since`, an
    ISO time, when given), oldest first (see carekey.audit_verify).  Imported only
    when called: reading the trail is not the request path's business."""
    from carekey.audit_verify import trail_of as read_trail

    return read_trail(subject, since)


def hot_window() -> tuple[int, str]:
    """DynamoDB's audit window: AUDIT_HOT_DAYS, and the time from which it holds
    every record (older ones are in the locked archive only)."""
    from carekey import store
    from carekey.audit_trail import window_start

    days = settings().audit_hot_days
    return days, window_start(store.now(), days)

"""The audit writer: the one function that turns submitted events into chained,
MAC'd records (see carekey.audit_trail for the record format).

It consumes the audit queue, a FIFO queue with one message group, so batches
arrive in submission order and one at a time.  For each batch it:

1. reads the head item (the chain's end, the last event written, the batch
   not yet archived);
2. stores that pending batch first, if a previous attempt committed it but
   failed before it was stored;
3. skips the events a previous attempt already wrote (SQS delivers at least
   once; events are known by their id);
4. numbers, links and MACs the rest, and moves the head past them with the
   batch inside it, conditional on the head being where it was read (the
   commit point: no two writers can claim the same numbers);
5. stores the batch: its records in DynamoDB, one object in the
   Object-Locked bucket (never over an existing object), then clears it
   from the head.

Any failure raises: the whole batch comes back after the queue's visibility
timeout, steps 2 and 3 make the retry safe, and after five tries the queue
moves it to the dead-letter queue, which raises an alarm.  A message that is
not a valid submission is still recorded (as `invalid_submission`, with its
message id), so it can neither be lost nor block the chain.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError
from pynamodb.exceptions import DoesNotExist

from carekey import aws
from carekey.audit_trail import GENESIS, HEAD, TRAIL, AuditRecord, archive_key, canonical, digest, generate_mac
from carekey.config import settings
from carekey.observability import logger, metrics

_SUBMITTED = ("event_id", "event", "outcome", "at", "user_id", "email_hash", "ip", "user_agent", "request_id", "detail")
_MAC_THREADS = 10


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _text(value: Any, limit: int) -> str | None:
    return None if value is None else str(value)[:limit]


def submission_of(message: dict[str, Any]) -> dict[str, Any]:
    """The event in one SQS record; an unreadable one becomes an `invalid_submission` event."""
    try:
        body = json.loads(message["body"])
        if not isinstance(body, dict) or not body.get("event_id") or not body.get("event"):
            raise ValueError("not a submission")
        detail = body.get("detail")
        if detail is not None and not (isinstance(detail, dict) and all(isinstance(v, str) for v in detail.values())):
            raise ValueError("bad detail")
        out = {k: _text(body.get(k), 512) for k in _SUBMITTED if k != "detail"}
        out["detail"] = {str(k)[:64]: v[:512] for k, v in detail.items()} if detail else None
        return out
    except (ValueError, TypeError, KeyError):
        return {
            "event_id": f"sqs-{message.get('messageId', '')}",
            "event": "invalid_submission",
            "outcome": "recorded",
            "at": _now(),
            "user_id": None,
            "email_hash": None,
            "ip": None,
            "user_agent": None,
            "request_id": None,
            "detail": {"message_id": str(message.get("messageId", ""))[:128]},
        }


def _head() -> AuditRecord:
    try:
        return AuditRecord.get(HEAD, 0, consistent_read=True)
    except DoesNotExist:
        return AuditRecord(HEAD, 0)


def _store(head: AuditRecord) -> None:
    """Store the head's pending batch: its records in DynamoDB, then one object in
    the locked bucket, then mark it stored.  Safe to repeat after a failure."""
    records = json.loads(head.pending or "[]")
    if not records:
        return
    first, last = records[0]["seq"], records[-1]["seq"]
    # Puts of the same content are idempotent; the seq range is this batch's alone,
    # claimed by the conditional head update.
    with AuditRecord.batch_write() as batch:
        for r in records:
            item = AuditRecord(TRAIL, r["seq"], subject=r["user_id"] or r["email_hash"])
            for k, v in r.items():
                if k != "seq":
                    setattr(item, k, v)
            batch.save(item)
    body = "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in records).encode()
    try:
        aws.client("s3").put_object(
            Bucket=settings().audit_bucket,
            Key=archive_key(first, last),
            Body=body,
            ContentType="application/x-ndjson",
            ChecksumAlgorithm="SHA256",
            IfNoneMatch="*",  # an archived batch is never written twice, not even as a new version
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
            raise
        logger.info("audit batch already archived", extra={"audit_first_seq": first, "audit_last_seq": last})
    head.update(
        actions=[AuditRecord.archived_seq.set(last), AuditRecord.pending.remove()],
        condition=AuditRecord.last_seq == last,
    )


def handle_batch(event: dict[str, Any]) -> dict[str, Any]:
    head = _head()
    if head.pending:
        _store(head)
        head = _head()

    submissions = [submission_of(m) for m in event.get("Records", [])]
    ids = [s["event_id"] for s in submissions]
    if head.last_event_id in ids:
        submissions = submissions[ids.index(head.last_event_id) + 1 :]
    if not submissions:
        return {"batchItemFailures": []}

    last_seq, prev = int(head.last_seq or 0), head.last_hash or GENESIS
    written_at = _now()
    records = []
    for n, submitted in enumerate(submissions, start=last_seq + 1):
        record = {**submitted, "seq": n, "written_at": written_at, "prev_hash": prev}
        record["hash"] = prev = digest(record)
        records.append(record)
    # Each MAC covers its own record only (prev_hash links them), so a batch's MACs are made at once.
    with ThreadPoolExecutor(max_workers=min(_MAC_THREADS, len(records))) as pool:
        for record, mac in zip(records, pool.map(lambda r: generate_mac(canonical(r)), records), strict=True):
            record["mac"] = mac

    new_last = records[-1]["seq"]
    pending = json.dumps(records, sort_keys=True, separators=(",", ":"))
    # The commit point: the head moves only from where it was read, so no two
    # writers ever claim the same sequence numbers, and it holds the batch until stored.
    AuditRecord(HEAD, 0).update(
        actions=[
            AuditRecord.last_seq.set(new_last),
            AuditRecord.last_hash.set(records[-1]["hash"]),
            AuditRecord.last_event_id.set(records[-1]["event_id"]),
            AuditRecord.pending.set(pending),
        ],
        condition=AuditRecord.last_seq.does_not_exist() if last_seq == 0 else AuditRecord.last_seq == last_seq,
    )
    logger.info(
        "audit anchor",
        extra={"audit_first_seq": records[0]["seq"], "audit_last_seq": new_last, "audit_hash": records[-1]["hash"]},
    )
    metrics.add_metric(name="AuditRecordsWritten", unit=MetricUnit.Count, value=len(records))
    _store(AuditRecord(HEAD, 0, last_seq=new_last, pending=pending))
    return {"batchItemFailures": []}

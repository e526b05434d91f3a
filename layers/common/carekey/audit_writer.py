"""The audit writer: the one function that turns submitted events into chained,
sealed records (see carekey.audit_trail for the record and seal format).

It consumes the audit queue, a FIFO queue with one message group, so batches
arrive in submission order and one at a time.  For each batch it:

1. reads the head item (the chain's end, the last event written, the last
   batch committed);
2. if that batch's seal is not stored (the attempt that committed it failed
   before the end), stores that batch first;
3. skips the events a previous attempt already wrote (SQS delivers at least
   once; events are known by their id);
4. numbers and links the rest (SHA-256), and seals them with one KMS
   GenerateMac over their digests and the previous seal;
5. moves the head past them with the batch inside it, conditional on the head
   being where it was read (the commit point: no two writers can claim the
   same numbers);
6. stores the batch: its records in DynamoDB (each with `expires`, its
   time plus AUDIT_HOT_DAYS, after which DynamoDB's TTL deletes it), one
   object in the Object-Locked bucket (never over an existing object), then
   its seal in DynamoDB, last, so a stored seal means a stored batch.  The
   seal's `expires` is its latest record's, so it leaves DynamoDB with the
   last of them; the head never expires; the archive keeps everything.

Step 2 looks up one seal only, that of the batch the head holds: the last
one written, in the hot window unless no event came for longer than it.  If
TTL has deleted it then, the batch is stored again: the same records and
seal (already expired, deleted again by TTL) and no second archive object.

Per batch that is one MAC, one head write and one S3 object, whatever the
batch's size.  Any failure raises: the whole batch comes back after the
queue's visibility timeout, steps 2 and 3 make the retry safe, and after five
tries the queue moves it to the dead-letter queue, which raises an alarm
(the next batch still stores the committed one first).  A message that is
not a valid submission is still recorded (as `invalid_submission`, with its
message id), so it can neither be lost nor block the chain.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError
from pynamodb.exceptions import DoesNotExist

from carekey import aws
from carekey.audit_trail import (
    GENESIS,
    HEAD,
    SEAL,
    AuditRecord,
    archive_body,
    archive_key,
    digest,
    generate_mac,
    packed,
    pending_batch,
    record_item,
    seal_canonical,
    seal_digest,
    seal_item,
)
from carekey.config import settings
from carekey.observability import logger, metrics

_SUBMITTED = ("event_id", "event", "outcome", "at", "user_id", "email_hash", "ip", "user_agent", "request_id", "detail")


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


def _stored(seal: dict[str, Any]) -> bool:
    """Is this seal in DynamoDB?  The writer stores a batch's seal last."""
    try:
        AuditRecord.get(SEAL, seal["last_seq"], consistent_read=True, attributes_to_get=["chain"])
    except DoesNotExist:
        return False
    return True


def _store(batch: dict[str, Any]) -> None:
    """Store a committed batch: its records in DynamoDB, one object in the
    locked bucket, then its seal.  Safe to repeat after a failure."""
    records, seal = batch["records"], batch["seal"]
    first, last = seal["first_seq"], seal["last_seq"]
    # Puts of the same content are idempotent; the seq range is this batch's alone,
    # claimed by the conditional head update.
    with AuditRecord.batch_write() as writes:
        for r in records:
            writes.save(record_item(r))
    try:
        aws.client("s3").put_object(
            Bucket=settings().audit_bucket,
            Key=archive_key(first, last),
            Body=archive_body(records, seal),  # gzipped: stored for six years, about a fifth of the bytes
            ContentType="application/x-ndjson",
            ContentEncoding="gzip",
            ChecksumAlgorithm="SHA256",
            IfNoneMatch="*",  # an archived batch is never written twice, not even as a new version
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
            raise
        logger.info("audit batch already archived", extra={"audit_first_seq": first, "audit_last_seq": last})
    seal_item(seal, records).save()


def seal_batch(records: list[dict[str, Any]], prev_seal: str, written_at: str) -> dict[str, Any]:
    """The seal of a batch of chained records: one KMS MAC over their digests
    and the previous seal."""
    seal = {
        "first_seq": records[0]["seq"],
        "last_seq": records[-1]["seq"],
        "hashes": [r["hash"] for r in records],
        "prev_seal": prev_seal,
        "written_at": written_at,
    }
    seal["mac"] = generate_mac(seal_canonical(seal))
    return seal


def handle_batch(event: dict[str, Any]) -> dict[str, Any]:
    head = _head()
    committed = pending_batch(head)
    if committed:
        if not _stored(committed["seal"]):
            _store(committed)

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
    seal = seal_batch(records, head.last_seal or GENESIS, written_at)
    batch = {"records": records, "seal": seal}

    new_last = records[-1]["seq"]
    # The commit point: the head moves only from where it was read, so no two
    # writers ever claim the same sequence numbers, and it keeps the batch until
    # the next batch finds its seal stored.
    AuditRecord(HEAD, 0).update(
        actions=[
            AuditRecord.last_seq.set(new_last),
            AuditRecord.last_hash.set(records[-1]["hash"]),
            AuditRecord.last_event_id.set(records[-1]["event_id"]),
            AuditRecord.last_seal.set(seal_digest(seal)),
            AuditRecord.pending_gz.set(packed(batch)),
            AuditRecord.pending.remove(),
        ],
        condition=AuditRecord.last_seq.does_not_exist() if last_seq == 0 else AuditRecord.last_seq == last_seq,
    )
    logger.info(
        "audit anchor",
        extra={"audit_first_seq": records[0]["seq"], "audit_last_seq": new_last, "audit_seal": seal_digest(seal)},
    )
    metrics.add_metric(name="AuditRecordsWritten", unit=MetricUnit.Count, value=len(records))
    _store(batch)
    return {"batchItemFailures": []}

"""The audit trail's stored form, shared by the writer and the verifier.

One chain holds every record, numbered 1, 2, 3...  A record is the submitted
event plus `seq`, `written_at` and `prev_hash` (the SHA-256 of the record
before it).  Its canonical form (sorted-key JSON of exactly `FIELDS`) is what
is hashed: `hash` is the SHA-256 of that text.

Each batch the writer stores ends with a seal: records `first_seq` to
`last_seq`, the ordered list of their SHA-256 digests (`hashes`), and
`prev_seal`, the SHA-256 of the seal before it.  `mac` is HMAC-SHA-256 of the
seal's canonical form (`SEAL_FIELDS`) under the audit MAC key, which only the
writer's role may use to generate: one KMS call a batch, not one a record.
So:

- editing a record breaks its hash and its digest in the seal;
- removing, inserting or reordering records breaks `seq`, `prev_hash` and the
  seal's list;
- rewriting records consistently (recomputing every SHA-256) no longer
  matches the sealed digests, and changing a seal to match fails its MAC,
  since nobody but the writer can make one;
- removing or reordering whole batches breaks the seals' `prev_seal` chain.

Records and seals are stored twice: in DynamoDB (records in partition
`trail`, seals in partition `seal` under their batch's last seq; the index
`audit_by_subject`, keys only, lists one person's records, which are then
read by key) and in S3 objects
`trail/<first seq>-<last seq>.jsonl` (the batch's records, then its seal)
under Object Lock in COMPLIANCE mode.  The head item (partition `head`)
holds the chain's end and the last batch the writer committed.

DynamoDB keeps a record for the hot window only: its `expires` (DynamoDB TTL,
epoch seconds, not part of the record's hashed form) is its time plus
AUDIT_HOT_DAYS.  A seal's `expires` is the latest of the records it covers
(it leaves with the last of them, never before one); the head never expires.
The archive keeps every record and seal for AUDIT_RETENTION_DAYS, so
DynamoDB's chain of seals starts where the archive's expired ones end.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from pynamodb.attributes import BinaryAttribute, ListAttribute, MapAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.models import Model

from carekey import aws
from carekey.config import settings
from carekey.store import _Meta

TRAIL = "trail"
SEAL = "seal"
HEAD = "head"
GENESIS = "0" * 64
MAC_ALGORITHM = "HMAC_SHA_256"
FIELDS = (
    "seq",
    "event_id",
    "event",
    "outcome",
    "at",
    "written_at",
    "user_id",
    "email_hash",
    "ip",
    "user_agent",
    "request_id",
    "detail",
    "prev_hash",
)
SEAL_FIELDS = ("first_seq", "last_seq", "hashes", "prev_seal", "written_at")
ARCHIVE_PREFIX = "trail/"
DAY = 86400


class AuditRecord(Model):
    """A record (chain "trail", seq >= 1), a seal (chain "seal", seq = its batch's
    last record) or the head item (chain "head", seq 0)."""

    class Meta(_Meta):
        table_name = settings().audit_table

    chain = UnicodeAttribute(hash_key=True)
    seq = NumberAttribute(range_key=True)
    event_id = UnicodeAttribute(null=True)
    event = UnicodeAttribute(null=True)
    outcome = UnicodeAttribute(null=True)
    at = UnicodeAttribute(null=True)
    written_at = UnicodeAttribute(null=True)
    subject = UnicodeAttribute(null=True)
    user_id = UnicodeAttribute(null=True)
    email_hash = UnicodeAttribute(null=True)
    ip = UnicodeAttribute(null=True)
    user_agent = UnicodeAttribute(null=True)
    request_id = UnicodeAttribute(null=True)
    detail = MapAttribute(null=True)
    prev_hash = UnicodeAttribute(null=True)
    hash = UnicodeAttribute(null=True)
    # On records and seals: when DynamoDB's TTL may delete it (expires_at, seal_expires_at).
    expires = TTLAttribute(null=True)
    # Only on seals.
    first_seq = NumberAttribute(null=True)
    hashes = ListAttribute(of=UnicodeAttribute, null=True)
    prev_seal = UnicodeAttribute(null=True)
    mac = UnicodeAttribute(null=True)
    # Only on the head item.
    last_seq = NumberAttribute(null=True)
    last_hash = UnicodeAttribute(null=True)
    last_event_id = UnicodeAttribute(null=True)
    last_seal = UnicodeAttribute(null=True)  # the SHA-256 of the last seal
    # The last committed batch ({"records": [...], "seal": {...}}), so a retry can
    # store it if the attempt that committed it failed to: gzipped JSON (a batch of
    # ten is about 6 KB as text, under 2 KB gzipped, and the head is written once a
    # batch, a write unit a KB); `pending` is the plain JSON heads held before.
    pending_gz = BinaryAttribute(null=True, legacy_encoding=False)
    pending = UnicodeAttribute(null=True)


def packed(batch: dict[str, Any]) -> bytes:
    """A batch as the head keeps it and the archive stores it: gzipped JSON
    (mtime 0, so the same batch always packs to the same bytes)."""
    return gzip.compress(json.dumps(batch, sort_keys=True, separators=(",", ":")).encode(), mtime=0)


def pending_batch(head: "AuditRecord | None") -> dict[str, Any] | None:
    """The head's last committed batch, whichever form it was written in."""
    if head is None:
        return None
    if head.pending_gz:
        return json.loads(gzip.decompress(head.pending_gz))
    return json.loads(head.pending) if head.pending else None


def archive_body(records: list[dict[str, Any]], seal: dict[str, Any]) -> bytes:
    """A batch's archive object: its records then its seal, as JSON lines, gzipped."""
    lines = [json.dumps(r, sort_keys=True, separators=(",", ":")) for r in records]
    lines.append(json.dumps({"seal": seal}, sort_keys=True, separators=(",", ":")))
    return gzip.compress("".join(line + "\n" for line in lines).encode(), mtime=0)


def archive_lines(body: bytes) -> list[str]:
    """The JSON lines of an archive object (gzipped, or plain as objects were first written)."""
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return [ln for ln in body.decode().splitlines() if ln.strip()]


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps({k: record.get(k) for k in FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def digest(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def seal_canonical(seal: dict[str, Any]) -> bytes:
    """What the seal's MAC covers."""
    return json.dumps({k: seal.get(k) for k in SEAL_FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def seal_digest(seal: dict[str, Any]) -> str:
    """What the next seal names as `prev_seal`."""
    return hashlib.sha256(seal_canonical(seal)).hexdigest()


def stored_form(item: AuditRecord) -> dict[str, Any]:
    """A DynamoDB record as the plain dict the archive holds (FIELDS and hash)."""
    data: dict[str, Any] = {k: getattr(item, k) for k in FIELDS}
    data["seq"] = int(item.seq)
    data["detail"] = item.detail.as_dict() if item.detail is not None else None
    data["hash"] = item.hash
    return data


def stored_seal(item: AuditRecord) -> dict[str, Any]:
    """A DynamoDB seal as the plain dict the archive holds (SEAL_FIELDS and mac)."""
    return {
        "first_seq": int(item.first_seq) if item.first_seq is not None else None,
        "last_seq": int(item.seq),
        "hashes": list(item.hashes) if item.hashes is not None else None,
        "prev_seal": item.prev_seal,
        "written_at": item.written_at,
        "mac": item.mac,
    }


def _epoch(text: Any) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def expires_at(record: dict[str, Any], hot_days: int) -> int | None:
    """When a record leaves DynamoDB (epoch seconds): its time (`at`, or
    `written_at` if `at` is not a time) plus the hot window; None, never.  The
    writer sets it as the record's TTL; the verifier computes it again from the
    archived copy, which nobody can change, never from DynamoDB's."""
    start = _epoch(record.get("at"))
    if start is None:
        start = _epoch(record.get("written_at"))
    return None if start is None else start + hot_days * DAY


def seal_expires_at(records: list[dict[str, Any]], hot_days: int) -> int | None:
    """When a seal leaves DynamoDB (epoch seconds): when the last of the records
    it covers does (the latest `expires_at`), so it never leaves before one of
    them; None, never, if one of them never does.  Not the seal's `written_at`:
    a record's `at` is the submitter's clock and may be later than the writer's.
    The verifier computes it again from the archived records, never from
    DynamoDB's `expires`."""
    times = [expires_at(r, hot_days) for r in records]
    return None if not times or None in times else max(t for t in times if t is not None)


def window_start(now: int, hot_days: int) -> str:
    """The time (as `at` is written) from which DynamoDB holds every record:
    one at or after it has not expired (`expires_at` is not before `now`)."""
    return datetime.fromtimestamp(now - hot_days * DAY, tz=timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def subject_of(record: dict[str, Any]) -> str | None:
    """The subject index's key: the user id, else the keyed hash of the address."""
    return record.get("user_id") or record.get("email_hash")


def record_item(record: dict[str, Any]) -> AuditRecord:
    item = AuditRecord(TRAIL, record["seq"], subject=subject_of(record))
    for k, v in record.items():
        if k != "seq":
            setattr(item, k, v)
    expires = expires_at(record, settings().audit_hot_days)
    if expires is not None:
        item.expires = datetime.fromtimestamp(expires, tz=timezone.utc)
    return item


def seal_item(seal: dict[str, Any], records: list[dict[str, Any]] | None = None) -> AuditRecord:
    """A seal as DynamoDB stores it; given the records it covers, with `expires`."""
    item = AuditRecord(
        SEAL, seal["last_seq"], first_seq=seal["first_seq"], hashes=seal["hashes"], prev_seal=seal["prev_seal"],
        written_at=seal["written_at"], mac=seal["mac"],
    )
    expires = seal_expires_at(records, settings().audit_hot_days) if records else None
    if expires is not None:
        item.expires = datetime.fromtimestamp(expires, tz=timezone.utc)
    return item


def generate_mac(message: bytes) -> str:
    response = aws.client("kms").generate_mac(KeyId=settings().audit_mac_key_id, MacAlgorithm=MAC_ALGORITHM, Message=message)
    return base64.b64encode(response["Mac"]).decode()


def verify_mac(message: bytes, mac: str | None) -> bool:
    if not mac:
        return False
    try:
        raw = base64.b64decode(mac, validate=True)
    except ValueError:
        return False
    kms = aws.client("kms")
    try:
        response = kms.verify_mac(KeyId=settings().audit_mac_key_id, MacAlgorithm=MAC_ALGORITHM, Message=message, Mac=raw)
    except kms.exceptions.KMSInvalidMacException:
        return False
    return bool(response.get("MacValid"))


def archive_key(first: int, last: int) -> str:
    return f"{ARCHIVE_PREFIX}{first:012d}-{last:012d}.jsonl"

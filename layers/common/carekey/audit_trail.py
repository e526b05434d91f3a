"""The audit trail's stored form, shared by the writer and the verifier.

One chain holds every record, numbered 1, 2, 3...  A record is the submitted
event plus `seq`, `written_at` and `prev_hash` (the SHA-256 of the record
before it).  Its canonical form (sorted-key JSON of exactly `FIELDS`) is what
is hashed and what KMS MACs: `hash` is the SHA-256 of that text and `mac` is
HMAC-SHA-256 of it under the audit MAC key, which only the writer's role may
use to generate.  So:

- editing a record breaks its hash and its MAC;
- removing, inserting or reordering records breaks `seq` and `prev_hash`;
- rewriting records consistently (recomputing every SHA-256) still fails
  every MAC, since nobody but the writer can make one.

Records are stored twice: in DynamoDB (partition `trail`, sort key `seq`,
index `by_subject` for one person's trail) and in S3 objects
`trail/<first seq>-<last seq>.jsonl` under Object Lock in COMPLIANCE mode.
The head item (partition `head`) holds the chain's end and the batch not yet
archived.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from pynamodb.attributes import MapAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from carekey import aws
from carekey.config import settings
from carekey.store import _Meta

TRAIL = "trail"
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
ARCHIVE_PREFIX = "trail/"


class BySubject(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_subject"
        projection = AllProjection()

    subject = UnicodeAttribute(hash_key=True)
    at = UnicodeAttribute(range_key=True)


class AuditRecord(Model):
    """A record (chain "trail", seq >= 1) or the head item (chain "head", seq 0)."""

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
    mac = UnicodeAttribute(null=True)
    # Only on the head item.
    last_seq = NumberAttribute(null=True)
    last_hash = UnicodeAttribute(null=True)
    last_event_id = UnicodeAttribute(null=True)
    archived_seq = NumberAttribute(null=True)
    pending = UnicodeAttribute(null=True)  # JSON list of the records written but not yet archived
    by_subject = BySubject()


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps({k: record.get(k) for k in FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def digest(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def stored_form(item: AuditRecord) -> dict[str, Any]:
    """A DynamoDB record as the plain dict the archive holds (FIELDS, hash, mac)."""
    data: dict[str, Any] = {k: getattr(item, k) for k in FIELDS}
    data["seq"] = int(item.seq)
    data["detail"] = item.detail.as_dict() if item.detail is not None else None
    data["hash"], data["mac"] = item.hash, item.mac
    return data


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

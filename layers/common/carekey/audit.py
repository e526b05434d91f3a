"""The audit trail: an append-only, hash-chained record of every auth event.

Records live in the audit table, spread over a few chains so that appends do
not contend on one item.  Each record holds the SHA-256 of the previous
record of its chain, and each chain's head item (partition head#<n>) holds the newest sequence
number and hash; an append writes the record and moves the head in one
transaction, conditional on the head not having moved.  Changing, removing
or inserting any record breaks the chain, which `verify_chain` detects.

Each append also writes an "audit anchor" log line (chain, sequence, hash:
no personal data) to the function's log group, which functions cannot edit;
anchors let an auditor prove that even a consistent rewrite of the table is
not the original.

A record says who (user id and the keyed hash of the email), what (event and
outcome), when (UTC), and from where (source IP, user agent, request id).  It
never holds a password, code, token or health information.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from datetime import datetime, timezone
from typing import Any, Iterator

from pynamodb.attributes import MapAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from carekey.api import Client
from carekey.config import settings
from carekey.observability import logger
from carekey.store import _connection, _Meta

CHAINS = 4
GENESIS = "0" * 64
_FIELDS = ("chain", "seq", "event", "outcome", "at", "user_id", "email_hash", "ip", "user_agent", "request_id", "detail", "prev_hash")


class BySubject(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_subject"
        projection = AllProjection()

    subject = UnicodeAttribute(hash_key=True)
    at = UnicodeAttribute(range_key=True)


class AuditRecord(Model):
    class Meta(_Meta):
        table_name = settings().audit_table

    chain = UnicodeAttribute(hash_key=True)
    seq = NumberAttribute(range_key=True)
    event = UnicodeAttribute(null=True)
    outcome = UnicodeAttribute(null=True)
    at = UnicodeAttribute(null=True)
    subject = UnicodeAttribute(null=True)
    user_id = UnicodeAttribute(null=True)
    email_hash = UnicodeAttribute(null=True)
    ip = UnicodeAttribute(null=True)
    user_agent = UnicodeAttribute(null=True)
    request_id = UnicodeAttribute(null=True)
    detail = MapAttribute(null=True)
    prev_hash = UnicodeAttribute(null=True)
    hash = UnicodeAttribute(null=True)
    # Only on head items (seq 0): the chain's newest record.
    last_seq = NumberAttribute(null=True)
    last_hash = UnicodeAttribute(null=True)
    by_subject = BySubject()


def _head_of(chain: str) -> str:
    # Heads live in their own partitions, so IAM can let functions update heads
    # (dynamodb:LeadingKeys "head#*") while records can only be put.
    return chain.replace("chain#", "head#", 1)


def record_hash(fields: dict[str, Any]) -> str:
    canonical = json.dumps({k: fields.get(k) for k in _FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _fields_of(item: AuditRecord) -> dict[str, Any]:
    data = {k: getattr(item, k) for k in _FIELDS}
    data["seq"] = int(item.seq)
    data["detail"] = item.detail.as_dict() if item.detail is not None else None
    return data


def record(
    event: str,
    outcome: str,
    client: Client,
    *,
    user_id: str | None = None,
    email_hash: str | None = None,
    detail: dict[str, str] | None = None,
) -> None:
    """Append one event.  Retries on contention; never raises into the flow, but
    logs loudly if the trail could not be written."""
    chain = f"chain#{random.randrange(CHAINS)}"  # noqa: S311 - spreads load, not a secret
    for attempt in range(8):
        try:
            _append(chain, event, outcome, client, user_id, email_hash, detail)
            return
        except TransactWriteError as exc:
            if exc.cause_response_code != "TransactionCanceledException":
                break
            time.sleep(random.uniform(0, 0.01 * (2**attempt)))  # noqa: S311 - jitter
    logger.error("audit append failed", extra={"audit_event": event})


def _append(
    chain: str, event: str, outcome: str, client: Client, user_id: str | None, email_hash: str | None, detail: dict[str, str] | None
) -> None:
    try:
        head = AuditRecord.get(_head_of(chain), 0, consistent_read=True)
        last_seq, last_hash = int(head.last_seq or 0), head.last_hash or GENESIS
    except DoesNotExist:
        last_seq, last_hash = 0, GENESIS
    fields: dict[str, Any] = {
        "chain": chain,
        "seq": last_seq + 1,
        "event": event,
        "outcome": outcome,
        "at": datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "user_id": user_id,
        "email_hash": email_hash,
        "ip": client.ip,
        "user_agent": client.user_agent,
        "request_id": client.request_id,
        "detail": detail or None,
        "prev_hash": last_hash,
    }
    digest = record_hash(fields)
    item = AuditRecord(**fields, subject=user_id or email_hash, hash=digest)
    head_condition = AuditRecord.last_seq.does_not_exist() if last_seq == 0 else AuditRecord.last_seq == last_seq
    with TransactWrite(connection=_connection()) as tx:
        tx.save(item, condition=AuditRecord.seq.does_not_exist())
        tx.update(
            AuditRecord(_head_of(chain), 0),
            actions=[AuditRecord.last_seq.set(last_seq + 1), AuditRecord.last_hash.set(digest)],
            condition=head_condition,
        )
    logger.info("audit anchor", extra={"audit_chain": chain, "audit_seq": last_seq + 1, "audit_hash": digest})


def chain_records(chain: str) -> Iterator[AuditRecord]:
    return AuditRecord.query(chain, AuditRecord.seq > 0, consistent_read=True)


def verify_chain(chain: str) -> list[str]:
    """Walk one chain; return what is wrong with it (nothing when intact)."""
    problems: list[str] = []
    prev, expected_seq = GENESIS, 1
    for item in chain_records(chain):
        fields = _fields_of(item)
        if fields["seq"] != expected_seq:
            problems.append(f"{chain}: expected record {expected_seq}, found {fields['seq']}")
        if fields["prev_hash"] != prev:
            problems.append(f"{chain}#{fields['seq']}: does not link to the record before it")
        if record_hash(fields) != item.hash:
            problems.append(f"{chain}#{fields['seq']}: contents do not match its hash")
        prev, expected_seq = item.hash or "", fields["seq"] + 1
    try:
        head = AuditRecord.get(_head_of(chain), 0, consistent_read=True)
        if int(head.last_seq or 0) != expected_seq - 1 or (head.last_hash or GENESIS) != prev:
            problems.append(f"{chain}: head says record {head.last_seq}, the chain ends at {expected_seq - 1}")
    except DoesNotExist:
        if expected_seq != 1:
            problems.append(f"{chain}: records without a head")
    return problems


def verify_all() -> tuple[int, list[str]]:
    count, problems = 0, []
    for n in range(CHAINS):
        chain = f"chain#{n}"
        count += sum(1 for _ in chain_records(chain))
        problems += verify_chain(chain)
    return count, problems


def trail_of(subject: str) -> list[dict[str, Any]]:
    """Every record about one user id or email hash, oldest first."""
    return [
        {**_fields_of(item), "hash": item.hash}
        for item in AuditRecord.by_subject.query(subject)
    ]

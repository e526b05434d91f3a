"""Verifying and exporting the audit trail (`make audit-verify`, `make audit-export`).

Needs the read access of `AuditReadPolicy` (no function holds it): the
records in DynamoDB, every version of the archive objects, and kms:VerifyMac.

`verify()` checks, in both stores:

- every record's SHA-256 and its KMS MAC (a consistent rewrite that
  recomputes every SHA-256 still fails the MACs);
- the chain's continuity: sequence numbers 1, 2, 3... with each record
  naming the hash of the one before (removal, insertion, reordering);
- that the head item agrees with the chain's end (truncation);
- that each archive object has exactly one version and no delete marker
  (Object Lock keeps the original; a second version is an attempted edit),
  and that the objects tile the chain without gap or overlap;
- that DynamoDB and the archive hold the same records.  Only the writer's
  current batch may be in DynamoDB and not yet archived.

It reports every problem, the first bad record, and its rate in records a second.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from carekey import aws
from carekey.audit_trail import (
    ARCHIVE_PREFIX,
    GENESIS,
    HEAD,
    TRAIL,
    AuditRecord,
    canonical,
    digest,
    stored_form,
    verify_mac,
)
from carekey.config import settings

_MAC_THREADS = 8


@dataclass
class Verdict:
    records: int = 0
    archived: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def first_bad(self) -> int | None:
        return min((seq for seq, _ in self.problems), default=None)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def add(self, seq: int, what: str) -> None:
        self.problems.append((seq, what))


def _verify_macs(records: list[dict[str, Any]], macs_checked: set[tuple[bytes, str]]) -> None:
    """Ask KMS about every (record, MAC) not yet known good, several at a time."""
    todo = list({(canonical(r), str(r.get("mac"))) for r in records} - macs_checked)
    with ThreadPoolExecutor(max_workers=_MAC_THREADS) as pool:
        for pair, good in zip(todo, pool.map(lambda p: verify_mac(*p), todo), strict=True):
            if good:
                macs_checked.add(pair)


def _check_chain(records: list[dict[str, Any]], where: str, verdict: Verdict, macs_checked: set[tuple[bytes, str]]) -> None:
    """Hashes, MACs and links of one copy of the chain, in seq order."""
    _verify_macs(records, macs_checked)
    prev, expected = GENESIS, 1
    for r in records:
        seq = r.get("seq")
        if not isinstance(seq, int):
            verdict.add(expected, f"{where}: a record without a sequence number")
            continue
        if seq != expected:
            verdict.add(min(seq, expected), f"{where}: expected record {expected}, found record {seq} (removed, inserted or reordered)")
        if r.get("prev_hash") != prev:
            verdict.add(seq, f"{where}: record {seq} does not link to the record before it")
        if digest(r) != r.get("hash"):
            verdict.add(seq, f"{where}: record {seq} does not match its SHA-256")
        if (canonical(r), str(r.get("mac"))) not in macs_checked:
            verdict.add(seq, f"{where}: record {seq} has no valid MAC (not written by the audit writer)")
        prev, expected = r.get("hash"), seq + 1


def _dynamodb_records() -> tuple[list[dict[str, Any]], AuditRecord | None]:
    records = [stored_form(item) for item in AuditRecord.query(TRAIL, consistent_read=True)]
    try:
        head = AuditRecord.get(HEAD, 0, consistent_read=True)
    except AuditRecord.DoesNotExist:
        head = None
    return records, head


def _archive_records(verdict: Verdict) -> list[dict[str, Any]]:
    """Every archived record, read from each object's original version."""
    s3 = aws.client("s3")
    bucket = settings().audit_bucket
    versions: dict[str, list[dict[str, Any]]] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=ARCHIVE_PREFIX):
        for v in page.get("Versions", []):
            versions.setdefault(v["Key"], []).append(v)
        for marker in page.get("DeleteMarkers", []):
            verdict.add(_first_seq(marker["Key"]), f"archive: {marker['Key']} has a delete marker (someone tried to delete it)")
    records: list[dict[str, Any]] = []
    for key in sorted(versions):
        # S3 lists a key's versions newest first: the last one is the original.
        kept = versions[key]
        if len(kept) > 1:
            verdict.add(_first_seq(key), f"archive: {key} has {len(kept)} versions (someone wrote over it; the original is checked)")
        named = _ARCHIVE_KEY.match(key)
        if not named:
            verdict.add(0, f"archive: {key} is not an object the writer writes")
            continue
        first, last = int(named.group(1)), int(named.group(2))
        body = s3.get_object(Bucket=bucket, Key=key, VersionId=kept[-1]["VersionId"])["Body"].read()
        lines = [ln for ln in body.decode().splitlines() if ln.strip()]
        try:
            batch = [json.loads(ln) for ln in lines]
        except ValueError:
            verdict.add(_first_seq(key), f"archive: {key} is not JSON lines")
            continue
        if [r.get("seq") for r in batch] != list(range(first, last + 1)):
            verdict.add(first, f"archive: {key} does not hold records {first} to {last} in order")
        records += batch
    records.sort(key=lambda r: r.get("seq") if isinstance(r.get("seq"), int) else -1)
    return records


_ARCHIVE_KEY = re.compile("^" + re.escape(ARCHIVE_PREFIX) + r"(\d{12})-(\d{12})\.jsonl$")


def _first_seq(key: str) -> int:
    named = _ARCHIVE_KEY.match(key)
    return int(named.group(1)) if named else 0


def verify() -> Verdict:
    started = time.perf_counter()
    verdict = Verdict()
    table, head = _dynamodb_records()
    archive = _archive_records(verdict)
    verdict.records, verdict.archived = len(table), len(archive)
    macs: set[tuple[bytes, str]] = set()
    _check_chain(table, "DynamoDB", verdict, macs)
    _check_chain(archive, "archive", verdict, macs)

    # The writer's current batch (committed in the head, being stored) may be
    # missing from the table's end and from the archive; nothing else may.
    pending = {r["seq"] for r in json.loads(head.pending or "[]")} if head is not None else set()
    end_seq, end_hash = (table[-1]["seq"], table[-1]["hash"]) if table else (0, GENESIS)
    head_seq = int(head.last_seq or 0) if head is not None else 0
    if head is None:
        if table:
            verdict.add(end_seq, "DynamoDB: records but no head item")
    elif head_seq > end_seq and set(range(end_seq + 1, head_seq + 1)) <= pending:
        pass
    elif head_seq != end_seq or (head.last_hash or GENESIS) != end_hash:
        verdict.add(min(end_seq, head_seq) + 1, f"DynamoDB: the head says the chain ends at record {head_seq}, it ends at {end_seq}")

    # The two copies must agree.
    in_archive = {r["seq"]: r for r in archive if isinstance(r.get("seq"), int)}
    for r in table:
        other = in_archive.pop(r["seq"], None)
        if other is None:
            if r["seq"] not in pending:
                verdict.add(r["seq"], f"record {r['seq']} is in DynamoDB but not in the archive")
        elif other != r:
            verdict.add(r["seq"], f"record {r['seq']} differs between DynamoDB and the archive")
    for seq in sorted(in_archive):
        verdict.add(seq, f"record {seq} is in the archive but not in DynamoDB (removed from the table)")
    verdict.problems.sort()
    verdict.seconds = time.perf_counter() - started
    return verdict


def trail_of(subject: str) -> list[dict[str, Any]]:
    """Every record about one user id or email hash, oldest first."""
    return [stored_form(item) for item in AuditRecord.by_subject.query(subject)]

"""Verifying and exporting the audit trail (`make audit-verify`, `make audit-export`).

Needs the read access of `AuditReadPolicy` (no function holds it): the
records and seals in DynamoDB, every version of the archive objects, and
kms:VerifyMac.

`verify()` checks, in both stores:

- every seal's KMS MAC (one VerifyMac a seal), and that the seals chain
  (`prev_seal`) and tile the records without gap or overlap;
- every record's SHA-256, and that it is the digest its seal lists (a
  consistent rewrite that recomputes every SHA-256 no longer matches the
  seal, and a seal changed to match fails its MAC);
- the chain's continuity: sequence numbers 1, 2, 3... with each record
  naming the hash of the one before (removal, insertion, reordering);
- that the head item agrees with the chain's end and its last seal (truncation);
- that each archive object has exactly one version and no delete marker
  (Object Lock keeps the original; a second version is an attempted edit),
  and that the objects tile the chain without gap or overlap;
- that DynamoDB and the archive hold the same records and seals.  Only the
  writer's last committed batch may be in neither yet, and only while the
  seal the head keeps for it has a valid MAC, follows the last stored seal
  and lists the digests of that batch's records.

The archive is the complete trail; DynamoDB keeps records for the hot window
(AUDIT_HOT_DAYS, see carekey.audit_trail).  A record may be missing from
DynamoDB only once it has expired: its time, read from its archived copy
(locked, and vouched for by the digest its seal lists; never DynamoDB's
`expires`, which whoever can write the table can change), plus the hot
window is in the past.  A seal may be missing from DynamoDB only once the
last of the records it covers has expired, judged the same way from the
archive's copies, and only while its archived copy has a valid MAC and
belongs to the archive's chain of seals (from the first, each following the
one before).  DynamoDB's chain is checked with such expired seals taken from
the archive: its first seal (and any after a gap) must follow the archived
seal before it, and a record after a gap must link to the digest the seals
list for the one before.  A record or seal DynamoDB still holds, expired or
not, must equal its archived copy.

It reports every problem, the first bad record, and its rate in records a second.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from carekey import aws, store
from carekey.audit_trail import (
    ARCHIVE_PREFIX,
    GENESIS,
    HEAD,
    SEAL,
    TRAIL,
    AuditRecord,
    archive_lines,
    digest,
    expires_at,
    pending_batch,
    seal_canonical,
    seal_digest,
    seal_expires_at,
    stored_form,
    stored_seal,
    subject_of,
    verify_mac,
)
from carekey.config import settings

_MAC_THREADS = 8


@dataclass
class Verdict:
    records: int = 0
    archived: int = 0
    expired: int = 0  # archived records past the hot window that DynamoDB no longer holds
    expired_seals: int = 0  # archived seals past the hot window that DynamoDB no longer holds
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


def _verify_macs(seals: list[dict[str, Any]], macs_checked: set[tuple[bytes, str]]) -> None:
    """Ask KMS about every (seal, MAC) not yet known good, several at a time."""
    todo = list({(seal_canonical(s), str(s.get("mac"))) for s in seals} - macs_checked)
    if not todo:
        return
    with ThreadPoolExecutor(max_workers=min(_MAC_THREADS, len(todo))) as pool:
        for pair, good in zip(todo, pool.map(lambda p: verify_mac(*p), todo), strict=True):
            if good:
                macs_checked.add(pair)


def _check_chain(
    records: list[dict[str, Any]],
    seals: list[dict[str, Any]],
    where: str,
    verdict: Verdict,
    macs_checked: set[tuple[bytes, str]],
    unsealed_ok: set[int],
    expired: frozenset[int] = frozenset(),
) -> None:
    """Hashes, links and seals of one copy of the chain, in seq order.  Records
    in `unsealed_ok` (the writer's last batch, being stored) may lack a seal;
    records in `expired` (past the hot window) may be missing, and the record
    after such a gap must link to the digest the seals list for the one before."""
    _verify_macs(seals, macs_checked)
    sealed: dict[int, str] = {}  # seq -> the digest its seal lists
    prev_seal, expected = GENESIS, 1
    for s in seals:
        first, last, hashes = s.get("first_seq"), s.get("last_seq"), s.get("hashes")
        if not (isinstance(first, int) and isinstance(last, int) and isinstance(hashes, list)):
            verdict.add(expected, f"{where}: a seal that is not one the writer makes")
            continue
        name = f"the seal of records {first}-{last}"
        if (seal_canonical(s), str(s.get("mac"))) not in macs_checked:
            verdict.add(first, f"{where}: {name} has no valid MAC (not made by the audit writer)")
        if first != expected:
            verdict.add(min(first, expected), f"{where}: expected a seal from record {expected}, found {name} (a batch removed, inserted or reordered)")
        if s.get("prev_seal") != prev_seal:
            verdict.add(first, f"{where}: {name} does not link to the seal before it")
        if len(hashes) != last - first + 1:
            verdict.add(first, f"{where}: {name} lists {len(hashes)} digests for {last - first + 1} records")
        for seq, h in zip(range(first, last + 1), hashes, strict=False):
            sealed[seq] = h
        prev_seal, expected = seal_digest(s), last + 1

    prev, expected = GENESIS, 1
    for r in records:
        seq = r.get("seq")
        if not isinstance(seq, int):
            verdict.add(expected, f"{where}: a record without a sequence number")
            continue
        gone = next((n for n in range(expected, seq) if n not in expired), None) if seq > expected else expected
        if gone is None:
            prev = sealed.get(seq - 1, prev)  # only expired records before it: link to the last as its seal lists it
        elif seq != expected:
            verdict.add(min(seq, gone), f"{where}: expected record {gone}, found record {seq} (removed, inserted or reordered)")
        if r.get("prev_hash") != prev:
            verdict.add(seq, f"{where}: record {seq} does not link to the record before it")
        recomputed = digest(r)
        if recomputed != r.get("hash"):
            verdict.add(seq, f"{where}: record {seq} does not match its SHA-256")
        if seq in sealed:
            if recomputed != sealed[seq]:
                verdict.add(seq, f"{where}: record {seq} does not match its seal (not as the audit writer wrote it)")
        elif seq not in unsealed_ok:
            verdict.add(seq, f"{where}: record {seq} is not sealed (not written by the audit writer)")
        prev, expected = r.get("hash"), seq + 1
    for seq in sorted(set(sealed) - {r.get("seq") for r in records}):
        if seq < expected or seq in unsealed_ok or seq in expired:
            continue  # reported above as a gap, the writer's last batch (not stored yet), or past the hot window
        verdict.add(seq, f"{where}: record {seq} is sealed but missing")


def _dynamodb_records() -> tuple[list[dict[str, Any]], list[dict[str, Any]], AuditRecord | None]:
    records = [stored_form(item) for item in AuditRecord.query(TRAIL, consistent_read=True)]
    seals = [stored_seal(item) for item in AuditRecord.query(SEAL, consistent_read=True)]
    try:
        head = AuditRecord.get(HEAD, 0, consistent_read=True)
    except AuditRecord.DoesNotExist:
        head = None
    return records, seals, head


def _archive_records(verdict: Verdict) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every archived record and seal, read from each object's original version."""
    s3 = aws.client("s3")
    bucket = settings().audit_bucket
    versions: dict[str, list[dict[str, Any]]] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=ARCHIVE_PREFIX):
        for v in page.get("Versions", []):
            versions.setdefault(v["Key"], []).append(v)
        for marker in page.get("DeleteMarkers", []):
            verdict.add(_first_seq(marker["Key"]), f"archive: {marker['Key']} has a delete marker (someone tried to delete it)")
    records: list[dict[str, Any]] = []
    seals: list[dict[str, Any]] = []
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
        try:
            batch = [json.loads(ln) for ln in archive_lines(body)]
        except (ValueError, OSError, EOFError):  # not JSON, not UTF-8, or a broken gzip stream
            verdict.add(_first_seq(key), f"archive: {key} is not JSON lines")
            continue
        sealed = [line["seal"] for line in batch if isinstance(line, dict) and isinstance(line.get("seal"), dict)]
        batch = [line for line in batch if isinstance(line, dict) and "seal" not in line]
        if [r.get("seq") for r in batch] != list(range(first, last + 1)):
            verdict.add(first, f"archive: {key} does not hold records {first} to {last} in order")
        if [(s.get("first_seq"), s.get("last_seq")) for s in sealed] != [(first, last)]:
            verdict.add(first, f"archive: {key} does not end with the one seal of records {first} to {last}")
        records += batch
        seals += sealed
    records.sort(key=lambda r: r.get("seq") if isinstance(r.get("seq"), int) else -1)
    seals.sort(key=lambda s: s.get("first_seq") if isinstance(s.get("first_seq"), int) else -1)
    return records, seals


_ARCHIVE_KEY = re.compile("^" + re.escape(ARCHIVE_PREFIX) + r"(\d{12})-(\d{12})\.jsonl$")


def _first_seq(key: str) -> int:
    named = _ARCHIVE_KEY.match(key)
    return int(named.group(1)) if named else 0


def _committed_batch(head: AuditRecord | None, verdict: Verdict) -> dict[str, Any]:
    """The writer's last committed batch as the head keeps it; anything the writer
    would not have written there is reported (and excuses nothing)."""
    none: dict[str, Any] = {"records": [], "seal": None}
    if head is None or not (head.pending_gz or head.pending):
        return none
    try:
        batch = pending_batch(head)
    except (ValueError, OSError, EOFError):  # not JSON, or a broken gzip stream
        batch = None
    records = batch.get("records") if isinstance(batch, dict) else None
    seal = batch.get("seal") if isinstance(batch, dict) else None
    if (
        not isinstance(records, list)
        or not all(isinstance(r, dict) and isinstance(r.get("seq"), int) for r in records)
        or not isinstance(seal, dict)
        or not all(isinstance(seal.get(k), int) for k in ("first_seq", "last_seq"))
    ):
        verdict.add(int(head.last_seq or 0), "DynamoDB: the head's last batch is not one the audit writer makes")
        return none
    return {"records": records, "seal": seal}


def _with_pending(seals: list[dict[str, Any]], pending_seal: dict[str, Any] | None, pending: set[int]) -> list[dict[str, Any]]:
    """A copy's seals, and the seal of the writer's last batch where that copy lacks it yet."""
    if pending_seal is None or not pending or any(s.get("last_seq") == pending_seal["last_seq"] for s in seals):
        return seals
    return [*seals, pending_seal]


def _expired(archive: list[dict[str, Any]], archive_seals: list[dict[str, Any]], macs: set[tuple[bytes, str]]) -> frozenset[int]:
    """The records past the hot window, judged from their archived copies, each
    counted only when its digest is the one a seal with a valid MAC lists for it
    (so neither DynamoDB nor an object added to the archive can make a record
    look older than the writer wrote it)."""
    vouched: dict[int, set[str]] = {}
    for s in archive_seals:
        first, hashes = s.get("first_seq"), s.get("hashes")
        if isinstance(first, int) and isinstance(hashes, list) and (seal_canonical(s), str(s.get("mac"))) in macs:
            for seq, h in enumerate(hashes, start=first):
                vouched.setdefault(seq, set()).add(h)
    hot_days, now = settings().audit_hot_days, store.now()
    out = set()
    for r in archive:
        seq = r.get("seq")
        if isinstance(seq, int) and digest(r) in vouched.get(seq, ()):
            expires = expires_at(r, hot_days)
            if expires is not None and expires < now:  # DynamoDB's TTL deletes once its time is past
                out.add(seq)
    return frozenset(out)


def _expired_seals(archive: list[dict[str, Any]], archive_seals: list[dict[str, Any]], macs: set[tuple[bytes, str]]) -> dict[int, dict[str, Any]]:
    """The archived seals past the hot window, by last seq: each in the archive's
    chain of seals (a valid MAC, following the seal before it from the first; past
    a break, which the archive's check reports, none), covering archived records
    whose digests it lists, the last of which has expired (`seal_expires_at`,
    judged from those copies, never from DynamoDB's `expires`)."""
    in_archive = {r["seq"]: r for r in archive if isinstance(r.get("seq"), int)}
    hot_days, now = settings().audit_hot_days, store.now()
    out: dict[int, dict[str, Any]] = {}
    prev, expected = GENESIS, 1
    for s in archive_seals:
        first, last, hashes = s.get("first_seq"), s.get("last_seq"), s.get("hashes")
        if not (
            isinstance(first, int)
            and isinstance(last, int)
            and isinstance(hashes, list)
            and first == expected
            and len(hashes) == last - first + 1
            and s.get("prev_seal") == prev
            and (seal_canonical(s), str(s.get("mac"))) in macs
        ):
            break
        covered = [in_archive.get(seq) for seq in range(first, last + 1)]
        if all(r is not None and digest(r) == h for r, h in zip(covered, hashes, strict=True)):
            expires = seal_expires_at([r for r in covered if r is not None], hot_days)
            if expires is not None and expires < now:  # DynamoDB's TTL deletes once its time is past
                out[last] = s
        prev, expected = seal_digest(s), last + 1
    return out


def verify() -> Verdict:
    started = time.perf_counter()
    verdict = Verdict()
    table, table_seals, head = _dynamodb_records()
    archive, archive_seals = _archive_records(verdict)
    verdict.records, verdict.archived = len(table), len(archive)
    in_table = {r["seq"] for r in table}
    macs: set[tuple[bytes, str]] = set()
    _verify_macs(archive_seals, macs)
    # Past the hot window DynamoDB's TTL deletes a record (within days, so it may still be there),
    # and a seal once the last record it covers has expired.  DynamoDB's chain of seals is checked
    # with the expired ones it no longer holds taken from the archive.
    expired = _expired(archive, archive_seals, macs) - in_table
    held = {s["last_seq"] for s in table_seals}
    gone_seals = {last: s for last, s in _expired_seals(archive, archive_seals, macs).items() if last not in held}
    verdict.expired, verdict.expired_seals = len(expired), len(gone_seals)
    chain_seals = sorted([*table_seals, *gone_seals.values()], key=lambda s: s["last_seq"])

    # The writer's last committed batch (in the head) may not be stored yet,
    # in either copy: its records may lack their seal, or be missing.
    # It counts only while it is the batch the head ends with.
    committed = _committed_batch(head, verdict)
    pending = {r["seq"] for r in committed["records"]}
    pending_seal = committed["seal"]
    if pending_seal is None or pending_seal["last_seq"] != int(head.last_seq or 0) or seal_digest(pending_seal) != head.last_seal:
        pending, pending_seal = set(), None
    elif any(s.get("last_seq") == pending_seal["last_seq"] for s in chain_seals):
        pending = set()  # stored (its seal in DynamoDB, or expired from it): checked like every other batch
    if pending_seal is not None and pending:
        # The writer's last batch is excused from being stored, not from being the writer's:
        # its seal (in the head) must carry a valid MAC, follow the seal before it, and list
        # the digests of the records it holds.  It is checked with each copy's seals.
        listed = pending_seal.get("hashes")
        if not isinstance(listed, list) or [digest(r) for r in committed["records"]] != listed:
            verdict.add(int(pending_seal["first_seq"]), "DynamoDB: the head's last batch does not match its seal")
    _check_chain(table, _with_pending(chain_seals, pending_seal, pending), "DynamoDB", verdict, macs, pending, expired)
    _check_chain(archive, _with_pending(archive_seals, pending_seal, pending), "archive", verdict, macs, pending)

    in_archive = {r["seq"]: r for r in archive if isinstance(r.get("seq"), int)}
    end_seq, end_hash = (table[-1]["seq"], table[-1]["hash"]) if table else (0, GENESIS)
    while end_seq + 1 in expired:  # the chain's latest records have left DynamoDB: it ends in the archive
        end_seq += 1
        end_hash = in_archive[end_seq].get("hash")
    head_seq = int(head.last_seq or 0) if head is not None else 0
    if head is None:
        if table or archive:
            verdict.add(end_seq, "DynamoDB: records but no head item")
    elif head_seq > end_seq and set(range(end_seq + 1, head_seq + 1)) <= pending:
        pass
    elif head_seq != end_seq or (head.last_hash or GENESIS) != end_hash:
        verdict.add(min(end_seq, head_seq) + 1, f"DynamoDB: the head says the chain ends at record {head_seq}, it ends at {end_seq}")
    if head is not None and head_seq and not pending:
        last_seal = seal_digest(chain_seals[-1]) if chain_seals else GENESIS
        if (head.last_seal or GENESIS) != last_seal:
            after = int(chain_seals[-1]["last_seq"]) + 1 if chain_seals else 1
            verdict.add(after, "DynamoDB: the head's last seal is not the last seal stored (a batch removed or a seal replaced)")

    # The two copies must agree, but for the records past the hot window DynamoDB no longer holds.
    for r in table:
        other = in_archive.pop(r["seq"], None)
        if other is None:
            if r["seq"] not in pending:
                verdict.add(r["seq"], f"record {r['seq']} is in DynamoDB but not in the archive")
        elif other != r:
            verdict.add(r["seq"], f"record {r['seq']} differs between DynamoDB and the archive")
    for seq in sorted(set(in_archive) - expired):
        verdict.add(seq, f"record {seq} is in the archive but not in DynamoDB (removed from the table before its hot window ended)")
    archived_seals = {s.get("last_seq"): s for s in archive_seals}
    for s in table_seals:
        other = archived_seals.pop(s["last_seq"], None)
        if other is None:
            verdict.add(s["first_seq"] or 0, f"the seal of records {s['first_seq']}-{s['last_seq']} is in DynamoDB but not in the archive")
        elif other != s:
            verdict.add(s["first_seq"] or 0, f"the seal of records {s['first_seq']}-{s['last_seq']} differs between DynamoDB and the archive")
    for last, s in sorted(archived_seals.items(), key=lambda kv: kv[0] if isinstance(kv[0], int) else -1):
        if pending_seal is not None and last == pending_seal["last_seq"] and pending:
            continue  # archived, seal not yet in DynamoDB: the writer's last step
        if last in gone_seals:
            continue  # past the hot window: DynamoDB's TTL deleted it
        verdict.add(s.get("first_seq") or 0, f"the seal of records {s.get('first_seq')}-{last} is in the archive but not in DynamoDB (removed from the table before its hot window ended)")
    verdict.problems.sort()
    verdict.seconds = time.perf_counter() - started
    return verdict


def archived_trail_of(subjects: set[str]) -> list[dict[str, Any]]:
    """Every archived record about these user ids or email hashes (as the
    subject index keys them), read from each object's original version, in
    chain order: the whole trail, past the hot window too.  It reads the whole
    archive, as verify() does; verify() is what reports tampering."""
    records, _ = _archive_records(Verdict())
    return [r for r in records if isinstance(r.get("seq"), int) and subject_of(r) in subjects]


def trail_of(subject: str, since: str | None = None) -> list[dict[str, Any]]:
    """Every record about one user id or email hash that DynamoDB holds (from
    `since`, an ISO time, when given), oldest first: the subject index lists
    their keys, strongly consistent BatchGetItems of up to 100 fetch them.  A
    record gone since the index listed it (its TTL) is left out."""
    return _records_by_key(_subject_keys(subject, since))


def _subject_keys(subject: str, since: str | None = None) -> list[tuple[str, int]]:
    """The (chain, seq) keys of the subject's records, oldest first, as the
    subject index (AUDIT_SUBJECT_INDEX) lists them: keys only and, like any
    index, eventually consistent."""
    names, values = {"#s": "subject", "#c": "chain", "#q": "seq"}, {":s": {"S": subject}}
    condition = "#s = :s"
    if since is not None:
        names["#at"] = "at"  # a reserved word
        values[":at"] = {"S": since}
        condition += " AND #at >= :at"
    pages = aws.client("dynamodb").get_paginator("query").paginate(
        TableName=AuditRecord.Meta.table_name,
        IndexName=settings().audit_subject_index,
        KeyConditionExpression=condition,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
        ProjectionExpression="#c, #q",
    )
    keys = [(item["chain"]["S"], int(item["seq"]["N"])) for page in pages for item in page["Items"]]
    return list(dict.fromkeys(keys))


def _records_by_key(keys: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """These records, in this order, read strongly consistently; one that no
    longer exists is left out."""
    requested = [{"chain": {"S": chain}, "seq": {"N": str(seq)}} for chain, seq in keys]
    found = {(i["chain"]["S"], int(i["seq"]["N"])): i for i in store.batch_get_items(AuditRecord.Meta.table_name, requested)}
    return [stored_form(AuditRecord.from_raw_data(found[k])) for k in keys if k in found]

"""The audit trail: functions submit, one writer chains the records with
SHA-256, seals each batch with one KMS MAC and stores records and seals in
DynamoDB and in the Object-Locked archive; any change to either copy is
detected, nothing submitted is lost, and a request whose event cannot be
submitted fails closed."""

from __future__ import annotations

import gzip
import json
import threading
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from carekey import audit, audit_trail, audit_verify, audit_writer, store
from carekey.api import Client
from carekey.config import settings

from tests.client import PASSWORD


def ddb():
    return boto3.client("dynamodb")


def s3():
    return boto3.client("s3")


def submit(n: int, prefix: str = "evt") -> None:
    for i in range(n):
        audit.record("login", "failure", Client(ip="203.0.113.9", user_agent="test", request_id=f"{prefix}-{i}"), email_hash=f"h{i}")


@pytest.fixture
def trail(queues) -> list[dict[str, Any]]:
    """Given 25 events written by the writer (three archive objects)."""
    submit(25)
    queues.drain()
    records = [audit_trail.stored_form(i) for i in audit_trail.AuditRecord.query(audit_trail.TRAIL)]
    assert [r["seq"] for r in records] == list(range(1, 26))
    assert audit_verify.verify().intact
    return records


def archive_keys() -> list[str]:
    return sorted(o["Key"] for o in s3().list_objects_v2(Bucket=settings().audit_bucket)["Contents"])


def put_record(record: dict[str, Any]) -> None:
    """Write a record into DynamoDB as someone holding table write access would."""
    audit_trail.record_item(record).save()


def seals() -> list[dict[str, Any]]:
    return [audit_trail.stored_seal(i) for i in audit_trail.AuditRecord.query(audit_trail.SEAL)]


def move_head(last: dict[str, Any]) -> None:
    head = audit_trail.AuditRecord.get(audit_trail.HEAD, 0)
    head.update(actions=[audit_trail.AuditRecord.last_seq.set(last["seq"]), audit_trail.AuditRecord.last_hash.set(last["hash"])])


def problems() -> tuple[int | None, str]:
    verdict = audit_verify.verify()
    assert not verdict.intact
    return verdict.first_bad, "\n".join(p for _, p in verdict.problems)


# ---- the request path -------------------------------------------------------------


def test_a_request_submits_its_event_and_the_writer_chains_it(api, queues):
    # Given a registration
    api.register("chained@example.com")
    # Then its event is a record in DynamoDB and in the locked archive, sealed by a KMS MAC
    records = [audit_trail.stored_form(i) for i in audit_trail.AuditRecord.query(audit_trail.TRAIL)]
    assert [(r["seq"], r["event"], r["outcome"]) for r in records] == [(1, "register", "success")]
    assert records[0]["prev_hash"] == audit_trail.GENESIS and records[0]["hash"] == audit_trail.digest(records[0])
    (seal,) = seals()
    assert (seal["first_seq"], seal["last_seq"], seal["hashes"], seal["prev_seal"]) == (1, 1, [records[0]["hash"]], audit_trail.GENESIS)
    assert audit_trail.verify_mac(audit_trail.seal_canonical(seal), seal["mac"])
    (key,) = archive_keys()
    assert key == "trail/000000000001-000000000001.jsonl"
    stored = s3().get_object(Bucket=settings().audit_bucket, Key=key)
    lines = gzip.decompress(stored["Body"].read()).decode().splitlines()  # gzipped: kept six years
    assert stored["ContentEncoding"] == "gzip"
    assert [json.loads(ln) for ln in lines] == [records[0], {"seal": seal}]
    # And the archive object is locked in COMPLIANCE mode for the retention the template sets
    head = s3().head_object(Bucket=settings().audit_bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    days = (head["ObjectLockRetainUntilDate"].date() - datetime.now(timezone.utc).date()).days
    assert 2191 <= days <= 2193


def test_a_request_whose_event_cannot_be_submitted_fails_closed(api):
    # Given the audit queue is gone
    boto3.client("sqs").delete_queue(QueueUrl=settings().audit_queue_url)
    # When a person logs in (a request that must be audited)
    response = api.post("/login", {"email": "nobody@example.com", "password": PASSWORD})
    # Then it fails with 503 and the documented error, never a silent success
    assert response.status == 503
    assert response.json() == {"error": "Service unavailable", "message": "The service could not record this request. Please try again shortly."}
    assert response.headers["Retry-After"] == "5"


def test_a_successful_flow_does_not_succeed_unaudited(api):
    # Given a verified person, then the audit queue gone
    api.verified_user("strict@example.com")
    boto3.client("sqs").delete_queue(QueueUrl=settings().audit_queue_url)
    # When they log in with the right password
    response = api.post("/login", {"email": "strict@example.com", "password": PASSWORD})
    # Then no tokens are handed out
    assert response.status == 503 and "access" not in response.json()


# ---- the writer -------------------------------------------------------------------


def _sqs_event(bodies: list[str]) -> dict[str, Any]:
    return {"Records": [{"messageId": f"m{i}", "body": b, "attributes": {}} for i, b in enumerate(bodies)]}


def _submission(event_id: str) -> str:
    return json.dumps({"v": 1, "event_id": event_id, "event": "logout", "outcome": "this_session", "at": "2026-01-01T00:00:00.000000Z", "user_id": "u1"})


def test_a_redelivered_batch_is_not_written_twice():
    # Given a batch the writer has written
    event = _sqs_event([_submission("a"), _submission("b")])
    audit_writer.handle_batch(event)
    # When SQS delivers it again, plus one new event
    audit_writer.handle_batch(_sqs_event([_submission("a"), _submission("b"), _submission("c")]))
    # Then each event is in the chain once
    verdict = audit_verify.verify()
    assert verdict.intact and verdict.records == verdict.archived == 3
    assert [r["event_id"] for r in audit_verify.trail_of("u1")] == ["a", "b", "c"]


def test_a_batch_committed_but_not_archived_is_archived_on_the_retry(monkeypatch):
    # Given the archive fails once, after the batch is committed and in DynamoDB
    real_client = audit_writer.aws.client

    class FlakyS3:
        failed = False

        def put_object(self, **kw):
            if not FlakyS3.failed:
                FlakyS3.failed = True
                raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "PutObject")
            return real_client("s3").put_object(**kw)

    monkeypatch.setattr(audit_writer.aws, "client", lambda service: FlakyS3() if service == "s3" else real_client(service))
    event = _sqs_event([_submission("x"), _submission("y")])
    with pytest.raises(ClientError):
        audit_writer.handle_batch(event)
    monkeypatch.undo()
    # Then verify says the batch is written but not yet archived, which is allowed
    assert audit_verify.verify().intact
    assert "Contents" not in s3().list_objects_v2(Bucket=settings().audit_bucket)
    # When SQS delivers the batch again
    audit_writer.handle_batch(event)
    # Then it is archived once and written once
    verdict = audit_verify.verify()
    assert verdict.intact and verdict.records == verdict.archived == 2
    assert archive_keys() == ["trail/000000000001-000000000002.jsonl"]


def test_a_batch_costs_one_mac_one_head_write_and_one_archive_object(monkeypatch):
    # Given the writer's calls to KMS and to the head are counted
    macs: list[bytes] = []
    real_mac = audit_writer.generate_mac
    monkeypatch.setattr(audit_writer, "generate_mac", lambda message: macs.append(message) or real_mac(message))
    head_writes: list[int] = []
    real_update = audit_trail.AuditRecord.update

    def counted_update(self, *args, **kwargs):
        if self.chain == audit_trail.HEAD:
            head_writes.append(1)
        return real_update(self, *args, **kwargs)

    monkeypatch.setattr(audit_trail.AuditRecord, "update", counted_update)
    # When two batches of ten events are written
    audit_writer.handle_batch(_sqs_event([_submission(f"a{i}") for i in range(10)]))
    audit_writer.handle_batch(_sqs_event([_submission(f"b{i}") for i in range(10)]))
    # Then each batch made one MAC, one head write and one archive object, and every record is verified
    assert len(macs) == 2 and len(head_writes) == 2
    assert archive_keys() == ["trail/000000000001-000000000010.jsonl", "trail/000000000011-000000000020.jsonl"]
    first, second = seals()
    assert second["prev_seal"] == audit_trail.seal_digest(first) and len(second["hashes"]) == 10
    verdict = audit_verify.verify()
    assert verdict.intact and verdict.records == verdict.archived == 20


def test_an_unreadable_submission_is_recorded_not_dropped():
    # Given a message that is not a submission between two that are
    audit_writer.handle_batch(_sqs_event([_submission("ok1"), "{not json", _submission("ok2")]))
    # Then all three are in the verified chain, the odd one by its message id
    records = [audit_trail.stored_form(i) for i in audit_trail.AuditRecord.query(audit_trail.TRAIL)]
    assert [r["event"] for r in records] == ["logout", "invalid_submission", "logout"]
    assert records[1]["detail"] == {"message_id": "m1"}
    assert audit_verify.verify().intact


EACH = 15  # events a thread submits in the test below


@pytest.mark.slow
def test_three_hundred_events_from_twenty_threads_are_all_in_the_verified_chain(queues):
    # Given 20 threads submitting 15 events each while the queue is consumed in the background
    # (30 writer batches, each racing the submitters; `make bench` audit runs 1,000 for throughput)
    queues.start(interval=0.05)
    failures: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            submit(EACH, prefix=f"t{t}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(20)]
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        queues.stop()
    queues.drain()
    assert failures == []
    # Then the chain verifies and holds every one of the 300 events exactly once
    verdict = audit_verify.verify()
    assert verdict.problems == []
    assert verdict.records == verdict.archived == 20 * EACH
    request_ids = [i.request_id for i in audit_trail.AuditRecord.query(audit_trail.TRAIL)]
    assert sorted(request_ids) == sorted(f"t{t}-{i}" for t in range(20) for i in range(EACH))
    # And each thread's events are in the order it submitted them
    for t in range(20):
        mine = [int(r.split("-")[1]) for r in request_ids if r.startswith(f"t{t}-")]
        assert mine == sorted(mine)


def test_records_and_seals_carry_their_expiry_the_head_never_expires():
    # Given a batch of two events, the first an hour newer than the second (`at` is the submitter's clock)
    newer = json.dumps({"v": 1, "event_id": "new", "event": "logout", "outcome": "this_session", "at": "2026-01-01T01:00:00.500000Z", "user_id": "u1"})
    older = json.dumps({"v": 1, "event_id": "old", "event": "logout", "outcome": "this_session", "at": "2026-01-01T00:00:00.000000Z", "user_id": "u1"})
    # When the writer stores them
    audit_writer.handle_batch(_sqs_event([newer, older]))
    # Then each record carries `expires`, a DynamoDB TTL (a number of epoch seconds): its time plus the hot window
    assert settings().audit_hot_days == 90
    day0 = int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp())
    items = ddb().query(TableName=settings().audit_table, KeyConditionExpression="chain = :c", ExpressionAttributeValues={":c": {"S": "trail"}})["Items"]
    assert [i["expires"] for i in items] == [{"N": str(day0 + 3600 + 90 * 86400)}, {"N": str(day0 + 90 * 86400)}]
    # And the seal leaves with the last record it covers (the newest, not the last in the batch), never before one
    (seal,) = ddb().query(TableName=settings().audit_table, KeyConditionExpression="chain = :c", ExpressionAttributeValues={":c": {"S": "seal"}})["Items"]
    assert seal["expires"] == {"N": str(day0 + 3600 + 90 * 86400)}
    # And the head has none: it stays in DynamoDB
    (head,) = ddb().query(TableName=settings().audit_table, KeyConditionExpression="chain = :c", ExpressionAttributeValues={":c": {"S": "head"}})["Items"]
    assert "expires" not in head
    # And the TTL is not part of the record nor of the seal: the archived copies (the hashed and MAC'd forms) have no `expires`
    (key,) = archive_keys()
    lines = [json.loads(ln) for ln in audit_trail.archive_lines(s3().get_object(Bucket=settings().audit_bucket, Key=key)["Body"].read())]
    assert len(lines) == 3 and all("expires" not in ln and "expires" not in ln.get("seal", {}) for ln in lines)
    assert ddb().describe_time_to_live(TableName=settings().audit_table)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    assert audit_verify.verify().intact


# ---- tampering with DynamoDB ------------------------------------------------------


def test_dynamodb_edit_is_detected(trail):
    # When someone changes one record's outcome
    ddb().update_item(
        TableName=settings().audit_table,
        Key={"chain": {"S": "trail"}, "seq": {"N": "7"}},
        UpdateExpression="SET outcome = :o",
        ExpressionAttributeValues={":o": {"S": "success"}},
    )
    first, text = problems()
    assert first == 7
    assert "record 7 does not match its SHA-256" in text and "record 7 does not match its seal" in text
    assert "record 7 differs between DynamoDB and the archive" in text


def test_dynamodb_delete_is_detected(trail):
    ddb().delete_item(TableName=settings().audit_table, Key={"chain": {"S": "trail"}, "seq": {"N": "4"}})
    first, text = problems()
    assert first == 4
    assert "expected record 4, found record 5" in text and "record 4 is in the archive but not in DynamoDB" in text


def test_dynamodb_insert_is_detected(trail):
    # When someone appends a well-linked record and moves the head
    forged = {**trail[-1], "seq": 26, "event_id": "forged", "outcome": "success", "prev_hash": trail[-1]["hash"]}
    forged["hash"] = audit_trail.digest(forged)
    put_record(forged)
    move_head(forged)
    first, text = problems()
    assert first == 26
    assert "DynamoDB: record 26 is not sealed" in text and "record 26 is in DynamoDB but not in the archive" in text


def test_a_record_appended_as_the_writers_unfinished_batch_is_detected(trail):
    # When someone appends a well-linked record and dresses the head up as if the writer had
    # committed it and not yet stored its seal, with a seal whose MAC is another seal's
    forged = {**trail[-1], "seq": 26, "event_id": "forged", "outcome": "success", "prev_hash": trail[-1]["hash"]}
    forged["hash"] = audit_trail.digest(forged)
    put_record(forged)
    last = seals()[-1]
    fake = {"first_seq": 26, "last_seq": 26, "hashes": [forged["hash"]], "prev_seal": audit_trail.seal_digest(last),
            "written_at": forged["written_at"], "mac": last["mac"]}
    head = audit_trail.AuditRecord.get(audit_trail.HEAD, 0)
    head.update(actions=[
        audit_trail.AuditRecord.last_seq.set(26),
        audit_trail.AuditRecord.last_hash.set(forged["hash"]),
        audit_trail.AuditRecord.last_event_id.set("forged"),
        audit_trail.AuditRecord.last_seal.set(audit_trail.seal_digest(fake)),
        audit_trail.AuditRecord.pending_gz.set(audit_trail.packed({"records": [forged], "seal": fake})),
    ])
    # Then the verifier is not fooled: the unfinished batch's seal has no valid MAC
    first, text = problems()
    assert first == 26
    assert "the seal of records 26-26 has no valid MAC" in text


GARBAGE = ["not json", "[]", '{"records": [], "seal": {"last_seq": "x"}}', '{"records": 5, "seal": null}', '{"seal": {}}']


@pytest.mark.parametrize(
    "pending",
    [gzip.compress(g.encode()) for g in GARBAGE] + [b"\x1f\x8b not a gzip stream", b"plain bytes", gzip.compress(b"\xff\xfe not utf-8")],
)
def test_a_head_whose_unfinished_batch_is_garbage_is_reported_not_a_crash(trail, pending):
    # When someone writes garbage where the head keeps the writer's unfinished batch
    head = audit_trail.AuditRecord.get(audit_trail.HEAD, 0)
    head.update(actions=[audit_trail.AuditRecord.pending_gz.set(pending)])
    # Then the verifier runs to the end and reports it (the writer never writes such a head)
    verdict = audit_verify.verify()
    assert verdict.records == 25
    assert not verdict.intact and any("the head's last batch is not one the audit writer makes" in p for _, p in verdict.problems)


@pytest.mark.parametrize("pending", GARBAGE)
def test_a_head_in_the_earlier_plain_form_with_garbage_is_reported_too(trail, pending):
    head = audit_trail.AuditRecord.get(audit_trail.HEAD, 0)
    head.update(actions=[audit_trail.AuditRecord.pending_gz.remove(), audit_trail.AuditRecord.pending.set(pending)])
    verdict = audit_verify.verify()
    assert not verdict.intact and any("the head's last batch is not one the audit writer makes" in p for _, p in verdict.problems)


def test_the_head_keeps_its_batch_gzipped_and_a_head_written_as_plain_json_still_reads(trail, queues, api):
    # Given the writer's head after a batch
    head = audit_trail.AuditRecord.get(audit_trail.HEAD, 0)
    batch = audit_trail.pending_batch(head)
    # Then it holds the batch gzipped (a fraction of the JSON's write units), and no plain copy
    text = json.dumps(batch, sort_keys=True, separators=(",", ":")).encode()
    assert head.pending is None and gzip.decompress(head.pending_gz) == text and len(head.pending_gz) < len(text) / 2
    # Given a head as it was written before, the same batch as plain JSON
    head.update(actions=[audit_trail.AuditRecord.pending_gz.remove(), audit_trail.AuditRecord.pending.set(text.decode())])
    # Then the trail verifies, and the writer carries on from it
    assert audit_verify.verify().intact
    api.register("after-upgrade@example.com")
    queues.drain()
    assert audit_verify.verify().intact
    assert audit_trail.pending_batch(audit_trail.AuditRecord.get(audit_trail.HEAD, 0))["records"][-1]["event"] == "register"


def test_dynamodb_reorder_is_detected(trail):
    # When someone swaps the contents of records 10 and 11, keeping their numbers
    a, b = trail[9], trail[10]
    put_record({**b, "seq": 10})
    put_record({**a, "seq": 11})
    first, text = problems()
    assert first == 10
    assert "record 10 does not link to the record before it" in text


def test_dynamodb_consistent_rewrite_with_recomputed_sha256_is_detected(trail):
    # When someone edits record 5 and recomputes every later SHA-256 and link, and the head
    prev = trail[3]["hash"]
    rewritten = []
    for r in trail[4:]:
        r = {**r, "prev_hash": prev}
        if r["seq"] == 5:
            r["outcome"] = "success"
        r["hash"] = prev = audit_trail.digest(r)
        rewritten.append(r)
        put_record(r)
    move_head(rewritten[-1])
    first, text = problems()
    # Then hashes and links agree, but not one rewritten record matches its seal
    assert first == 5
    assert "SHA-256" not in text and "does not link" not in text
    for seq in range(5, 26):
        assert f"DynamoDB: record {seq} does not match its seal" in text


# ---- tampering with seals ---------------------------------------------------------


def _rewrite_from(trail: list[dict[str, Any]], seq: int) -> list[dict[str, Any]]:
    """Records from `seq` on, record `seq` edited, every later SHA-256 and link recomputed."""
    prev, out = trail[seq - 2]["hash"], []
    for r in trail[seq - 1 :]:
        r = {**r, "prev_hash": prev, "outcome": "success" if r["seq"] == seq else r["outcome"]}
        r["hash"] = prev = audit_trail.digest(r)
        out.append(r)
    return out


def test_a_seal_rewritten_to_match_rewritten_records_fails_its_mac(trail):
    # When someone rewrites records 12-20 consistently and puts the digests in their seal, keeping its MAC
    for r in _rewrite_from(trail, 12)[:9]:
        put_record(r)
    seal = next(s for s in seals() if s["first_seq"] == 11)
    rewritten = [r.hash for r in audit_trail.AuditRecord.query(audit_trail.TRAIL) if 11 <= r.seq <= 20]
    audit_trail.seal_item({**seal, "hashes": rewritten}).save()
    first, text = problems()
    # Then the records match the seal, but the seal has no valid MAC
    assert first == 11
    assert "DynamoDB: the seal of records 11-20 has no valid MAC" in text
    assert "DynamoDB: record 12 does not match its seal" not in text
    assert "the seal of records 11-20 differs between DynamoDB and the archive" in text


def test_a_seal_forged_with_a_mac_from_another_seal_is_detected(trail):
    # When someone moves the MAC of the first seal onto a forged seal of records 11-20
    first_seal, second = seals()[0], seals()[1]
    audit_trail.seal_item({**second, "mac": first_seal["mac"]}).save()
    first, text = problems()
    assert first == 11 and "DynamoDB: the seal of records 11-20 has no valid MAC" in text


def test_a_deleted_seal_is_detected(trail):
    # When someone deletes the seal of records 11-20
    ddb().delete_item(TableName=settings().audit_table, Key={"chain": {"S": "seal"}, "seq": {"N": "20"}})
    first, text = problems()
    # Then those records are unsealed and the next seal no longer follows
    assert first == 11
    assert "DynamoDB: record 11 is not sealed" in text and "DynamoDB: record 20 is not sealed" in text
    assert "DynamoDB: expected a seal from record 11, found the seal of records 21-25" in text
    assert "the seal of records 11-20 is in the archive but not in DynamoDB" in text


def test_a_whole_batch_removed_with_its_seal_is_detected(trail):
    # When someone deletes records 21-25 and their seal, and moves the head back to record 20
    for seq in range(21, 26):
        ddb().delete_item(TableName=settings().audit_table, Key={"chain": {"S": "trail"}, "seq": {"N": str(seq)}})
    ddb().delete_item(TableName=settings().audit_table, Key={"chain": {"S": "seal"}, "seq": {"N": "25"}})
    move_head(trail[19])
    first, text = problems()
    assert first == 21
    assert "record 21 is in the archive but not in DynamoDB" in text
    assert "the head's last seal is not the last seal stored" in text


# ---- the hot window: DynamoDB keeps recent records, the archive every one ---------

DAY = 86400


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _at(event_id: str, epoch: int) -> str:
    return json.dumps({"v": 1, "event_id": event_id, "event": "login", "outcome": "success", "at": _iso(epoch), "user_id": "u1"})


def _clock(monkeypatch, epoch: int) -> None:
    monkeypatch.setattr(store, "now", lambda: epoch)


def _ttl_sweep(only: set[int] | None = None, chain: str = "trail") -> list[int]:
    """What DynamoDB's TTL does (lazily, within days, items in no particular order): delete
    the records (or, with chain="seal", the seals, by their last seq) whose `expires` is past."""
    items = ddb().query(TableName=settings().audit_table, KeyConditionExpression="chain = :c", ExpressionAttributeValues={":c": {"S": chain}})["Items"]
    gone = [int(i["seq"]["N"]) for i in items if "expires" in i and int(i["expires"]["N"]) < store.now()]
    gone = [seq for seq in gone if only is None or seq in only]
    for seq in gone:
        _delete_item(chain, seq)
    return gone


def _delete_item(chain: str, seq: int) -> None:
    ddb().delete_item(TableName=settings().audit_table, Key={"chain": {"S": chain}, "seq": {"N": str(seq)}})


def _delete_record(seq: int) -> None:
    _delete_item("trail", seq)


@pytest.fixture
def aged(monkeypatch) -> int:
    """Given records 1-10 written at t0 and 11-15 sixty days later; returns t0."""
    t0 = store.now() - 200 * DAY
    audit_writer.handle_batch(_sqs_event([_at(f"a{i}", t0) for i in range(10)]))
    audit_writer.handle_batch(_sqs_event([_at(f"b{i}", t0 + 60 * DAY) for i in range(5)]))
    _clock(monkeypatch, t0 + DAY)
    assert audit_verify.verify().intact
    return t0


def test_records_past_the_hot_window_leave_dynamodb_and_the_trail_still_verifies(aged, monkeypatch):
    # When 91 days have passed and DynamoDB's TTL has deleted what expired (records 1-10 and their seal)
    _clock(monkeypatch, aged + 91 * DAY)
    assert _ttl_sweep() == list(range(1, 11))
    assert _ttl_sweep(chain="seal") == [10]
    # Then the trail verifies: the archive holds every record and seal, DynamoDB the five records of the window
    # and their seal, which follows the archive's seal of records 1-10
    verdict = audit_verify.verify()
    assert verdict.problems == []
    assert (verdict.records, verdict.archived, verdict.expired, verdict.expired_seals) == (5, 15, 10, 1)
    assert [s["last_seq"] for s in seals()] == [15]
    # And the operators' query answers from DynamoDB's window
    assert [r["event_id"] for r in audit_verify.trail_of("u1")] == [f"b{i}" for i in range(5)]


def test_ttl_deletes_lazily_and_an_expired_record_still_there_must_match_the_archive(aged, monkeypatch):
    # When the records have expired but TTL has deleted only some of them so far
    _clock(monkeypatch, aged + 91 * DAY)
    assert _ttl_sweep(only={2, 3, 7}) == [2, 3, 7]
    # Then the trail verifies
    verdict = audit_verify.verify()
    assert verdict.problems == [] and verdict.expired == 3
    # But an expired record still in DynamoDB is checked like any other
    ddb().update_item(TableName=settings().audit_table, Key={"chain": {"S": "trail"}, "seq": {"N": "5"}},
                      UpdateExpression="SET outcome = :o", ExpressionAttributeValues={":o": {"S": "failure"}})
    first, text = problems()
    assert first == 5 and "record 5 differs between DynamoDB and the archive" in text


def test_a_trail_wholly_past_its_window_verifies_from_the_archive(aged, monkeypatch):
    # When every record has expired and left DynamoDB (a quiet service), and TTL has so far deleted
    # the newer seal only (it deletes in no particular order); the head stays
    _clock(monkeypatch, aged + 151 * DAY)
    tenth = audit_trail.stored_form(audit_trail.AuditRecord.get(audit_trail.TRAIL, 10))
    assert _ttl_sweep() == list(range(1, 16))
    assert _ttl_sweep(only={15}, chain="seal") == [15]
    # Then the trail verifies: the head ends where the archive's chain ends, its last seal is the archive's
    verdict = audit_verify.verify()
    assert verdict.problems == [] and (verdict.records, verdict.archived, verdict.expired, verdict.expired_seals) == (0, 15, 15, 1)
    # And once every seal has gone too, it still does
    assert _ttl_sweep(chain="seal") == [10]
    verdict = audit_verify.verify()
    assert verdict.problems == [] and (verdict.records, verdict.archived, verdict.expired, verdict.expired_seals) == (0, 15, 15, 2)
    # And the head's last seal is still checked against the archive's: a head whose batch (the one the
    # writer would store again) carries another seal, consistently, is reported
    head = audit_trail.AuditRecord.get(audit_trail.HEAD, 0)
    batch = audit_trail.pending_batch(head)
    other = {**batch, "seal": {**batch["seal"], "written_at": _iso(aged)}}
    head.update(actions=[audit_trail.AuditRecord.last_seal.set(audit_trail.seal_digest(other["seal"])),
                         audit_trail.AuditRecord.pending_gz.set(audit_trail.packed(other))])
    first, text = problems()
    assert first == 16 and "DynamoDB: the head's last seal is not the last seal stored" in text
    head.update(actions=[audit_trail.AuditRecord.last_seal.set(audit_trail.seal_digest(batch["seal"])),
                         audit_trail.AuditRecord.pending_gz.set(audit_trail.packed(batch))])
    assert audit_verify.verify().problems == []
    # And the head is still checked against the archive's end: moved back a batch, it is reported
    move_head(tenth)
    first, text = problems()
    assert first == 11 and "DynamoDB: the head says the chain ends at record 10, it ends at 15" in text
    # And so is removing the head, though DynamoDB holds no record any more
    ddb().delete_item(TableName=settings().audit_table, Key={"chain": {"S": "head"}, "seq": {"N": "0"}})
    assert "DynamoDB: records but no head item" in problems()[1]


def test_a_record_removed_before_its_window_ends_is_reported(aged, monkeypatch):
    # Given records 1-10 expired and gone
    _clock(monkeypatch, aged + 91 * DAY)
    _ttl_sweep()
    # When someone deletes record 13, which is still in its window
    _delete_record(13)
    first, text = problems()
    # Then it is reported as a deletion, exactly as before the window existed
    assert first == 13
    assert "DynamoDB: expected record 13, found record 14" in text
    assert "record 13 is in the archive but not in DynamoDB" in text
    assert "record 1 " not in text and "record 10 " not in text


def test_a_record_may_leave_only_once_its_expiry_is_past(aged, monkeypatch):
    # Given record 11's expiry: its time plus 90 days, to the second
    expiry = aged + 60 * DAY + 90 * DAY
    _delete_record(11)
    # When it is gone at its expiry second, then it is a deletion (DynamoDB deletes only after it)
    _clock(monkeypatch, expiry)
    first, text = problems()
    assert first == 11 and "record 11 is in the archive but not in DynamoDB" in text
    # And one second later it has expired
    _clock(monkeypatch, expiry + 1)
    assert audit_verify.verify().problems == []


def test_a_recent_record_cannot_be_made_to_look_expired_from_dynamodb(aged, monkeypatch):
    # Given records 1-10 expired and gone, 11-15 in their window
    _clock(monkeypatch, aged + 91 * DAY)
    _ttl_sweep()
    # When someone with write access to the table backdates record 12 (its time and its TTL),
    # so that DynamoDB's own TTL deletes it
    ddb().update_item(TableName=settings().audit_table, Key={"chain": {"S": "trail"}, "seq": {"N": "12"}},
                      UpdateExpression="SET #at = :at, expires = :e", ExpressionAttributeNames={"#at": "at"},
                      ExpressionAttributeValues={":at": {"S": _iso(aged)}, ":e": {"N": str(aged + DAY)}})
    assert _ttl_sweep() == [12]
    first, text = problems()
    # Then it is reported: expiry is judged from the archived copy, which nobody can change
    assert first == 12 and "record 12 is in the archive but not in DynamoDB" in text


def test_an_archive_object_backdating_a_recent_record_excuses_nothing(aged, monkeypatch):
    # Given records 1-10 expired and gone
    _clock(monkeypatch, aged + 91 * DAY)
    _ttl_sweep()
    # When someone deletes record 12 from DynamoDB and adds an archive object holding it
    # backdated, consistently rehashed, with the MAC of its real seal
    body = s3().get_object(Bucket=settings().audit_bucket, Key=audit_trail.archive_key(11, 15))["Body"].read()
    (archived,) = [r for r in map(json.loads, audit_trail.archive_lines(body)) if r.get("seq") == 12]
    forged = {**archived, "at": _iso(aged)}
    forged["hash"] = audit_trail.digest(forged)
    real_seal = next(s for s in seals() if s["last_seq"] == 15)
    body = json.dumps(forged) + "\n" + json.dumps({"seal": {**real_seal, "first_seq": 12, "last_seq": 12, "hashes": [forged["hash"]]}}) + "\n"
    s3().put_object(Bucket=settings().audit_bucket, Key=audit_trail.archive_key(12, 12), Body=body.encode())
    _delete_record(12)
    first, text = problems()
    # Then the deletion is still reported: only a copy its (MAC'd) seal vouches for dates a record
    assert first == 12
    assert "record 12 is in the archive but not in DynamoDB" in text
    assert "archive: the seal of records 12-12 has no valid MAC" in text


# ---- the hot window: seals leave DynamoDB with the last record they cover ----------


@pytest.fixture
def aged3(aged) -> int:
    """Given also records 16-20, a day after 11-15 (the head holds their batch); returns t0."""
    audit_writer.handle_batch(_sqs_event([_at(f"c{i}", aged + 61 * DAY) for i in range(5)]))
    assert audit_verify.verify().intact
    return aged


def _delete_seal(last: int) -> None:
    _delete_item("seal", last)


def test_a_seal_may_leave_before_its_records_which_are_still_checked_against_its_archived_copy(aged, monkeypatch):
    # When 91 days have passed and TTL has deleted the seal of records 1-10 but not yet the records
    _clock(monkeypatch, aged + 91 * DAY)
    assert _ttl_sweep(chain="seal") == [10]
    # Then the trail verifies
    verdict = audit_verify.verify()
    assert verdict.problems == [] and (verdict.records, verdict.expired, verdict.expired_seals) == (15, 0, 1)
    # And so it does once TTL has deleted some of the records too
    assert _ttl_sweep(only={2, 3, 7}) == [2, 3, 7]
    assert audit_verify.verify().problems == []
    # But an expired record still in DynamoDB, rewritten consistently, no longer matches the digest
    # its seal lists: the archived seal stands in for the one DynamoDB let go
    record = audit_trail.stored_form(audit_trail.AuditRecord.get(audit_trail.TRAIL, 5))
    rewritten = {**record, "outcome": "failure"}
    rewritten["hash"] = audit_trail.digest(rewritten)
    put_record(rewritten)
    first, text = problems()
    assert first == 5 and "DynamoDB: record 5 does not match its seal" in text


def test_a_seal_removed_before_its_window_ends_is_reported(aged3, monkeypatch):
    # Given records 1-10 and their seal expired and gone
    _clock(monkeypatch, aged3 + 91 * DAY)
    assert _ttl_sweep() == list(range(1, 11)) and _ttl_sweep(chain="seal") == [10]
    # When someone deletes the seal of records 11-15, which are still in their window
    _delete_seal(15)
    first, text = problems()
    # Then it is reported as a deletion, exactly as before seals expired
    assert first == 11
    assert "the seal of records 11-15 is in the archive but not in DynamoDB" in text
    assert "DynamoDB: expected a seal from record 11, found the seal of records 16-20" in text
    assert "DynamoDB: record 11 is not sealed" in text
    assert "records 1-10" not in text


def test_a_seal_may_leave_only_once_the_newest_record_it_covers_has_expired(monkeypatch):
    # Given a batch whose last record is older than the one before it (`at` is the submitter's clock),
    # and a later batch
    t0 = store.now() - 200 * DAY
    audit_writer.handle_batch(_sqs_event([_at("a0", t0), _at("a1", t0 + 30 * DAY), _at("a2", t0)]))
    audit_writer.handle_batch(_sqs_event([_at("b0", t0 + 60 * DAY)]))
    expiry = t0 + 30 * DAY + 90 * DAY
    # When records 1 and 3 have expired and left, and someone deletes the batch's seal
    _clock(monkeypatch, t0 + 91 * DAY)
    assert _ttl_sweep() == [1, 3]
    _delete_seal(3)
    # Then it is a deletion: the seal leaves with the newest record it covers, not the first or the last
    first, text = problems()
    assert first == 1 and "the seal of records 1-3 is in the archive but not in DynamoDB" in text
    # And so it is at that record's expiry second
    _clock(monkeypatch, expiry)
    assert "the seal of records 1-3 is in the archive but not in DynamoDB" in problems()[1]
    # And one second later the seal has expired (record 2, still in DynamoDB, is checked against its archived copy)
    _clock(monkeypatch, expiry + 1)
    verdict = audit_verify.verify()
    assert verdict.problems == [] and (verdict.records, verdict.expired, verdict.expired_seals) == (2, 2, 1)


def test_a_recent_seal_cannot_be_made_to_look_expired_from_dynamodb(aged3, monkeypatch):
    # Given records 1-10 and their seal expired and gone, 11-15 in their window
    _clock(monkeypatch, aged3 + 91 * DAY)
    _ttl_sweep()
    _ttl_sweep(chain="seal")
    # When someone with write access to the table backdates the seal of records 11-15 and the
    # records themselves (their time and their TTL), so that DynamoDB's own TTL deletes them
    past = {":e": {"N": str(aged3 + DAY)}}
    for seq in range(11, 16):
        ddb().update_item(TableName=settings().audit_table, Key={"chain": {"S": "trail"}, "seq": {"N": str(seq)}},
                          UpdateExpression="SET #at = :at, expires = :e", ExpressionAttributeNames={"#at": "at"},
                          ExpressionAttributeValues={":at": {"S": _iso(aged3)}, **past})
    ddb().update_item(TableName=settings().audit_table, Key={"chain": {"S": "seal"}, "seq": {"N": "15"}},
                      UpdateExpression="SET expires = :e", ExpressionAttributeValues=past)
    assert _ttl_sweep() == list(range(11, 16)) and _ttl_sweep(chain="seal") == [15]
    first, text = problems()
    # Then it is reported: a seal's expiry is judged from the archived records, which nobody can change
    assert first == 11
    assert "the seal of records 11-15 is in the archive but not in DynamoDB" in text
    assert "record 11 is in the archive but not in DynamoDB" in text


def test_an_archive_object_backdating_a_recent_batch_excuses_no_seal(aged3, monkeypatch):
    # Given records 1-10 and their seal expired and gone
    _clock(monkeypatch, aged3 + 91 * DAY)
    _ttl_sweep()
    _ttl_sweep(chain="seal")
    # When someone deletes the seal of records 11-15 from DynamoDB and adds an archive object holding
    # those records backdated, consistently rehashed, under their real seal (its MAC included)
    body = s3().get_object(Bucket=settings().audit_bucket, Key=audit_trail.archive_key(11, 15))["Body"].read()
    lines = [json.loads(ln) for ln in audit_trail.archive_lines(body)]
    forged, prev = [], lines[0]["prev_hash"]
    for record in lines[:-1]:
        record = {**record, "at": _iso(aged3), "prev_hash": prev}
        record["hash"] = prev = audit_trail.digest(record)
        forged.append(record)
    body = "".join(json.dumps(ln) + "\n" for ln in [*forged, lines[-1]])
    s3().put_object(Bucket=settings().audit_bucket, Key=audit_trail.archive_key(11, 16), Body=body.encode())
    _delete_seal(15)
    first, text = problems()
    # Then the deletion is still reported: only archived records the seal's digests vouch for date a seal
    assert first == 11
    assert "the seal of records 11-15 is in the archive but not in DynamoDB" in text
    assert "archive: trail/000000000011-000000000016.jsonl does not hold records 11 to 16 in order" in text


def test_the_first_seal_dynamodb_holds_must_follow_the_archives_seal_before_it(aged, monkeypatch):
    # Given records 1-10 and their seal expired and gone
    _clock(monkeypatch, aged + 91 * DAY)
    _ttl_sweep()
    _ttl_sweep(chain="seal")
    # When the seal of records 11-15 in DynamoDB is replaced by one with a valid MAC (the writer's key)
    # that names another seal before it
    (real,) = seals()
    other = {**real, "prev_seal": "f" * 64}
    other["mac"] = audit_trail.generate_mac(audit_trail.seal_canonical(other))
    audit_trail.seal_item(other).save()
    first, text = problems()
    # Then DynamoDB's chain of seals no longer follows the archive's, where DynamoDB's begins
    assert first == 11
    assert "DynamoDB: the seal of records 11-15 does not link to the seal before it" in text
    assert "has no valid MAC" not in text


def test_the_writer_keeps_working_after_old_seals_have_left(aged, monkeypatch):
    # Given records 1-10 and their seal expired and gone
    _clock(monkeypatch, aged + 91 * DAY)
    _ttl_sweep()
    _ttl_sweep(chain="seal")
    # When the next batch comes
    audit_writer.handle_batch(_sqs_event([_at(f"c{i}", aged + 91 * DAY) for i in range(3)]))
    # Then it follows the last seal (11-15, which the head's batch holds and DynamoDB still has)
    last, newest = seals()
    assert (newest["first_seq"], newest["last_seq"], newest["prev_seal"]) == (16, 18, audit_trail.seal_digest(last))
    verdict = audit_verify.verify()
    assert verdict.problems == [] and (verdict.records, verdict.archived, verdict.expired_seals) == (8, 18, 1)


def test_after_a_quiet_spell_longer_than_the_window_the_writer_stores_the_heads_batch_again_harmlessly(aged, monkeypatch):
    # Given no event for longer than the window: every record and seal expired and gone, the head's
    # batch (11-15) with them
    _clock(monkeypatch, aged + 151 * DAY)
    assert _ttl_sweep() == list(range(1, 16)) and _ttl_sweep(chain="seal") == [10, 15]
    # When the next batch comes
    audit_writer.handle_batch(_sqs_event([_at(f"c{i}", aged + 151 * DAY) for i in range(3)]))
    # Then the writer, not finding the head's seal, stored that batch again: the same records and
    # seal, already past their expiry (TTL deletes them again), and no second archive object
    assert [s["last_seq"] for s in seals()] == [15, 18]
    assert [int(i.seq) for i in audit_trail.AuditRecord.query(audit_trail.TRAIL)] == list(range(11, 19))
    versions = s3().list_object_versions(Bucket=settings().audit_bucket, Prefix=audit_trail.ARCHIVE_PREFIX)["Versions"]
    assert sorted(v["Key"] for v in versions) == [audit_trail.archive_key(1, 10), audit_trail.archive_key(11, 15), audit_trail.archive_key(16, 18)]
    # And the new batch follows the archive's chain, and the trail verifies, before and after TTL's next sweep
    assert seals()[1]["prev_seal"] == audit_trail.seal_digest(seals()[0])
    assert audit_verify.verify().problems == []
    assert _ttl_sweep() == list(range(11, 16)) and _ttl_sweep(chain="seal") == [15]
    verdict = audit_verify.verify()
    assert verdict.problems == [] and (verdict.records, verdict.archived, verdict.expired, verdict.expired_seals) == (3, 18, 15, 2)


# ---- tampering with the archive ---------------------------------------------------


def test_archive_versions_cannot_be_deleted_or_unlocked(trail):
    key = archive_keys()[0]
    version = s3().list_object_versions(Bucket=settings().audit_bucket, Prefix=key)["Versions"][0]["VersionId"]
    with pytest.raises(ClientError) as denied:
        s3().delete_object(Bucket=settings().audit_bucket, Key=key, VersionId=version)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert audit_verify.verify().intact


def _rewrite_object(key: str, change) -> None:
    lines = audit_trail.archive_lines(s3().get_object(Bucket=settings().audit_bucket, Key=key)["Body"].read())
    records = change([json.loads(ln) for ln in lines])
    s3().put_object(Bucket=settings().audit_bucket, Key=key, Body="".join(json.dumps(r) + "\n" for r in records).encode())


def test_archive_edit_is_detected_and_the_original_kept(trail):
    key = archive_keys()[1]  # records 11-20
    _rewrite_object(key, lambda rs: [{**r, "outcome": "success"} if r.get("seq") == 12 else r for r in rs])
    first, text = problems()
    assert first == 11
    assert f"archive: {key} has 2 versions" in text
    # The verifier reads the locked original, which still matches DynamoDB
    assert "differs" not in text


def test_archive_delete_is_detected(trail):
    key = archive_keys()[2]
    s3().delete_object(Bucket=settings().audit_bucket, Key=key)
    first, text = problems()
    assert first == 21 and "has a delete marker" in text


def test_archive_insert_is_detected(trail):
    forged = {**trail[-1], "seq": 26, "event_id": "forged", "prev_hash": trail[-1]["hash"]}
    forged["hash"] = audit_trail.digest(forged)
    s3().put_object(Bucket=settings().audit_bucket, Key=audit_trail.archive_key(26, 26), Body=(json.dumps(forged) + "\n").encode())
    first, text = problems()
    assert first == 26
    assert "archive: record 26 is not sealed" in text and "record 26 is in the archive but not in DynamoDB" in text


def test_archive_reorder_is_detected(trail):
    key = archive_keys()[0]
    _rewrite_object(key, lambda rs: [rs[1], rs[0], *rs[2:]])
    first, text = problems()
    assert first == 1 and f"archive: {key} has 2 versions" in text


def test_archive_consistent_rewrite_with_recomputed_sha256_is_detected(trail):
    key = archive_keys()[0]

    def rewrite(records):
        prev, out = audit_trail.GENESIS, []
        for r in records:
            if "seal" in r:  # the batch's seal, rewritten to list the new digests
                out.append({"seal": {**r["seal"], "hashes": [x["hash"] for x in out]}})
                continue
            r = {**r, "prev_hash": prev, "outcome": "success"}
            r["hash"] = prev = audit_trail.digest(r)
            out.append(r)
        return out

    _rewrite_object(key, rewrite)
    first, text = problems()
    assert first == 1 and f"archive: {key} has 2 versions" in text


def test_an_extra_object_restating_records_is_detected(trail):
    # When someone adds objects that re-state records 5-14, consistently rehashed, and one of another name
    prev, forged = trail[3]["hash"], []
    for r in trail[4:14]:
        r = {**r, "prev_hash": prev, "outcome": "success"}
        r["hash"] = prev = audit_trail.digest(r)
        forged.append(r)
    body = "".join(json.dumps(r) + "\n" for r in forged).encode()
    s3().put_object(Bucket=settings().audit_bucket, Key=audit_trail.archive_key(5, 14), Body=body)
    s3().put_object(Bucket=settings().audit_bucket, Key="trail/notes.txt", Body=b"x")
    first, text = problems()
    assert first == 0
    assert "archive: trail/notes.txt is not an object the writer writes" in text
    assert "archive: record 5 does not match its seal" in text and "archive: expected record 6, found record 5" in text

"""The bench's capacity count: what DynamoDB bills each counted request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _units(calls: list) -> dict:
    # The bench sets its own environment at import, so it is asked in a process of its own.
    script = f"import json, sys; from bench.__main__ import capacity_of; print(json.dumps(capacity_of({calls!r})))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_batch_bills_every_item_it_asks_for_and_a_single_request_one():
    # Given a strongly consistent read of two items in one request, a GetItem, a batch of three writes and an update
    calls = [
        ("BatchGetItem", {"RequestItems": {"limits": {"Keys": [{"pk": {"S": "send#a"}}, {"pk": {"S": "sendhour#a#1"}}], "ConsistentRead": True}}}),
        ("GetItem", {"TableName": "users", "Key": {"pk": {"S": "EMAIL#a"}}, "ConsistentRead": True}),
        ("BatchWriteItem", {"RequestItems": {"audit": [{"PutRequest": {"Item": {}}}] * 3}}),
        ("UpdateItem", {"TableName": "limits", "Key": {"pk": {"S": "ipfail#x#1"}}}),
    ]
    # When the bench counts them
    units = _units(calls)
    # Then each request counts once, and each item a batch names counts one unit
    assert units == {"reads": 2, "writes": 2, "rcu": 3, "wcu": 4, "index_wcu": 0}


def test_an_eventually_consistent_read_is_half_a_unit_an_item():
    # Given a routine refresh's read (account and session, eventually consistent) and a default GetItem
    calls = [
        ("BatchGetItem", {"RequestItems": {"users": {"Keys": [{"pk": {"S": "USER#a"}}], "ConsistentRead": False}, "sessions": {"Keys": [{"session_id": {"S": "s"}}], "ConsistentRead": False}}}),
        ("GetItem", {"TableName": "users", "Key": {"pk": {"S": "EMAIL#a"}}}),
    ]
    # When the bench counts them, Then each item is half a unit
    assert _units(calls) == {"reads": 2, "writes": 0, "rcu": 1.5, "wcu": 0, "index_wcu": 0}


def test_index_writes_are_billed_as_write_units_but_are_no_request():
    # Given a rotation (one UpdateItem) that also rewrote an index entry of 1 unit
    calls = [
        ("UpdateItem", {"TableName": "sessions", "Key": {"session_id": {"S": "s"}}}),
        ("IndexWrite", {"TableName": "sessions", "IndexName": "by_user", "WriteUnits": 1}),
    ]
    # When the bench counts them
    units = _units(calls)
    # Then the request is one write, and the index's unit is billed beside the table's
    assert units == {"reads": 0, "writes": 1, "rcu": 0, "wcu": 2, "index_wcu": 1}


def _index_units(projection: dict, before: dict | None, after: dict | None) -> list:
    tables = {
        "T": {
            "create": {
                "TableName": "t",
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "GlobalSecondaryIndexes": [
                    {"IndexName": "by_owner", "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}], "Projection": projection}
                ],
            }
        }
    }
    script = (
        "import json; from bench.__main__ import IndexWrites; "
        f"print(json.dumps(IndexWrites({tables!r}).units('t', {before!r}, {after!r})))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    return [tuple(x) for x in json.loads(done.stdout.strip().splitlines()[-1])]


ITEM = {"id": {"S": "1"}, "owner": {"S": "u"}, "at": {"N": "5"}, "seen": {"N": "100"}, "hash": {"S": "abc"}}


def test_an_update_of_a_projected_attribute_rewrites_the_index_entry_and_one_outside_it_does_not():
    # Given an index projecting `seen`, and one projecting only keys
    include = {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["seen"]}
    keys_only = {"ProjectionType": "KEYS_ONLY"}
    touched = {**ITEM, "seen": {"N": "101"}, "hash": {"S": "def"}}
    # When an item's `seen` and `hash` change, Then only the index carrying `seen` is written
    assert _index_units(include, ITEM, touched) == [("by_owner", 1)]
    assert _index_units(keys_only, ITEM, touched) == []
    # And under ALL any change is written
    assert _index_units({"ProjectionType": "ALL"}, ITEM, {**ITEM, "hash": {"S": "x"}}) == [("by_owner", 1)]


def test_entering_leaving_and_moving_within_an_index():
    keys_only = {"ProjectionType": "KEYS_ONLY"}
    # A new item with the index's keys enters it (one write); its deletion leaves it (one)
    assert _index_units(keys_only, None, ITEM) == [("by_owner", 1)]
    assert _index_units(keys_only, ITEM, None) == [("by_owner", 1)]
    # An item without the index's range key is not in the (sparse) index at all
    assert _index_units(keys_only, None, {"id": {"S": "2"}, "owner": {"S": "u"}}) == []
    # A change of an index key is a delete and a put: two writes
    assert _index_units(keys_only, ITEM, {**ITEM, "at": {"N": "6"}}) == [("by_owner", 2)]
    # A failed conditional write changes nothing: no index write
    assert _index_units(keys_only, ITEM, dict(ITEM)) == []


def test_an_entry_over_a_kilobyte_bills_a_unit_per_kilobyte_begun():
    big = {**ITEM, "blob": {"S": "x" * 2500}}
    assert _index_units({"ProjectionType": "ALL"}, None, big) == [("by_owner", 3)]


def test_the_audit_trail_at_rest_counts_each_index_entry_as_the_template_projects_it():
    from carekey import otp, store
    from carekey.audit_trail import window_start

    from bench.cost import AUDIT_KEYS_ONLY_ENTRY_BYTES, P, audit_index_bytes, audit_indexes, audit_storage_per_event
    from local.template import Stack

    # Given a record of 838 bytes and its seal's share, kept three months in DynamoDB and six years in the archive
    measured, kept = {"record_bytes": 838.0, "seal_bytes": 1100.0, "archive_bytes_per_record": 200.0}, (3.0, 72.0)
    # When the model prices it as a new stack's template declares the audit table
    now = audit_storage_per_event(measured, kept)
    # Then the one index holds keys only, and the record is stored once beside its index entry (keys and overhead)
    assert audit_indexes() == {"audit_by_subject": "KEYS_ONLY"}
    assert audit_index_bytes(838.0) == AUDIT_KEYS_ONLY_ENTRY_BYTES < 838.0 / 3
    # When a stack upgrading from the full-copy index still keeps it (LegacyAuditIndex=keep)
    upgrading = audit_storage_per_event(measured, kept, Stack(overrides={"LegacyAuditIndex": "keep"}))
    # Then the record is priced a second time in full, for as long as DynamoDB keeps it
    assert abs((upgrading - now) - 838.0 * 3.0 * P["ddb_storage_gb_month"] / 1e9) < 1e-15
    # And the entry's estimate holds for the longest subject the writer keys records by (a keyed hash of an
    # address; a user id is 36 characters) and the time as records carry it
    longest = max(otp.email_key("someone@example.com"), "3f2a6c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b", key=len)
    entry = len("subject") + len(longest) + len("at") + len(window_start(store.now(), 90)) + len("chain") + len("trail") + len("seq") + 8 + 100
    assert entry == AUDIT_KEYS_ONLY_ENTRY_BYTES


def test_a_flows_email_is_priced_apart_for_the_like_for_like_comparison_with_cognito():
    from bench.cost import P, _calls_cost, email_cost

    # Given a reset's calls as the run counts them: two emails, a queued job, an audit message
    calls = {"ses:SendEmail": 1.0, "sesv2:SendEmail": 1.0, "sqs:SendMessage": 1.0, "sqs-fifo:SendMessage": 1.0}
    # When the model takes its email apart
    email = email_cost({"calls": calls})
    # Then only the two emails count, and they are part of what the flow's other services cost
    assert email == 2 * P["ses_email"]
    assert abs(_calls_cost(calls) - email - _calls_cost({k: v for k, v in calls.items() if not k.startswith("ses")})) < 1e-15
    assert email_cost({}) == 0.0

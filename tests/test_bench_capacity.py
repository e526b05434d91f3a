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
    # Given login's gate read (two limit items, one request), a GetItem, a batch of three writes and an update
    calls = [
        ("BatchGetItem", {"RequestItems": {"limits": {"Keys": [{"pk": {"S": "login#a"}}, {"pk": {"S": "loginhour#a#1"}}], "ConsistentRead": True}}}),
        ("GetItem", {"TableName": "users", "Key": {"pk": {"S": "EMAIL#a"}}}),
        ("BatchWriteItem", {"RequestItems": {"audit": [{"PutRequest": {"Item": {}}}] * 3}}),
        ("UpdateItem", {"TableName": "limits", "Key": {"pk": {"S": "ipfail#x#1"}}}),
    ]
    # When the bench counts them
    units = _units(calls)
    # Then each request counts once, and each item a batch names counts one unit
    assert units == {"reads": 2, "writes": 2, "rcu": 3, "wcu": 4}

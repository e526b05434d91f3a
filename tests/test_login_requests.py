"""What a login asks of DynamoDB: every request counted, so a change that adds
one (or a claim that one can go) is seen here, and the lockout still clears
and its counts still reset on a success."""

from __future__ import annotations

import os
from collections import Counter

import botocore.client
import pytest
from carekey import limits, otp, store

from tests.client import PASSWORD

OWNER = "counted@example.com"

# A successful password login without a second factor, on its request path:
# the per-IP guard (a conditional update) and its unit given back, the gate's
# one read of the lock and the hourly failure counter (a BatchGetItem) and its
# compare-and-set admission, the email claim and the account, the lock cleared,
# the new session.  The audit writer's own work (on the audit table) is not here.
LOGIN_REQUESTS = {"UpdateItem": 3, "BatchGetItem": 1, "GetItem": 2, "DeleteItem": 1, "PutItem": 1}


@pytest.fixture
def dynamodb(monkeypatch):
    """Every DynamoDB request the service makes outside the audit table, by operation."""
    seen: list[tuple[str, dict]] = []
    original = botocore.client.BaseClient._make_api_call
    audit_table = os.environ["AUDIT_TABLE"]

    def counting(client, operation, params):
        if client.meta.service_model.service_name == "dynamodb":
            tables = {params.get("TableName")} | set(params.get("RequestItems") or {})
            if audit_table not in tables:
                seen.append((operation, params))
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return seen


def _ops(seen: list[tuple[str, dict]]) -> dict[str, int]:
    return dict(Counter(op for op, _ in seen))


def _lock() -> store.LimitItem | None:
    return store.lock_state(f"login#{otp.email_key(OWNER)}")


def _wrong(api, n: int) -> list[int]:
    return [api.post("/login", {"email": OWNER, "password": "stranger-guess-0000"}).status for _ in range(n)]


def _login(api) -> int:
    return api.post("/login", {"email": OWNER, "password": PASSWORD}).status


@pytest.fixture
def clock(monkeypatch):
    now = {"t": store.now()}
    monkeypatch.setattr(store, "now", lambda: now["t"])
    return now


def test_a_login_on_a_clean_account_makes_exactly_its_requests_and_leaves_no_lock_item(api, dynamodb, monkeypatch):
    # Given a verified account that never failed a login
    api.verified_user(OWNER)
    clear, cleared = store.clear_lock, []

    def look_then_clear(key: str) -> None:
        counted = len(dynamodb)
        cleared.append(store.lock_state(key))
        del dynamodb[counted:]  # the test's own look is not the login's request
        clear(key)

    monkeypatch.setattr(store, "clear_lock", look_then_clear)
    dynamodb.clear()
    # When its owner logs in
    assert _login(api) == 200
    # Then the login made exactly these requests, none of them a scan or a query
    assert _ops(dynamodb) == LOGIN_REQUESTS
    # And the one BatchGetItem read the lock and this hour's failure counter together
    (batch,) = [params for op, params in dynamodb if op == "BatchGetItem"]
    keys = [k["pk"]["S"] for table in batch["RequestItems"].values() for k in table["Keys"]]
    assert sorted(k.split("#")[0] for k in keys) == ["login", "loginhour"]
    # And the one DeleteItem had something to clear: the count the gate's admission wrote for this very attempt
    assert len(cleared) == 1 and int(cleared[0].attempts) == 1 and cleared[0].locked_until is None
    # And that item is gone again: nothing counts against the next login
    assert _lock() is None


def test_a_login_after_failures_clears_them_with_the_same_requests(api, dynamodb):
    # Given four wrong passwords: one short of a lock
    api.verified_user(OWNER)
    assert _wrong(api, 4) == [401] * 4
    assert int(_lock().attempts) == 4 and _lock().locked_until is None
    dynamodb.clear()
    # When the owner logs in
    assert _login(api) == 200
    # Then the same requests were enough, and the failures are cleared
    assert _ops(dynamodb) == LOGIN_REQUESTS
    assert _lock() is None
    # And the count starts again: four more wrong passwords do not lock, the fifth does
    assert _wrong(api, 4) == [401] * 4 and _lock().locked_until is None
    assert _wrong(api, 1) == [401] and _lock().locked_until is not None


def test_a_login_after_a_lock_ran_out_clears_the_lock_and_its_level(api, clock):
    # Given an account locked twice (30 s, then 60 s), each lock left to run out
    api.verified_user(OWNER)
    assert _wrong(api, 5) == [401] * 5
    clock["t"] += 31
    assert _wrong(api, 1) == [401]
    assert int(_lock().lock_level) == 2 and int(_lock().locked_until) == clock["t"] + 60
    clock["t"] += 61
    # When the owner logs in
    assert _login(api) == 200
    # Then the lock item is gone, so the next lock starts again at 30 s, after five failures
    assert _lock() is None
    assert _wrong(api, 4) == [401] * 4 and _lock().locked_until is None
    assert _wrong(api, 1) == [401] and int(_lock().locked_until) == clock["t"] + 30


def test_a_wrong_guess_that_locks_while_the_owner_logs_in_is_cleared_by_the_owners_success(api, monkeypatch):
    # Given an account at three failures, and a stranger's wrong guess admitted (and counted,
    # reaching the lock) after the owner's attempt was admitted but before it succeeded
    api.verified_user(OWNER)
    assert _wrong(api, 3) == [401] * 3
    clear = store.clear_lock
    raced = {}

    def clear_after_a_racing_guess(key: str) -> None:
        if not raced:
            gate = limits.login_gate(OWNER)
            limits.login_failed(OWNER)
            raced["locks"], raced["seen"] = gate.locks, store.lock_state(key)
        clear(key)

    monkeypatch.setattr(store, "clear_lock", clear_after_a_racing_guess)
    # When the owner's login completes
    assert _login(api) == 200
    # Then the racing guess had set a lock (its admission came after the owner's)
    assert raced["locks"] and raced["seen"].locked_until is not None and int(raced["seen"].attempts) == 5
    # And the owner's success, the later write, cleared it: the owner is not locked out by a guess
    # that was checked (and failed) before the right password was accepted
    monkeypatch.setattr(store, "clear_lock", clear)
    assert _lock() is None and not limits.locked(OWNER)
    assert _login(api) == 200

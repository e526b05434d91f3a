"""What a login asks of DynamoDB: every request counted, so a change that adds
one (or a claim that one can go) is seen here, and the lockout still clears
and its counts still reset on a success."""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import botocore.client
import pytest
from carekey import limits, otp, store

from tests.client import PASSWORD, ApiClient

OWNER = "counted@example.com"
HOUR = 3600

# A successful password login without a second factor, on its request path:
# the per-IP guard (a conditional update) and its unit given back, the gate's
# one read of the lock item (the lockout and this hour's failure count) and its
# compare-and-set admission, the email claim and the account, the attempt
# settled (the lock cleared, its hourly unit given back), the new session.
# The audit writer's own work (on the audit table) is not here.
LOGIN_REQUESTS = {"UpdateItem": 4, "GetItem": 3, "PutItem": 1}


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


def _failures_this_hour() -> int:
    return store.hour_failures(_lock(), store.now() // HOUR)


def _cleared(item: store.LimitItem | None) -> bool:
    """Nothing of the lockout left: no attempts, no lock, no lock level (the hour's count may stay)."""
    return item is None or (item.attempts is None and item.locked_until is None and item.lock_level is None)


@pytest.fixture
def clock(monkeypatch):
    now = {"t": store.now()}
    monkeypatch.setattr(store, "now", lambda: now["t"])
    return now


def test_a_login_on_a_clean_account_makes_exactly_its_requests_and_counts_no_failure(api, dynamodb, monkeypatch):
    # Given a verified account that never failed a login
    api.verified_user(OWNER)
    settle, settled = store.settle_attempt, []

    def look_then_settle(key: str, hour: int | None) -> None:
        counted = len(dynamodb)
        settled.append(store.lock_state(key))
        del dynamodb[counted:]  # the test's own look is not the login's request
        settle(key, hour)

    monkeypatch.setattr(store, "settle_attempt", look_then_settle)
    dynamodb.clear()
    # When its owner logs in
    assert _login(api) == 200
    # Then the login made exactly these requests, none of them a scan, a query or a batch
    assert _ops(dynamodb) == LOGIN_REQUESTS
    # And the one read of the limits table was the lock item alone: lockout and hourly count live in it
    limits_table = store.LimitItem.Meta.table_name
    reads = [params["Key"]["pk"]["S"] for op, params in dynamodb if op == "GetItem" and params["TableName"] == limits_table]
    assert [k.split("#")[0] for k in reads] == ["login"]
    # And the settling write had something to clear: this very attempt, counted by its admission as a failure of the hour
    assert len(settled) == 1 and int(settled[0].attempts) == 1 and settled[0].locked_until is None
    assert int(settled[0].count) == 1 and int(settled[0].hour) == store.now() // HOUR
    # And after it nothing counts against the next login: no attempts, no lock, no failure this hour
    assert _cleared(_lock()) and _failures_this_hour() == 0


def test_a_login_after_failures_clears_them_with_the_same_requests(api, dynamodb):
    # Given four wrong passwords: one short of a lock
    api.verified_user(OWNER)
    assert _wrong(api, 4) == [401] * 4
    assert int(_lock().attempts) == 4 and _lock().locked_until is None and _failures_this_hour() == 4
    dynamodb.clear()
    # When the owner logs in
    assert _login(api) == 200
    # Then the same requests were enough, and the lockout's count is cleared
    assert _ops(dynamodb) == LOGIN_REQUESTS
    assert _cleared(_lock())
    # But the four failures stay counted in the hour's cap (an owner's success does not wipe a stranger's guesses there)
    assert _failures_this_hour() == 4
    # And the lockout's count starts again: four more wrong passwords do not lock, the fifth does
    assert _wrong(api, 4) == [401] * 4 and _lock().locked_until is None
    assert _wrong(api, 1) == [401] and _lock().locked_until is not None
    assert _failures_this_hour() == 9


def test_a_failed_login_makes_one_request_less_than_a_success(api, dynamodb):
    # Given a verified account
    api.verified_user(OWNER)
    dynamodb.clear()
    # When a wrong password is tried
    assert _wrong(api, 1) == [401]
    # Then the failure is counted by the admission alone: no request after the check but the
    # sign-up look-up (is it a pending sign-up's password?), and the IP's unit stays taken
    assert _ops(dynamodb) == {"UpdateItem": 2, "GetItem": 4}
    assert _failures_this_hour() == 1 and int(_lock().attempts) == 1


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
    # Then the lock and its level are gone, so the next lock starts again at 30 s, after five failures
    assert _cleared(_lock())
    assert _wrong(api, 4) == [401] * 4 and _lock().locked_until is None
    assert _wrong(api, 1) == [401] and int(_lock().locked_until) == clock["t"] + 30


def test_a_wrong_guess_that_locks_while_the_owner_logs_in_is_cleared_by_the_owners_success(api, monkeypatch):
    # Given an account at three failures, and a stranger's wrong guess admitted (and counted,
    # reaching the lock) after the owner's attempt was admitted but before it succeeded
    api.verified_user(OWNER)
    assert _wrong(api, 3) == [401] * 3
    settle = store.settle_attempt
    raced = {}

    def settle_after_a_racing_guess(key: str, hour: int | None) -> None:
        if not raced:
            gate = limits.login_gate(OWNER)
            raced["locks"], raced["seen"] = gate.locks, store.lock_state(key)
        settle(key, hour)

    monkeypatch.setattr(store, "settle_attempt", settle_after_a_racing_guess)
    # When the owner's login completes
    assert _login(api) == 200
    # Then the racing guess had set a lock (its admission came after the owner's)
    assert raced["locks"] and raced["seen"].locked_until is not None and int(raced["seen"].attempts) == 5
    # And the owner's success, the later write, cleared it: the owner is not locked out by a guess
    # that was checked (and failed) before the right password was accepted
    monkeypatch.setattr(store, "settle_attempt", settle)
    assert _cleared(_lock()) and not limits.locked(OWNER)
    assert _login(api) == 200
    # And the racing guess stays one of the hour's failures, beside the three before it
    assert _failures_this_hour() == 4


# ---- the hourly cap on failures, under attack -----------------------------------------------------


def test_parallel_wrong_guesses_cannot_pass_the_hourly_cap(gateway, outbox, settings_override):
    # Given an account one failure short of its hourly cap, with a lockout too lax to stop a burst
    settings_override(LOGIN_FAILURES_PER_HOUR="5", LOGIN_LOCKOUT_THRESHOLD="1000", IP_FAILURES_PER_HOUR="1000")
    owner = ApiClient(gateway, outbox)
    owner.verified_user(OWNER)
    assert _wrong(owner, 4) == [401] * 4
    # When twenty wrong guesses arrive at once, each from an address of its own
    guessers = [ApiClient(gateway, outbox, ip=f"203.0.113.{i + 1}") for i in range(20)]

    def guess(i: int) -> int:
        return guessers[i].post("/login", {"email": OWNER, "password": f"guess-{i}-guess"}).status

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(guess, range(20)))
    # Then all are answered alike, and exactly one more reached a password check: the hour holds five failures
    assert statuses == [401] * 20
    assert _failures_this_hour() == 5 and int(_lock().attempts) == 5
    # And the owner's right password is refused with the same answer until the hour turns
    assert _login(owner) == 401


def test_the_hourly_cap_frees_itself_when_the_hour_turns(api, settings_override, clock):
    # Given an account whose hourly cap a stranger filled
    settings_override(LOGIN_FAILURES_PER_HOUR="3", LOGIN_LOCKOUT_THRESHOLD="50")
    api.verified_user(OWNER)
    assert _wrong(api, 3) == [401] * 3
    assert _login(api) == 401 and limits.locked(OWNER)
    # When the next hour begins
    clock["t"] = (clock["t"] // HOUR + 1) * HOUR
    # Then the owner signs in, and the item's count is of the new hour
    assert not limits.locked(OWNER)
    assert _login(api) == 200
    assert _failures_this_hour() == 0 and int(_lock().hour) == clock["t"] // HOUR


def test_a_success_settled_after_the_hour_turned_gives_nothing_back_to_the_new_hour(api, clock):
    # Given an attempt admitted in the last second of an hour, and a failure in the next hour
    api.verified_user(OWNER)
    clock["t"] = (clock["t"] // HOUR + 1) * HOUR - 1
    gate = limits.login_gate(OWNER)
    clock["t"] += 1
    assert _wrong(api, 1) == [401] and _failures_this_hour() == 1
    # When the first attempt turns out right
    limits.login_succeeded(gate)
    # Then its lockout state is cleared, but the new hour's failure is not taken away
    assert _cleared(_lock()) and _failures_this_hour() == 1


def test_a_right_password_with_a_second_step_to_come_is_no_failure_but_keeps_the_lockout(api):
    # Given three wrong passwords on an account, then its right password with a second step still to come
    api.verified_user(OWNER)
    assert _wrong(api, 3) == [401] * 3
    gate = limits.login_gate(OWNER)
    assert _failures_this_hour() == 4
    # When the password step gives its unit back
    limits.login_not_failed(gate)
    # Then the hour counts the three failures only, and the lockout still counts four attempts
    assert _failures_this_hour() == 3 and int(_lock().attempts) == 4
    # And a passkey as the second step clears the lockout without giving back a unit twice
    limits.clear_login_lock(OWNER)
    assert _cleared(_lock()) and _failures_this_hour() == 3


def test_a_refused_passkey_step_counts_a_failure_in_a_new_hour_and_the_same_hour(api, clock):
    # Given an account whose lock item holds last hour's failures
    api.verified_user(OWNER)
    assert _wrong(api, 2) == [401] * 2
    clock["t"] += HOUR
    # When failures come with no admission (a refused passkey step), twice
    limits.login_failure_without_gate(OWNER)
    limits.login_failure_without_gate(OWNER)
    # Then they count in this hour, from zero, and the lockout's attempts are untouched
    assert _failures_this_hour() == 2 and int(_lock().attempts) == 2


def test_a_password_reset_lifts_the_lock_and_the_hours_count_in_one_delete(api):
    # Given a locked account
    api.verified_user(OWNER)
    assert _wrong(api, 5) == [401] * 5 and limits.locked(OWNER)
    # When the owner's reset completes
    limits.password_reset_done(OWNER)
    # Then nothing of the lock item is left
    assert _lock() is None and not limits.locked(OWNER)


def test_a_function_whose_clock_lags_never_winds_the_hours_count_back(api, clock):
    # Given an item a function with its clock in the next hour has moved on, with one failure there
    api.verified_user(OWNER)
    this_hour = clock["t"] // HOUR
    clock["t"] = (this_hour + 1) * HOUR
    assert _wrong(api, 1) == [401]
    # When a function whose clock still reads the earlier hour admits a wrong guess, and counts a refused passkey step
    clock["t"] = (this_hour + 1) * HOUR - 1
    assert _wrong(api, 1) == [401]
    limits.login_failure_without_gate(OWNER)
    # Then both count in the later hour, beside the first: nothing was set back to an hour already over
    item = _lock()
    assert int(item.hour) == this_hour + 1 and int(item.count) == 3 and int(item.attempts) == 2

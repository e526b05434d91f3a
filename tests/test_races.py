"""Races: what many parallel requests for one thing get.  Each test replays a
burst with threads; DynamoDB's atomicity is what the code must rely on."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import botocore.client
import pytest
from botocore.exceptions import ClientError
from carekey import limits, passwords, store
from carekey.api import Client

from tests.client import ApiClient


def _parallel(n: int, fn):
    with ThreadPoolExecutor(max_workers=min(n, 16)) as pool:
        return list(pool.map(fn, range(n)))


# ---- the per-IP failure guard ----------------------------------------------------------


def _ip_failures(ip: str) -> int:
    return store.counter_value(f"ipfail#{limits._ip_key(Client(ip=ip))}", limits.HOUR)


def test_a_parallel_burst_from_one_ip_cannot_overshoot_its_failure_limit(gateway, outbox, settings_override):
    # Given a limit of 10 failures per IP per hour
    settings_override(IP_FAILURES_PER_HOUR="10")
    attacker = ApiClient(gateway, outbox, ip="203.0.113.90")
    # When 40 wrong logins (for 40 different accounts) arrive at once from one address
    statuses = _parallel(40, lambda i: attacker.post("/login", {"email": f"burst{i}@example.com", "password": "guess-guess-1"}).status)
    # Then exactly 10 reach a password check and the rest get 429
    assert statuses.count(401) == 10 and statuses.count(429) == 30
    assert _ip_failures("203.0.113.90") == 10


def test_a_parallel_burst_of_code_guesses_is_held_to_the_ip_limit(api, gateway, outbox, settings_override):
    settings_override(IP_FAILURES_PER_HOUR="6")
    attacker = ApiClient(gateway, outbox, ip="203.0.113.91")
    paths = ["/verify-otp", "/verify-password-reset-otp"]
    statuses = _parallel(
        30, lambda i: attacker.post(paths[i % 2], {"email": f"code{i}@example.com", "otp": "123456"}).status
    )
    assert statuses.count(400) == 6 and statuses.count(429) == 24
    assert _ip_failures("203.0.113.91") == 6


def test_successes_do_not_count_as_ip_failures(api, settings_override):
    # Given a user who signs in correctly many times from one address
    settings_override(IP_FAILURES_PER_HOUR="3")
    api.verified_user("often@example.com")
    for _ in range(6):
        api.login("often@example.com")
    # Then the address has no failure counted and still gets its full allowance
    assert _ip_failures(api.ip) == 0
    statuses = [api.post("/login", {"email": "often@example.com", "password": "wrong-password-x"}).status for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


# ---- single use, exactly once ----------------------------------------------------------


def _all_reserve_before_any_commits(monkeypatch, n: int) -> None:
    """The worst interleaving, made certain: every request spends its try on the
    code before any of them tries to use the code up."""
    barrier = threading.Barrier(n, timeout=30)
    reserve = store.reserve_otp_try
    calls = iter(range(10**6))

    def reserve_then_wait(key: str):
        record = reserve(key)
        if next(calls) < n:  # only the burst waits; later requests go straight through
            barrier.wait()
        return record

    monkeypatch.setattr(store, "reserve_otp_try", reserve_then_wait)


def test_parallel_right_answers_to_one_verification_code_succeed_exactly_once(api, monkeypatch):
    # Given a sign-up and its code
    api.register("twice@example.com")
    code = api.latest_code("twice@example.com")
    # When 6 requests carrying the right code (one over the 5-try budget) all spend
    # their try before any commits
    _all_reserve_before_any_commits(monkeypatch, 6)
    statuses = _parallel(6, lambda i: api.post("/verify-otp", {"email": "twice@example.com", "otp": code}).status)
    # Then exactly one verifies the email and the code is used up
    assert sorted(statuses) == [200, 400, 400, 400, 400, 400]
    assert store.user_by_email("twice@example.com").is_verified
    assert api.post("/verify-otp", {"email": "twice@example.com", "otp": code}).status == 400


def test_parallel_right_answers_to_one_reset_code_succeed_exactly_once(api, monkeypatch, settings_override):
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    api.verified_user("sixfold@example.com")
    api.post("/forgot-password", {"email": "sixfold@example.com"})
    code = api.latest_code("sixfold@example.com")
    new = [f"winner-passphrase-{i}" for i in range(6)]
    bodies = [{"email": "sixfold@example.com", "otp": code, "new_password": p, "confirm_password": p} for p in new]
    # When six resets carrying the right code arrive at once (the sixth is over the 5-try budget)
    _all_reserve_before_any_commits(monkeypatch, 6)
    statuses = _parallel(6, lambda i: api.post("/reset-password", bodies[i]).status)
    # Then exactly one sets its password, and that password opens the account
    assert statuses.count(200) == 1 and statuses.count(400) == 5
    winner = new[statuses.index(200)]
    stored = store.user_by_email("sixfold@example.com").password_hash
    assert [passwords.verify_password(p, stored) for p in new].count(True) == 1
    assert passwords.verify_password(winner, stored)


# ---- a conflict or a throttle is not an answer -------------------------------------------


def _dynamodb_cancels_transactions(monkeypatch, reasons: tuple[str, ...], times: int | None) -> dict:
    """The service's transactions (not the audit trail's) are cancelled with these
    reasons `times` times (None: always)."""
    seen = {"refused": 0}
    original = botocore.client.BaseClient._make_api_call
    audit_table = os.environ["AUDIT_TABLE"]

    def make_api_call(self, operation_name, api_params):
        tables = {op["TableName"] for item in api_params.get("TransactItems", []) for op in item.values()}
        if operation_name == "TransactWriteItems" and audit_table not in tables and (times is None or seen["refused"] < times):
            seen["refused"] += 1
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": f"Transaction cancelled [{', '.join(reasons)}]"},
                    "CancellationReasons": [{"Code": r} for r in reasons],
                },
                operation_name,
            )
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", make_api_call)
    return seen


def test_a_sign_up_that_meets_conflicting_transactions_is_retried_not_called_email_taken(api, outbox, monkeypatch):
    # Given DynamoDB cancels the sign-up's code transaction twice for a conflict
    with monkeypatch.context() as m:
        seen = _dynamodb_cancels_transactions(m, ("TransactionConflict", "None"), times=2)
        # When a new address signs up
        r = api.register("conflict@example.com")
        assert r.status == 201 and seen["refused"] == 2
    # Then its owner gets a code, and no "already registered" notice goes out
    subjects = [m["subject"] for m in outbox.to("conflict@example.com")]
    assert subjects and not any("tried to register" in s for s in subjects)
    # And when the verification's transaction meets two conflicts too, the account is still made
    code = api.latest_code("conflict@example.com")
    seen = _dynamodb_cancels_transactions(monkeypatch, ("None", "TransactionConflict"), times=2)
    assert api.post("/verify-otp", {"email": "conflict@example.com", "otp": code}).status == 200
    assert seen["refused"] == 2 and store.user_by_email("conflict@example.com").is_verified


@pytest.mark.parametrize("reason", ["ThrottlingError", "TransactionConflict"])
def test_a_verification_that_stays_throttled_answers_503_and_makes_nothing(api, monkeypatch, reason):
    # Given a sign-up with its code, and DynamoDB cancelling every transaction
    api.register("throttled@example.com")
    code = api.latest_code("throttled@example.com")
    with monkeypatch.context() as m:
        _dynamodb_cancels_transactions(m, (reason, "None"), times=None)
        r = api.post("/verify-otp", {"email": "throttled@example.com", "otp": code})
    # Then the answer is busy, never "wrong code", and no account exists
    assert r.status == 503 and r.headers["Retry-After"] == "1"
    assert r.json()["error"] == "Service busy"
    assert store.user_by_email("throttled@example.com") is None


def test_a_right_code_survives_a_conflict(api, monkeypatch):
    api.register("survivor@example.com")
    code = api.latest_code("survivor@example.com")
    _dynamodb_cancels_transactions(monkeypatch, ("None", "TransactionConflict"), times=1)
    assert api.post("/verify-otp", {"email": "survivor@example.com", "otp": code}).status == 200
    assert store.user_by_email("survivor@example.com").is_verified


def test_a_throttled_reset_is_busy_and_the_code_still_works_afterwards(api, monkeypatch, settings_override):
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    api.verified_user("busy-reset@example.com")
    api.post("/forgot-password", {"email": "busy-reset@example.com"})
    code = api.latest_code("busy-reset@example.com")
    body = {"email": "busy-reset@example.com", "otp": code, "new_password": "bright-harbour-compass-31", "confirm_password": "bright-harbour-compass-31"}
    with monkeypatch.context() as m:
        _dynamodb_cancels_transactions(m, ("ThrottlingError", "None"), times=None)
        assert api.post("/reset-password", body).status == 503
    assert api.post("/reset-password", body).status == 200
    api.login("busy-reset@example.com", "bright-harbour-compass-31")

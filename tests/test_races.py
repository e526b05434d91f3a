"""Races: what many parallel requests for one thing get.  Each test replays a
burst with threads; DynamoDB's atomicity is what the code must rely on."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from carekey import limits, store
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

"""What token refreshes leave in the audit trail: routine rotations as one
summary a session an interval, anything unusual at once, nothing lost."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from carekey import audit_verify, store, tokens

EMAIL = "rotating@example.com"


@pytest.fixture
def session(api):
    api.verified_user(EMAIL)
    pair = api.login(EMAIL)
    user_id = store.user_by_email(EMAIL).user_id
    return pair, user_id


def _refreshes(user_id: str) -> list[dict]:
    return [r for r in audit_verify.trail_of(user_id) if r["event"] == "refresh"]


def _item(refresh: str) -> store.SessionItem:
    return store.SessionItem.get(tokens.read_refresh(refresh).session_id, consistent_read=True)


def _chain(api, refresh: str, times: int, **kw) -> str:
    for _ in range(times):
        r = api.post("/token/refresh", {"refresh": refresh}, **kw)
        assert r.status == 200
        refresh = r.json()["refresh"]
    return refresh


def test_routine_rotations_are_counted_in_the_session_not_audited_one_by_one(api, session):
    # Given a session just signed in (its login is in the trail)
    pair, user_id = session
    # When it rotates its token five times from the same address and agent
    latest = _chain(api, pair["refresh"], 5)
    # Then no refresh event was recorded yet, and the session counts all five
    assert _refreshes(user_id) == []
    assert int(_item(latest).unaudited) == 5


def test_after_the_interval_one_event_summarises_every_rotation_since_the_last(api, session, monkeypatch):
    # Given a session that rotated three times in its first hour
    pair, user_id = session
    login_at = int(_item(pair["refresh"]).audited_at)
    start = store.now()
    monkeypatch.setattr(store, "now", lambda: start)
    latest = _chain(api, pair["refresh"], 3)
    # When it rotates again an hour after its login (the session kept active)
    for minutes in (25, 50):
        monkeypatch.setattr(store, "now", lambda m=minutes: start + m * 60)
        latest = _chain(api, latest, 1)
    monkeypatch.setattr(store, "now", lambda: login_at + 3600)
    latest = _chain(api, latest, 1)
    # Then one refresh event records six rotations since the login, and the count starts again
    [event] = _refreshes(user_id)
    assert event["outcome"] == "success"
    assert event["detail"]["rotations"] == "6" and event["detail"]["why"] == "interval"
    assert event["detail"]["since"] == audit_verify_iso(login_at)
    item = _item(latest)
    assert int(item.unaudited) == 0 and int(item.audited_at) == login_at + 3600
    # and the next rotation within the hour is routine again
    _chain(api, latest, 1)
    assert len(_refreshes(user_id)) == 1


def audit_verify_iso(at: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(at, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def test_a_rotation_from_a_new_address_or_agent_is_audited_at_once(api, session):
    # Given a session that rotated twice where it signed in
    pair, user_id = session
    latest = _chain(api, pair["refresh"], 2)
    # When its token is presented from another address
    latest = _chain(api, latest, 1, ip="203.0.113.50")
    # Then that rotation is recorded at once, with the two routine ones before it
    [moved] = _refreshes(user_id)
    assert moved["ip"] == "203.0.113.50" and moved["detail"]["why"] == "new_address"
    assert moved["detail"]["rotations"] == "3"
    # and so is a change of agent from that address
    _chain(api, latest, 1, ip="203.0.113.50", headers={"User-Agent": "another-browser/2"})
    assert [r["detail"]["why"] for r in _refreshes(user_id)] == ["new_address", "new_address"]


def test_a_replay_records_the_rotations_not_yet_in_the_trail(api, session, settings_override):
    # Given a session with four routine rotations and no reuse interval
    settings_override(REFRESH_REUSE_SECONDS="0")
    pair, user_id = session
    first = api.post("/token/refresh", {"refresh": pair["refresh"]}).json()["refresh"]
    _chain(api, first, 3)
    # When a stolen copy of an old token is replayed
    assert api.post("/token/refresh", {"refresh": first}).status == 401
    # Then the replay is recorded with the four rotations that preceded it
    [replay] = _refreshes(user_id)
    assert replay["outcome"] == "reuse_detected" and replay["detail"]["rotations"] == "4"


def test_an_interval_of_zero_audits_every_rotation(api, session, settings_override):
    settings_override(REFRESH_AUDIT_MINUTES="0")
    pair, user_id = session
    _chain(api, pair["refresh"], 3)
    assert [r["detail"]["rotations"] for r in _refreshes(user_id)] == ["1", "1", "1"]


def test_parallel_refreshes_of_one_token_count_one_rotation(api, session):
    # Given a token presented by ten requests at once (the losers get the winner's pair, within the reuse interval)
    pair, user_id = session
    latest = _chain(api, pair["refresh"], 2)
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: api.post("/token/refresh", {"refresh": latest}).status, range(10)))
    # Then exactly one rotation happened and was counted once
    item = _item(latest)
    assert answers.count(200) >= 1
    assert int(item.generation) == 3
    assert int(item.unaudited) + sum(int(r["detail"]["rotations"]) for r in _refreshes(user_id) if r["outcome"] == "success") == 3
    # and the trail still verifies
    assert audit_verify.verify().problems == []


def test_a_logout_records_the_rotations_not_yet_in_the_trail(api, session):
    # Given five routine rotations
    pair, user_id = session
    latest = pair
    for _ in range(5):
        latest = api.post("/token/refresh", {"refresh": latest["refresh"]}).json()
    # When the session logs out
    assert api.post("/logout", {}, token=latest["access"]).status == 200
    # Then its logout event carries the five rotations
    [logout] = [r for r in audit_verify.trail_of(user_id) if r["event"] == "logout"]
    assert logout["detail"]["rotations"] == "5"


def test_ending_a_session_from_the_list_records_its_rotations(api, session):
    # Given a second session with two routine rotations
    pair, user_id = session
    other = api.login(EMAIL)
    _chain(api, other["refresh"], 2)
    other_id = tokens.read_refresh(other["refresh"]).session_id
    # When the first session ends it
    assert api.request("DELETE", f"/sessions/{other_id}", token=pair["access"]).status == 200
    # Then the trail has the ended session's two rotations
    [ended] = [r for r in audit_verify.trail_of(user_id) if r["event"] == "session.end"]
    assert ended["detail"]["rotations"] == "2"


def test_a_summary_that_cannot_be_recorded_keeps_its_rotations(api, session, monkeypatch):
    # Given three routine rotations, and an audit queue that refuses the next refresh event
    from carekey import audit, errors

    pair, user_id = session
    latest = _chain(api, pair["refresh"], 3)
    login_at = int(_item(latest).audited_at)
    real, refused = audit.record, []

    def flaky(event, outcome, *args, **kwargs):
        if event == "refresh" and not refused:
            refused.append(event)
            raise errors.AuditUnavailable()
        return real(event, outcome, *args, **kwargs)

    monkeypatch.setattr(audit, "record", flaky)
    # When a rotation from a new address cannot be recorded
    failed = api.post("/token/refresh", {"refresh": latest}, ip="203.0.113.5")
    # Then the client gets 503, and the session counts all four rotations since its login again
    assert failed.status == 503
    item = _item(latest)
    assert int(item.unaudited) == 4 and int(item.audited_at) == login_at
    # and the retry gets the rotated pair, naming the four as pending (counted once, by the next summary)
    retry = api.post("/token/refresh", {"refresh": latest}, ip="203.0.113.5")
    assert retry.status == 200
    [pending] = _refreshes(user_id)
    assert pending["outcome"] == "reused_within_interval" and pending["detail"]["pending_rotations"] == "4"
    _chain(api, retry.json()["refresh"], 1, ip="198.51.100.99")
    assert _refreshes(user_id)[-1]["detail"]["rotations"] == "5"


def test_a_summary_interval_as_long_as_a_session_fails_the_cold_start(settings_override):
    # Given a summary interval of 12 hours and sessions of 12 hours
    # When the configuration is read
    # Then it is refused: a session's rotations would never be summarised
    with pytest.raises(ValueError, match="REFRESH_AUDIT_MINUTES"):
        settings_override(REFRESH_AUDIT_MINUTES="720", SESSION_MAX_HOURS="12")
    settings_override(REFRESH_AUDIT_MINUTES="60", SESSION_MAX_HOURS="12")


def test_a_session_from_before_rotations_were_counted_summarises_from_its_last_rotation(api, session):
    # Given a session as it was stored before rotations were counted (each rotation audited)
    pair, user_id = session
    latest = _chain(api, pair["refresh"], 1, ip="198.51.100.7")
    item = _item(latest)
    item.update(actions=[store.SessionItem.audited_at.remove(), store.SessionItem.unaudited.remove()])
    last_rotation = int(_item(latest).rotated_at)
    # When it rotates again
    _chain(api, latest, 1)
    # Then its first summary counts one rotation since its last rotation, not since its login
    [event] = _refreshes(user_id)
    assert event["detail"]["rotations"] == "1" and event["detail"]["since"] == audit_verify_iso(last_rotation)

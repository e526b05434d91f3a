"""GET /sessions and DELETE /sessions/{id}: the signed-in user's own sessions."""

from __future__ import annotations

import uuid

import pytest
from carekey import audit, store

from tests.client import ApiClient


@pytest.fixture
def pat(api):
    api.verified_user("pat@example.com")
    return api


def _sessions(api: ApiClient, access: str) -> list[dict]:
    r = api.get("/sessions", token=access)
    assert r.status == 200, r.body
    return r.json()["sessions"]


def _end(api: ApiClient, session_id: str, access: str):
    return api.request("DELETE", f"/sessions/{session_id}", token=access)


def test_the_list_shows_each_live_session_with_where_it_was_used_and_marks_this_one(pat, gateway, outbox):
    # Given two sign-ins from two devices
    laptop = pat.login("pat@example.com")
    phone_client = ApiClient(gateway, outbox, ip="203.0.113.9")
    phone = phone_client.post(
        "/login", {"email": "pat@example.com", "password": "violet-kettle-harbour-42"}, headers={"User-Agent": "Phone/1.0"}
    ).json()
    # When the laptop asks for its sessions
    listed = _sessions(pat, laptop["access"])
    # Then both are listed, each with its address and user agent, and only the laptop's is current
    assert len(listed) == 2
    by_ip = {s["ip"]: s for s in listed}
    assert set(by_ip) == {"198.51.100.7", "203.0.113.9"}
    assert by_ip["198.51.100.7"]["current"] is True and by_ip["203.0.113.9"]["current"] is False
    assert by_ip["203.0.113.9"]["user_agent"] == "Phone/1.0" and by_ip["198.51.100.7"]["user_agent"] == "pytest"
    assert set(listed[0]) == {"id", "created_at", "last_used_at", "ip", "user_agent", "current"}
    # and the ids are opaque: never a token, never a token's digest
    stored = {item.session_id: item for item in store.SessionItem.scan()}
    for s in listed:
        assert s["id"] in stored
        assert s["id"] not in (laptop["refresh"], phone["refresh"])
        assert s["id"] != stored[s["id"]].token_hash
    # and the phone sees the same two, with its own marked
    assert [s["current"] for s in _sessions(phone_client, phone["access"]) if s["ip"] == "203.0.113.9"] == [True]


def test_a_refresh_moves_the_session_to_its_new_address_and_time(pat, gateway, outbox):
    # Given a session
    tokens = pat.login("pat@example.com")
    # When it is refreshed from another address
    elsewhere = ApiClient(gateway, outbox, ip="192.0.2.44")
    pair = elsewhere.post("/token/refresh", {"refresh": tokens["refresh"]}).json()
    # Then the list shows the new address
    [listed] = _sessions(pat, pair["access"])
    assert listed["ip"] == "192.0.2.44" and listed["current"] is True


def test_ended_and_retired_sessions_are_not_listed(pat):
    # Given three sessions, one logged out
    a = pat.login("pat@example.com")
    b = pat.login("pat@example.com")
    pat.login("pat@example.com")
    assert pat.post("/logout", {}, token=b["access"]).status == 200
    # Then two are listed
    assert len(_sessions(pat, a["access"])) == 2
    # When the password changes (every other session ends)
    r = pat.post(
        "/change-password",
        {"current_password": "violet-kettle-harbour-42", "new_password": "another-lantern-77", "confirm_password": "another-lantern-77"},
        token=a["access"],
    )
    assert r.status == 200
    # Then only this one is left
    listed = _sessions(pat, r.json()["access"])
    assert [s["current"] for s in listed] == [True]


def test_ending_the_other_session_kills_its_refresh_and_access_tokens(pat):
    # Given two sessions
    mine = pat.login("pat@example.com")
    other = pat.login("pat@example.com")
    [other_id] = [s["id"] for s in _sessions(pat, mine["access"]) if not s["current"]]
    # When this one ends the other
    r = _end(pat, other_id, mine["access"])
    # Then it succeeds, the other's access and refresh tokens are dead, this one lives on
    assert r.status == 200 and r.json() == {"message": "Session ended.", "success": True}
    assert pat.get("/me", token=other["access"]).status == 401
    assert pat.post("/token/refresh", {"refresh": other["refresh"]}).status == 401
    assert pat.get("/me", token=mine["access"]).status == 200
    assert [s["current"] for s in _sessions(pat, mine["access"])] == [True]
    # and it is audited
    [user_id] = {item.user_id for item in store.SessionItem.scan()}
    assert ("session.end", "other_session") in [(e["event"], e["outcome"]) for e in audit.trail_of(user_id)]


def test_ending_a_session_twice_is_a_404_the_second_time(pat):
    mine = pat.login("pat@example.com")
    pat.login("pat@example.com")
    [other_id] = [s["id"] for s in _sessions(pat, mine["access"]) if not s["current"]]
    # When the same session is ended twice
    first, second = _end(pat, other_id, mine["access"]), _end(pat, other_id, mine["access"])
    # Then the second is the same 404 as an unknown id
    assert first.status == 200
    unknown = _end(pat, str(uuid.uuid4()), mine["access"])
    assert second.status == unknown.status == 404
    assert second.json() == unknown.json()


def test_another_users_session_is_a_404_exactly_like_an_unknown_one_and_stays_alive(pat):
    # Given Pat and Sam, each signed in
    pat.verified_user("sam@example.com")
    mine = pat.login("pat@example.com")
    sams = pat.login("sam@example.com")
    [sams_id] = [s["id"] for s in _sessions(pat, sams["access"])]
    # When Pat tries to end Sam's session, and an unknown one, and a malformed one
    stolen = _end(pat, sams_id, mine["access"])
    unknown = _end(pat, str(uuid.uuid4()), mine["access"])
    malformed = _end(pat, "not-a-session", mine["access"])
    # Then all three get the same 404 body
    assert stolen.status == unknown.status == malformed.status == 404
    assert stolen.json() == unknown.json() == malformed.json()
    assert stolen.json()["error"] == "Not found"
    # and Sam's session is untouched
    assert pat.get("/me", token=sams["access"]).status == 200
    assert pat.post("/token/refresh", {"refresh": sams["refresh"]}).status == 200


def test_ending_this_session_signs_it_out(pat):
    mine = pat.login("pat@example.com")
    [this_id] = [s["id"] for s in _sessions(pat, mine["access"])]
    assert _end(pat, this_id, mine["access"]).status == 200
    assert pat.get("/sessions", token=mine["access"]).status == 401


def test_ten_parallel_ends_of_one_session_succeed_once(pat):
    from concurrent.futures import ThreadPoolExecutor

    mine = pat.login("pat@example.com")
    pat.login("pat@example.com")
    [other_id] = [s["id"] for s in _sessions(pat, mine["access"]) if not s["current"]]
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda _: _end(pat, other_id, mine["access"]).status, range(10)))
    assert sorted(statuses) == [200] + [404] * 9


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_no_token_a_forged_token_or_a_refresh_token_is_401(pat, method):
    tokens = pat.login("pat@example.com")
    path = "/sessions" if method == "GET" else f"/sessions/{uuid.uuid4()}"
    assert pat.request(method, path).status == 401
    assert pat.request(method, path, token=tokens["access"][:-4] + "AAAA").status == 401
    assert pat.request(method, path, token=tokens["refresh"]).status == 401


def test_other_methods_and_bodies_are_4xx_never_5xx(pat):
    tokens = pat.login("pat@example.com")
    assert pat.post("/sessions", {}, token=tokens["access"]).status == 405
    assert pat.put(f"/sessions/{uuid.uuid4()}", {}, token=tokens["access"]).status == 405
    # a body on GET or DELETE is ignored or refused, never a crash
    for raw in (b"{", b"x" * 20000, b"\xff\xfe"):
        r = pat.request("GET", "/sessions", raw=raw, token=tokens["access"])
        assert r.status < 500
        r = pat.request("DELETE", f"/sessions/{'a' * 5000}", raw=raw, token=tokens["access"])
        assert 400 <= r.status < 500

"""GET /sessions and DELETE /sessions/{id}: the signed-in user's own sessions."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import botocore.client
import pytest
from carekey import audit, aws, store, tokens

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


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _id(answer: dict) -> str:
    return tokens.read_refresh(answer["refresh"]).session_id


@pytest.fixture
def clock(monkeypatch):
    """The time sessions are made, used and judged by (access tokens keep real time)."""
    now = {"t": store.now()}
    monkeypatch.setattr(store, "now", lambda: now["t"])
    return now


@pytest.fixture
def dynamodb(monkeypatch):
    """Every DynamoDB request the service makes, as (operation, parameters)."""
    seen: list[tuple[str, dict]] = []
    original = botocore.client.BaseClient._make_api_call

    def counting(client, operation, params):
        if client.meta.service_model.service_name == "dynamodb":
            seen.append((operation, params))
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return seen


def _index_entries(user_id: str) -> list[dict]:
    """What the sessions table's user index holds for this user, as DynamoDB answers."""
    return aws.client("dynamodb").query(
        TableName=store.SessionItem.Meta.table_name,
        IndexName="sessions_by_user",
        KeyConditionExpression="user_id = :u",
        ExpressionAttributeValues={":u": {"S": user_id}},
    )["Items"]


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


def test_after_refreshes_the_list_is_newest_first_with_every_field(pat, gateway, outbox, clock):
    # Given three sign-ins a minute apart
    start = clock["t"]
    first = pat.login("pat@example.com")
    clock["t"] += 60
    second = pat.login("pat@example.com")
    clock["t"] += 60
    third = pat.login("pat@example.com")
    # When the oldest is refreshed twice, the second time from another device
    clock["t"] += 60
    pair = pat.post("/token/refresh", {"refresh": first["refresh"]}).json()
    clock["t"] += 60
    tablet = ApiClient(gateway, outbox, ip="192.0.2.44")
    refreshed = tablet.post("/token/refresh", {"refresh": pair["refresh"]}, headers={"User-Agent": "Tablet/2.0"})
    assert refreshed.status == 200, refreshed.body
    # Then all three are listed, newest sign-in first, each with every field
    listed = _sessions(pat, refreshed.json()["access"])
    assert [s["id"] for s in listed] == [_id(third), _id(second), _id(first)]
    assert all(set(s) == {"id", "created_at", "last_used_at", "ip", "user_agent", "current"} for s in listed)
    # and the refreshed one shows where and when it was last used, and is this one
    assert listed[2] == {
        "id": _id(first), "created_at": _iso(start), "last_used_at": _iso(start + 240),
        "ip": "192.0.2.44", "user_agent": "Tablet/2.0", "current": True,
    }
    assert listed[0] == {
        "id": _id(third), "created_at": _iso(start + 120), "last_used_at": _iso(start + 120),
        "ip": "198.51.100.7", "user_agent": "pytest", "current": False,
    }


def test_the_user_index_holds_keys_only_so_a_refresh_leaves_its_entry_as_it_was(pat, gateway, outbox, clock):
    # Given a session, and the sessions table's one index, which holds keys only
    answer = pat.login("pat@example.com")
    user_id = answer["user"]["id"]
    table = aws.client("dynamodb").describe_table(TableName=store.SessionItem.Meta.table_name)["Table"]
    assert [(i["IndexName"], i["Projection"]) for i in table["GlobalSecondaryIndexes"]] == [("sessions_by_user", {"ProjectionType": "KEYS_ONLY"})]
    before = _index_entries(user_id)
    assert before == [{"session_id": {"S": _id(answer)}, "user_id": {"S": user_id}, "created_at": {"N": str(clock["t"])}}]
    # When it is refreshed a minute later from another address and agent
    clock["t"] += 60
    refreshed = ApiClient(gateway, outbox, ip="192.0.2.44").post(
        "/token/refresh", {"refresh": answer["refresh"]}, headers={"User-Agent": "Tablet/2.0"}
    )
    assert refreshed.status == 200, refreshed.body
    # Then the session moved on, but its index entry is exactly what it was (no index write)
    session = store.session_by_id(_id(answer))
    assert int(session.last_used) == clock["t"] and session.ip == "192.0.2.44" and int(session.generation) == 1
    assert _index_entries(user_id) == before


def test_the_list_reads_the_index_for_keys_then_the_sessions_by_key_without_their_digests(pat, dynamodb):
    # Given two sessions
    mine = pat.login("pat@example.com")
    pat.login("pat@example.com")
    # When the list is asked for
    dynamodb.clear()
    assert len(_sessions(pat, mine["access"])) == 2
    # Then (besides the authorizer's read of the account and this session) the sessions
    # table was read by one index query for the ids, newest first,
    sessions_table = store.SessionItem.Meta.table_name
    listing = [(op, p) for op, p in dynamodb if p.get("TableName") == sessions_table or set(p.get("RequestItems") or {}) == {sessions_table}]
    (query_op, query), (get_op, get) = listing
    assert query_op == "Query" and query["IndexName"] == "sessions_by_user" and query["ScanIndexForward"] is False
    # and one strongly consistent BatchGetItem of both that asks for no token digest
    assert get_op == "BatchGetItem"
    asked = get["RequestItems"][sessions_table]
    assert asked["ConsistentRead"] is True and len(asked["Keys"]) == 2
    assert set(asked["ExpressionAttributeNames"].values()) == set(store.SESSION_LISTING)
    assert not {"token_hash", "previous_hash"} & set(store.SESSION_LISTING)


def test_a_session_deleted_between_the_index_and_the_fetch_is_left_out(pat, monkeypatch):
    # Given two sessions, the other one deleted just after the index lists it
    mine = pat.login("pat@example.com")
    other = pat.login("pat@example.com")
    listed_ids = store._session_ids

    def then_deleted(*args, **kw):
        ids = listed_ids(*args, **kw)
        store.SessionItem(_id(other)).delete()
        return ids

    monkeypatch.setattr(store, "_session_ids", then_deleted)
    # When the list is asked for
    listed = _sessions(pat, mine["access"])
    # Then it shows the one still there, and nothing fails
    assert [s["id"] for s in listed] == [_id(mine)]


def test_more_sessions_than_one_batch_are_all_fetched_newest_first_and_all_erased(pat, dynamodb, monkeypatch):
    # Given a user with 130 sessions, made a second apart
    user_id = store.user_by_email("pat@example.com").user_id
    start = store.now()
    for n in range(130):
        monkeypatch.setattr(store, "now", lambda n=n: start + n)
        store.create_session(store.new_session_id(), user_id, 0, f"digest-{n}", 3600, 3600)
    # and a DynamoDB that, as under load, leaves part of the first batch unprocessed
    original, held_back = botocore.client.BaseClient._make_api_call, []

    def throttled(client, operation, params):
        answer = original(client, operation, params)
        if operation == "BatchGetItem" and not held_back:
            table, found = next(iter(answer["Responses"].items()))
            held_back.extend(found[:30])
            answer["Responses"][table] = found[30:]
            keys = [{"session_id": item["session_id"]} for item in held_back]
            answer["UnprocessedKeys"] = {table: {**params["RequestItems"][table], "Keys": keys}}
        return answer

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", throttled)
    # When the sessions are listed
    dynamodb.clear()
    sessions = store.sessions_of(user_id)
    # Then every one comes back, newest first, without its token digest
    assert [int(s.created_at) for s in sessions] == [start + n for n in reversed(range(130))]
    assert len(held_back) == 30 and all(s.token_hash is None for s in sessions)
    # in batches of at most 100 keys, the held-back keys asked again
    batches = [len(p["RequestItems"][store.SessionItem.Meta.table_name]["Keys"]) for op, p in dynamodb if op == "BatchGetItem"]
    assert max(batches) <= 100 and sum(batches) == 130 + 30
    # And when the account's traces are erased, not one session is left
    store.erase_traces(user_id, [])
    assert store.sessions_of(user_id) == [] and store.SessionItem.count() == 0


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

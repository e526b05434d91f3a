"""The operators' API (AWS_IAM, SigV4) and erasing a person, through the same
local gateway as every other test: requests are signed with botocore's SigV4
as `make admin` signs them, and the gateway checks the signature as API
Gateway does."""

from __future__ import annotations

import gzip
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

import botocore.auth
import botocore.client
import pytest
from carekey import audit, audit_trail, audit_verify, aws, otp, store
from carekey.api import Client

from local import events, sigv4
from local.functions import LambdaContext, handler
from local.gateway import Gateway, Response
from local.template import Stack
from tests.client import PASSWORD, ApiClient
from tests.conftest import STACK

HOST = "127.0.0.1:3000"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


class Operator:
    """An operator's signed requests (access key `local`, secret `local`, us-east-1)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: list[tuple[str, str]] | None = None,
        secret: str = sigv4.SECRET_KEY,
        access_key: str = "local",
        region: str = "us-east-1",
        send_body: bytes | None = None,
        extra: dict[str, str] | None = None,
    ) -> Response:
        data = json.dumps(body).encode() if body is not None else None
        url = f"http://{HOST}{path}" + ("?" + urlencode(query, quote_via=quote) if query else "")
        signed = sigv4.sign(method, url, data, access_key, secret, region=region, headers=extra)
        headers = [("Host", HOST), ("User-Agent", "carekey-admin"), *signed.items()]
        body_sent = send_body if send_body is not None else data
        return self.gateway.handle(method, path, headers, list(query or []), body_sent, "192.0.2.10")

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Response:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> Response:
        return self.request("DELETE", path, **kw)


@pytest.fixture
def operator(gateway: Gateway) -> Operator:
    return Operator(gateway)


def _person(api: ApiClient, email: str) -> tuple[str, dict[str, Any]]:
    """A verified, signed-in person: their id and login answer."""
    api.verified_user(email)
    answer = api.login(email)
    return answer["user"]["id"], answer


def _parallel(n: int, fn):
    with ThreadPoolExecutor(max_workers=min(n, 16)) as pool:
        return list(pool.map(fn, range(n)))


def _trail(operator: Operator, user_id: str) -> list[dict[str, Any]]:
    response = operator.get(f"/admin/users/{user_id}/audit")
    assert response.status == 200, response.body
    return response.json()["records"]


# ---- looking people up ----------------------------------------------------------------


def test_an_operator_finds_a_person_by_email_with_their_accounts_state(api, operator):
    # Given a person signed in on two devices
    user_id, _ = _person(api, "finn@example.com")
    api.login("finn@example.com")
    # When an operator looks the address up
    response = operator.get("/admin/users", query=[("email", "Finn@Example.com")])
    # Then they see the public fields and the state of the account
    assert response.status == 200, response.body
    body = response.json()
    assert body["id"] == user_id and body["email"] == "finn@example.com" and body["first_name"] == "Ada"
    assert body["is_active"] is True and body["locked"] is False and body["mfa_enabled"] is False
    assert body["session_count"] == 2 and body["legacy_id"] is None
    assert response.headers["Cache-Control"] == "no-store"
    # And by id, the same
    assert operator.get(f"/admin/users/{user_id}").json() == body


def test_an_unknown_email_or_id_is_404_and_a_missing_or_bad_email_is_400(operator):
    assert operator.get("/admin/users", query=[("email", "nobody@example.com")]).status == 404
    assert operator.get(f"/admin/users/{UNKNOWN_ID}").status == 404
    missing = operator.get("/admin/users")
    assert missing.status == 400 and missing.json() == {"email": ["This field is required."]}
    assert operator.get("/admin/users", query=[("email", "not an email")]).status == 400


@pytest.mark.parametrize(
    "odd",
    ["..", "%2e%2e", "USER%23x", "x" * 600, "%00", "'%20OR%201=1", UNKNOWN_ID.upper(), "%2F..%2Fprofile", "EMAIL%23a@b.c"],
)
def test_odd_ids_are_404_never_500(operator, odd):
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/disable"), ("POST", "/force-password-reset"), ("GET", "/audit")):
        response = operator.request(method, f"/admin/users/{odd}{suffix}")
        assert response.status == 404, (method, suffix, response.body)
        assert "error" in response.json()


def test_path_traversal_reaches_no_route(operator):
    response = operator.get("/admin/users/../../profile")
    assert response.status in (403, 404) and response.status < 500


# ---- who may call -------------------------------------------------------------------


def _unsigned(gateway: Gateway, method: str, path: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return gateway.handle(method, path, [("Host", HOST), *(headers or [])], [], None, "192.0.2.66")


@pytest.mark.parametrize(
    "method,path",
    [("GET", "/admin/users"), ("GET", f"/admin/users/{UNKNOWN_ID}"), ("DELETE", f"/admin/users/{UNKNOWN_ID}"),
     ("POST", f"/admin/users/{UNKNOWN_ID}/disable"), ("GET", f"/admin/users/{UNKNOWN_ID}/audit"),
     ("PUT", f"/admin/users/{UNKNOWN_ID}/unlock")],
)
def test_an_unsigned_request_is_refused_with_403_json(gateway, method, path):
    response = _unsigned(gateway, method, path)
    assert response.status == 403 and response.json()["error"] == "Forbidden"


def test_a_persons_bearer_token_is_no_admin_credential(api, gateway):
    user_id, answer = _person(api, "bearer@example.com")
    for path in (f"/admin/users/{user_id}", f"/admin/users/{user_id}/audit"):
        response = _unsigned(gateway, "GET", path, [("Authorization", f"Bearer {answer['access']}")])
        assert response.status == 403 and response.json()["error"] == "Forbidden"
    response = _unsigned(gateway, "POST", f"/admin/users/{user_id}/disable", [("Authorization", f"Bearer {answer['access']}")])
    assert response.status == 403
    assert api.get("/profile", token=answer["access"]).status == 200  # nothing happened


def test_a_wrong_secret_another_key_region_or_service_is_refused(api, operator, gateway):
    user_id, answer = _person(api, "wrongkey@example.com")
    assert operator.post(f"/admin/users/{user_id}/disable", secret="not-local").status == 403
    assert operator.post(f"/admin/users/{user_id}/disable", access_key="AKIAOTHER", secret="local").status == 403
    assert operator.post(f"/admin/users/{user_id}/disable", region="eu-west-1").status == 403
    # And the account is untouched
    assert api.get("/profile", token=answer["access"]).status == 200


def test_a_body_changed_after_signing_is_refused(api, operator):
    user_id, _ = _person(api, "tamper@example.com")
    signed_for = {"reason": "routine"}
    response = operator.post(f"/admin/users/{user_id}/disable", body=signed_for, send_body=b'{"reason":"tampered"}')
    assert response.status == 403
    # Nor does declaring the signed body's hash help
    digest = __import__("hashlib").sha256(json.dumps(signed_for).encode()).hexdigest()
    response = operator.post(f"/admin/users/{user_id}/disable", body=signed_for, send_body=b"{}", extra={"X-Amz-Content-SHA256": digest})
    assert response.status == 403
    assert operator.get(f"/admin/users/{user_id}").json()["is_active"] is True
    # While the body as signed passes
    assert operator.post(f"/admin/users/{user_id}/disable", body=signed_for).status == 200


def test_a_signature_older_than_15_minutes_is_refused_however_valid(api, operator, monkeypatch):
    user_id, _ = _person(api, "replay@example.com")
    # Given a request signed 16 minutes ago (a captured request replayed)
    past = datetime.now(timezone.utc) - timedelta(minutes=16)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: past.replace(tzinfo=None))
    assert operator.post(f"/admin/users/{user_id}/disable").status == 403
    # And one dated 16 minutes ahead
    future = datetime.now(timezone.utc) + timedelta(minutes=16)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: future.replace(tzinfo=None))
    assert operator.post(f"/admin/users/{user_id}/disable").status == 403
    monkeypatch.undo()
    assert operator.get(f"/admin/users/{user_id}").json()["is_active"] is True


def test_the_function_itself_refuses_a_call_without_an_iam_caller():
    # Given an event that did not come through API Gateway's IAM authorization
    event = events.proxy_event(
        method="POST", path=f"/admin/users/{UNKNOWN_ID}/disable", resource="/admin/users/{id}/disable", stage="dev",
        headers=[("Host", HOST)], query=[], body=None, source_ip="192.0.2.1",
    )
    event["pathParameters"] = {"id": UNKNOWN_ID}
    result = handler(STACK, "AdminUsersFunction")(event, LambdaContext("AdminUsersFunction", "r1"))
    assert result["statusCode"] == 403 and json.loads(result["body"])["error"] == "Forbidden"


# ---- what operators do ----------------------------------------------------------------


def test_disable_ends_live_tokens_at_once_and_login_says_deactivated(api, operator):
    # Given a person with a live access token and refresh token
    user_id, answer = _person(api, "dina@example.com")
    assert api.get("/profile", token=answer["access"]).status == 200
    # When an operator disables the account
    response = operator.post(f"/admin/users/{user_id}/disable")
    assert response.status == 200 and response.json()["success"] is True
    # Then the same access token is refused on the very next request, and the refresh token too
    assert api.get("/profile", token=answer["access"]).status == 401
    assert api.post("/token/refresh", {"refresh": answer["refresh"]}).status == 401
    # And a login with the right password answers 403 Account deactivated
    login = api.post("/login", {"email": "dina@example.com", "password": PASSWORD})
    assert login.status == 403 and login.json()["error"] == "Account deactivated"
    view = operator.get(f"/admin/users/{user_id}").json()
    assert view["is_active"] is False and view["session_count"] == 0
    # When it is enabled again, the person can sign in, but the old tokens stay dead
    assert operator.post(f"/admin/users/{user_id}/enable").status == 200
    assert api.post("/login", {"email": "dina@example.com", "password": PASSWORD}).status == 200
    assert api.get("/profile", token=answer["access"]).status == 401


def test_ten_parallel_disables_agree(api, operator):
    user_id, answer = _person(api, "para@example.com")
    statuses = _parallel(10, lambda _: operator.post(f"/admin/users/{user_id}/disable").status)
    assert statuses == [200] * 10
    assert operator.get(f"/admin/users/{user_id}").json()["is_active"] is False
    assert api.get("/profile", token=answer["access"]).status == 401


def test_unlock_clears_the_login_lockout(api, operator, settings_override):
    settings_override(LOGIN_LOCKOUT_THRESHOLD="3")
    user_id, _ = _person(api, "lock@example.com")
    for _ in range(3):
        assert api.post("/login", {"email": "lock@example.com", "password": "wrong-password-123"}).status == 401
    assert api.post("/login", {"email": "lock@example.com", "password": PASSWORD}).status == 401  # locked
    assert operator.get(f"/admin/users/{user_id}").json()["locked"] is True
    # When an operator unlocks it
    assert operator.post(f"/admin/users/{user_id}/unlock").status == 200
    # Then the right password works at once
    assert operator.get(f"/admin/users/{user_id}").json()["locked"] is False
    assert api.post("/login", {"email": "lock@example.com", "password": PASSWORD}).status == 200


def test_unlock_gives_a_pending_code_its_tries_back(api, operator, outbox):
    user_id, _ = _person(api, "tries@example.com")
    api.post("/forgot-password", {"email": "tries@example.com"})
    code = api.latest_code("tries@example.com")
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        api.post("/verify-password-reset-otp", {"email": "tries@example.com", "otp": wrong})
    assert api.post("/verify-password-reset-otp", {"email": "tries@example.com", "otp": code}).status == 400  # out of tries
    assert operator.post(f"/admin/users/{user_id}/unlock").status == 200
    assert api.post("/verify-password-reset-otp", {"email": "tries@example.com", "otp": code}).status == 200


def test_sign_out_ends_every_session(api, operator):
    user_id, first = _person(api, "out@example.com")
    second = api.login("out@example.com")
    assert operator.post(f"/admin/users/{user_id}/sign-out").status == 200
    for answer in (first, second):
        assert api.get("/profile", token=answer["access"]).status == 401
        assert api.post("/token/refresh", {"refresh": answer["refresh"]}).status == 401
    assert operator.get(f"/admin/users/{user_id}").json()["session_count"] == 0
    assert api.post("/login", {"email": "out@example.com", "password": PASSWORD}).status == 200


def test_the_session_count_leaves_out_ended_idle_too_old_and_retired_sessions(api, operator, monkeypatch):
    # Given a person's sessions (a session ends after 30 idle minutes, and 12 hours after its login):
    t = store.now()
    clock = {"t": t - 12 * 3600 + 60}
    monkeypatch.setattr(store, "now", lambda: clock["t"])
    # one signed in almost twelve hours ago and refreshed ever since, lastly a minute ago,
    user_id, old = _person(api, "count@example.com")
    for at in [*range(clock["t"] + 25 * 60, t - 60, 25 * 60), t - 60]:
        clock["t"] = at
        old = api.post("/token/refresh", {"refresh": old["refresh"]}).json()
    # one idle for forty minutes,
    clock["t"] = t - 40 * 60
    api.login("count@example.com")
    # one logged out, and two live ones, one of them refreshed since
    clock["t"] = t
    ended = api.login("count@example.com")
    assert api.post("/logout", {}, token=ended["access"]).status == 200
    kept, other = api.login("count@example.com"), api.login("count@example.com")
    kept = api.post("/token/refresh", {"refresh": kept["refresh"]}).json()
    # When an operator looks them up two minutes later (the first one now past twelve hours)
    clock["t"] = t + 120
    # Then only the two live ones count
    assert operator.get(f"/admin/users/{user_id}").json()["session_count"] == 2
    # When the password changes through one of them (every other session is from an older token version)
    new = "a-brand-new-passphrase-77"
    changed = api.post("/change-password", {"current_password": PASSWORD, "new_password": new, "confirm_password": new}, token=kept["access"])
    assert changed.status == 200, changed.body
    # Then only that one counts, and the other is really gone
    assert operator.get(f"/admin/users/{user_id}").json()["session_count"] == 1
    assert api.post("/token/refresh", {"refresh": other["refresh"]}).status == 401
    assert api.post("/token/refresh", {"refresh": changed.json()["refresh"]}).status == 200


def test_force_password_reset_voids_the_password_ends_sessions_and_emails_a_code(api, operator, outbox):
    user_id, answer = _person(api, "force@example.com")
    before = len(outbox.to("force@example.com"))
    assert operator.post(f"/admin/users/{user_id}/force-password-reset").status == 200
    # The password no longer works, and the tokens are dead
    assert api.post("/login", {"email": "force@example.com", "password": PASSWORD}).status == 401
    assert api.get("/profile", token=answer["access"]).status == 401
    # A reset code was emailed, and it sets a new password
    sent = outbox.to("force@example.com")[before:]
    assert len(sent) == 1 and "password reset code" in sent[0]["subject"]
    code = api.latest_code("force@example.com")
    new = "a-brand-new-passphrase-77"
    reset = api.post("/reset-password", {"email": "force@example.com", "otp": code, "new_password": new, "confirm_password": new})
    assert reset.status == 200, reset.body
    assert api.post("/login", {"email": "force@example.com", "password": new}).status == 200


# ---- erasure ---------------------------------------------------------------------------

PII = ("erin@example.com", "Ada", "Byron", "+15551234567")


def test_erasure_removes_the_person_and_the_address_registers_again_as_someone_new(api, operator):
    # Given a person with a phone number, two sessions, a pending reset code
    api.verified_user("erin@example.com")
    first = api.login("erin@example.com")
    user_id = first["user"]["id"]
    api.put("/profile", {"phone_number": "+15551234567"}, token=first["access"])
    second = api.login("erin@example.com")
    api.post("/forgot-password", {"email": "erin@example.com"})
    store.add_passkey(store.PasskeyItem(user_id, "k1", credential_id="c1", public_key="pk", created_at=store.now()), 5)
    # When an operator erases them
    response = operator.delete(f"/admin/users/{user_id}")
    assert response.status == 200 and response.json()["user_id"] == user_id
    # Then nothing of them is left to find or use
    assert operator.get(f"/admin/users/{user_id}").status == 404
    assert operator.get("/admin/users", query=[("email", "erin@example.com")]).status == 404
    assert store.user_by_id(user_id) is None and store.user_by_email("erin@example.com") is None
    assert store.sessions_of(user_id) == []
    assert store.passkeys_of(user_id) == []
    assert store.OtpItem.count(otp.item_key(otp.PASSWORD_RESET, "erin@example.com")) == 0
    for answer in (first, second):
        assert api.get("/profile", token=answer["access"]).status == 401
        assert api.post("/token/refresh", {"refresh": answer["refresh"]}).status == 401
    assert api.post("/login", {"email": "erin@example.com", "password": PASSWORD}).status == 401
    # And the address can register again, as a new person whom the old tokens cannot reach
    api.verified_user("erin@example.com")
    again = api.login("erin@example.com")
    assert again["user"]["id"] != user_id
    for answer in (first, second):
        assert api.get("/profile", token=answer["access"]).status == 401
    assert api.get("/profile", token=again["access"]).json()["phone_number"] is None


def test_while_an_old_stack_upgrades_sessions_are_listed_counted_and_erased_through_its_old_index(
    api, operator, settings_override, monkeypatch
):
    # Given the sessions table and functions as an old stack's first upgrade deploy leaves them
    # (LegacySessionIndex=read): both indexes, the functions still reading by_user
    upgrading = Stack(name=STACK.name, overrides={"LegacySessionIndex": "read"})
    table = upgrading.tables()["SessionsTable"]["create"]
    aws.client("dynamodb").delete_table(TableName=table["TableName"])
    aws.client("dynamodb").create_table(**table)
    settings_override(SESSIONS_USER_INDEX=upgrading.function_environment("SessionsFunction")["SESSIONS_USER_INDEX"])
    queried, original = [], botocore.client.BaseClient._make_api_call

    def recording(client, operation, params):
        if operation == "Query" and params.get("TableName") == table["TableName"]:
            queried.append(params["IndexName"])
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    # and a person signed in twice, one session refreshed
    user_id, first = _person(api, "upgrading@example.com")
    second = api.post("/token/refresh", {"refresh": api.login("upgrading@example.com")["refresh"]}).json()
    # When they list their sessions and an operator looks them up
    listed = api.get("/sessions", token=first["access"]).json()["sessions"]
    view = operator.get(f"/admin/users/{user_id}").json()
    # Then both sessions are listed and counted
    assert sorted(s["current"] for s in listed) == [False, True] and view["session_count"] == 2
    # When the operator erases the person
    assert operator.delete(f"/admin/users/{user_id}").status == 200
    # Then no session is left, and the refresh token is dead
    assert store.SessionItem.count() == 0
    assert api.post("/token/refresh", {"refresh": second["refresh"]}).status == 401
    # and every listing read the index that deploy lets the functions read
    assert queried and set(queried) == {"by_user"}


def _everything_stored() -> str:
    """Every item of every table, as text."""
    import boto3

    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    items = []
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            items += page["Items"]

    def unpacked(value: object) -> str:  # binary attributes (the audit head's gzipped batch) as their text
        assert isinstance(value, bytes)
        return (gzip.decompress(value) if value[:2] == b"\x1f\x8b" else value).decode("utf-8", "replace")

    return json.dumps(items, default=unpacked)


def test_erasure_leaves_no_pending_email_change_behind(api, operator, outbox):
    # Given a person who asked to move their account to a new address, with the code sent there
    user_id, answer = _person(api, "erin@example.com")
    asked = api.post("/change-email", {"password": PASSWORD, "new_email": "erin.next@example.com"}, token=answer["access"])
    assert asked.status == 200, asked.body
    assert outbox.to("erin.next@example.com")
    assert "erin.next@example.com" in _everything_stored()
    # When an operator erases them
    assert operator.delete(f"/admin/users/{user_id}").status == 200
    # Then no table holds either address any more
    stored = _everything_stored()
    assert "erin@example.com" not in stored
    assert "erin.next@example.com" not in stored
    assert store.OtpItem.count(otp.change_email_key(user_id)) == 0


def test_the_audit_trail_outlives_the_person_without_their_details(api, operator):
    api.verified_user("erin@example.com")
    answer = api.login("erin@example.com")
    user_id = answer["user"]["id"]
    api.put("/profile", {"phone_number": "+15551234567"}, token=answer["access"])
    assert operator.post(f"/admin/users/{user_id}/sign-out").status == 200
    assert operator.delete(f"/admin/users/{user_id}").status == 200
    records = _trail(operator, user_id)
    events_seen = [r["event"] for r in records]
    assert "login" in events_seen and "admin.sign_out" in events_seen and "admin.erase" in events_seen
    text = json.dumps(records)
    for detail in PII:
        assert detail not in text
    assert otp.email_key("erin@example.com") in text  # the keyed hash stands in for the address
    erased = next(r for r in records if r["event"] == "admin.erase")
    assert erased["detail"] == {"operator": sigv4.PRINCIPAL_ARN}


def test_ten_parallel_erasures_erase_once(api, operator):
    user_id, answer = _person(api, "many@example.com")
    statuses = _parallel(10, lambda _: operator.delete(f"/admin/users/{user_id}").status)
    assert statuses.count(200) == 1 and statuses.count(404) == 9
    assert store.user_by_email("many@example.com") is None
    assert api.get("/profile", token=answer["access"]).status == 401
    erasures = [r for r in audit.trail_of(user_id) if r["event"] == "admin.erase" and r["outcome"] == "success"]
    assert len(erasures) == 1


def test_every_operator_call_is_audited_with_the_iam_caller(api, operator):
    user_id, _ = _person(api, "seen@example.com")
    operator.get("/admin/users", query=[("email", "seen@example.com")])
    operator.get(f"/admin/users/{user_id}")
    for action in ("disable", "enable", "unlock", "sign-out", "force-password-reset"):
        assert operator.post(f"/admin/users/{user_id}/{action}").status == 200
    records = _trail(operator, user_id)
    by_operator = {r["event"] for r in records if (r.get("detail") or {}).get("operator") == sigv4.PRINCIPAL_ARN}
    assert {"admin.find", "admin.view", "admin.disable", "admin.enable", "admin.unlock", "admin.sign_out",
            "admin.force_password_reset"} <= by_operator
    # Reading the trail is itself audited
    assert "admin.audit_read" in {r["event"] for r in _trail(operator, user_id)}


def test_the_audit_trail_of_an_id_nobody_ever_had_is_404(operator):
    assert operator.get(f"/admin/users/{UNKNOWN_ID}/audit").status == 404


def test_the_audit_answer_states_the_hot_window_and_holds_what_is_in_it(api, operator, monkeypatch):
    # Given a person with a trail, then erased
    user_id, _ = _person(api, "window@example.com")
    assert operator.delete(f"/admin/users/{user_id}").status == 200
    # When an operator reads it
    response = operator.get(f"/admin/users/{user_id}/audit")
    # Then the answer says the audit table keeps 90 days, from when, and holds the person's records since then
    body = response.json()
    assert body["hot_days"] == 90
    since = datetime.fromisoformat(body["since"])
    assert abs(since.timestamp() - (store.now() - 90 * 86400)) < 5
    assert {"register", "login", "admin.erase"} <= {r["event"] for r in body["records"]}
    # When 91 days have passed (DynamoDB's TTL deletes within days: the records may linger)
    later = store.now() + 91 * 86400
    monkeypatch.setattr(store, "now", lambda: later)
    # Then the answer holds none of them (they are in the locked archive only) and says so with a 404,
    # since the account is gone too
    gone = operator.get(f"/admin/users/{user_id}/audit")
    assert gone.status == 404
    assert gone.json()["message"] == "There is no user with this id, and no audit record about it in the last 90 days."


def _many_records(api: ApiClient, queues, email: str, by_id: int, by_address: int) -> str:
    """A person with `by_id` more records naming their id and `by_address` naming only
    the keyed hash of their address (as a failed sign-in does), written by the writer."""
    user_id, _ = _person(api, email)
    who = Client(ip="198.51.100.7", user_agent="test", request_id="r")
    for _ in range(by_id):
        audit.record("refresh", "success", who, user_id=user_id)
    for _ in range(by_address):
        audit.record("login", "failure", who, email_hash=otp.email_key(email))
    queues.drain()
    return user_id


def _trail_as_the_full_index_gave_it(subject: str, since: str) -> list[dict[str, Any]]:
    """One subject's records as the reader before keys-only read them: straight from
    the by_subject index, which held every record in full (projection ALL)."""
    pages = aws.client("dynamodb").get_paginator("query").paginate(
        TableName=audit_trail.AuditRecord.Meta.table_name,
        IndexName="by_subject",
        KeyConditionExpression="subject = :s AND #at >= :at",
        ExpressionAttributeNames={"#at": "at"},
        ExpressionAttributeValues={":s": {"S": subject}, ":at": {"S": since}},
    )
    return [audit_trail.stored_form(audit_trail.AuditRecord.from_raw_data(i)) for page in pages for i in page["Items"]]


def _audit_table_as(stack: Stack) -> None:
    """The audit table recreated (empty) as `stack` declares it."""
    table = stack.tables()["AuditTable"]["create"]
    aws.client("dynamodb").delete_table(TableName=table["TableName"])
    aws.client("dynamodb").create_table(**table)


def test_the_audit_answer_is_the_same_through_the_old_index_the_upgrade_and_the_keys_only_index(
    api, operator, queues, settings_override, monkeypatch
):
    # Given the audit table as an old stack's first upgrade deploy leaves it (LegacyAuditIndex=read): both indexes
    _audit_table_as(Stack(name=STACK.name, overrides={"LegacyAuditIndex": "read"}))
    # and a person with 150 records naming their id and 20 naming their address: more than a BatchGetItem's 100
    user_id = _many_records(api, queues, "many.records@example.com", by_id=150, by_address=20)
    # When an operator reads their trail as before the upgrade (the full records straight from by_subject)
    monkeypatch.setattr(audit_verify, "trail_of", _trail_as_the_full_index_gave_it)
    before = _trail(operator, user_id)
    monkeypatch.undo()
    # and as the first deploy reads it (by_subject's keys, the records fetched by key)
    settings_override(AUDIT_SUBJECT_INDEX=Stack(overrides={"LegacyAuditIndex": "read"}).function_environment("AdminAuditFunction")["AUDIT_SUBJECT_INDEX"])
    upgrading = _trail(operator, user_id)
    # and as the second deploy and every new stack read it (audit_by_subject, keys only)
    settings_override(AUDIT_SUBJECT_INDEX=Stack().function_environment("AdminAuditFunction")["AUDIT_SUBJECT_INDEX"])
    after = _trail(operator, user_id)
    # Then every answer holds the same records in the same order (oldest first), each later one only with
    # the record of the read before it added
    assert len(before) > 170 and [r["seq"] for r in before] == sorted(r["seq"] for r in before)
    assert sum(r["event"] == "refresh" for r in before) == 150 and sum(r["outcome"] == "failure" for r in before) == 20
    assert upgrading[:-1] == before and after[:-1] == upgrading
    assert [(r["event"], r["detail"]) for r in (upgrading[-1], after[-1])] == [("admin.audit_read", {"operator": sigv4.PRINCIPAL_ARN})] * 2
    # And each record is as the writer chained it
    assert all(r["hash"] == audit_trail.digest(r) for r in after)


def test_a_long_trail_is_fetched_in_batches_of_at_most_100_keys_and_unprocessed_keys_are_asked_again(api, queues, monkeypatch):
    # Given a person with 230 records naming their id
    user_id = _many_records(api, queues, "long.trail@example.com", by_id=230, by_address=0)
    # and a DynamoDB that, as under load, leaves part of the first batch unprocessed
    original, calls, held_back = botocore.client.BaseClient._make_api_call, [], []

    def throttled(client, operation, params):
        answer = original(client, operation, params)
        if client.meta.service_model.service_name == "dynamodb":
            calls.append((operation, params))
        if operation == "BatchGetItem" and not held_back:
            table, found = next(iter(answer["Responses"].items()))
            held_back.extend(found[:40])
            answer["Responses"][table] = found[40:]
            keys = [{"chain": item["chain"], "seq": item["seq"]} for item in held_back]
            answer["UnprocessedKeys"] = {table: {**params["RequestItems"][table], "Keys": keys}}
        return answer

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", throttled)
    # When the trail is read
    trail = audit_verify.trail_of(user_id)
    # Then it is every record the table holds about them, oldest first, whole
    held = [audit_trail.stored_form(i) for i in audit_trail.AuditRecord.query(audit_trail.TRAIL) if i.user_id == user_id]
    assert sum(r["event"] == "refresh" for r in held) == 230
    assert trail == sorted(held, key=lambda r: r["at"])
    # read from the keys-only index, then by key in strongly consistent batches of at most 100, the held-back keys again
    assert [p.get("IndexName") for op, p in calls if op == "Query"] == ["audit_by_subject", None]  # None: `held` above
    batches = [p["RequestItems"][audit_trail.AuditRecord.Meta.table_name] for op, p in calls if op == "BatchGetItem"]
    assert all(b["ConsistentRead"] is True for b in batches) and len(held_back) == 40
    assert max(len(b["Keys"]) for b in batches) == 100 and sum(len(b["Keys"]) for b in batches) == len(held) + 40


def test_a_record_gone_from_the_table_but_still_in_the_index_is_left_out(api, operator, queues, monkeypatch):
    # Given a person with a few records, one of which DynamoDB's TTL deletes just after the index lists it
    user_id = _many_records(api, queues, "expiring@example.com", by_id=3, by_address=1)
    held = sorted(r["seq"] for s in (user_id, otp.email_key("expiring@example.com")) for r in audit_verify.trail_of(s))
    listed = audit_verify._subject_keys
    gone: list[int] = []

    def then_expired(subject, since=None):
        keys = listed(subject, since)
        if subject == user_id and not gone:
            chain, seq = keys[1]
            audit_trail.AuditRecord(chain, seq).delete()
            gone.append(seq)
        return keys

    monkeypatch.setattr(audit_verify, "_subject_keys", then_expired)
    # When an operator reads the trail
    response = operator.get(f"/admin/users/{user_id}/audit")
    # Then the answer is every other record, oldest first, and no error
    assert response.status == 200, response.body
    assert gone and [r["seq"] for r in response.json()["records"]] == [s for s in held if s != gone[0]]


# ---- a person deletes their own account -----------------------------------------------


def test_a_person_deletes_their_own_account_with_their_password(api, outbox):
    user_id, answer = _person(api, "self@example.com")
    other = api.login("self@example.com")
    # A wrong password changes nothing
    wrong = api.request("DELETE", "/profile", {"password": "not-my-password-1"}, token=answer["access"])
    assert wrong.status == 400 and "password" in wrong.json()
    assert api.get("/profile", token=answer["access"]).status == 200
    # The right one erases the account and tells the address
    done = api.request("DELETE", "/profile", {"password": PASSWORD}, token=answer["access"])
    assert done.status == 200 and done.json()["success"] is True
    assert "account was deleted" in outbox.to("self@example.com")[-1]["subject"]
    assert store.user_by_id(user_id) is None
    assert api.get("/profile", token=other["access"]).status == 401
    assert api.post("/login", {"email": "self@example.com", "password": PASSWORD}).status == 401
    api.verified_user("self@example.com")
    assert api.login("self@example.com")["user"]["id"] != user_id


def test_deleting_an_account_needs_a_token_and_a_well_formed_body(api):
    _, answer = _person(api, "body@example.com")
    assert api.request("DELETE", "/profile", {"password": PASSWORD}).status == 401
    assert api.request("DELETE", "/profile", {}, token=answer["access"]).status == 400
    assert api.request("DELETE", "/profile", raw=b"{not json", token=answer["access"]).status == 400
    assert api.request("DELETE", "/profile", raw=b'{"password": "' + b"x" * 20000 + b'"}', token=answer["access"]).status in (400, 413)
    assert api.get("/profile", token=answer["access"]).status == 200


def test_parallel_self_deletions_erase_once(api, outbox):
    user_id, answer = _person(api, "twice@example.com")
    statuses = _parallel(10, lambda _: api.request("DELETE", "/profile", {"password": PASSWORD}, token=answer["access"]).status)
    assert statuses.count(200) == 1 and set(statuses) <= {200, 400, 401}
    assert store.user_by_id(user_id) is None
    assert sum("account was deleted" in m["subject"] for m in outbox.to("twice@example.com")) == 1


# ---- the template ----------------------------------------------------------------------


def test_the_template_gives_operators_a_policy_and_only_the_audit_reader_reads_the_trail():
    from local.template import load

    template = load()
    resources = template["Resources"]
    policy = resources["AdminPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert [s["Action"] for s in policy] == [["execute-api:Invoke"]]
    assert all("/admin" in r["Fn::Sub"] for r in policy[0]["Resource"])
    assert template["Outputs"]["AdminPolicyArn"]["Value"] == {"Ref": "AdminPolicy"}
    readers = {
        name for name, res in resources.items()
        if res["Type"] == "AWS::Serverless::Function" and "AuditTable" in json.dumps(res["Properties"].get("Policies", []))
    }
    assert readers == {"AdminAuditFunction"}
    iam_routes = {(r.path, r.method) for r in STACK.routes() if r.iam}
    assert iam_routes and all(path.startswith("/admin/") for path, _ in iam_routes)
    assert {path for path, _ in iam_routes} == {r.path for r in STACK.routes() if r.path.startswith("/admin/")}


# ---- make admin ------------------------------------------------------------------------


def test_make_admin_signs_with_the_callers_credentials_and_prints_json(api, gateway, monkeypatch):
    import io
    import urllib.request
    from urllib.parse import urlsplit

    from local import admin as admin_command

    user_id, answer = _person(api, "cli@example.com")

    class Answer(io.BytesIO):
        def __init__(self, response: Response) -> None:
            super().__init__(response.body)
            self.status = response.status

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def through_the_gateway(request, timeout):  # noqa: ANN001 - urllib's Request
        url = urlsplit(request.full_url)
        headers = [("Host", url.netloc), *request.header_items()]
        query = [tuple(p.split("=", 1)) for p in url.query.split("&")] if url.query else []
        from urllib.parse import unquote

        response = gateway.handle(request.get_method(), url.path, headers, [(unquote(k), unquote(v)) for k, v in query], None, "192.0.2.20")
        if response.status >= 400:
            raise urllib.error.HTTPError(request.full_url, response.status, "refused", {}, io.BytesIO(response.body))
        return Answer(response)

    monkeypatch.setenv("PORT", "3000")
    monkeypatch.delenv("STACK_NAME", raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", through_the_gateway)
    printed: list[str] = []  # what the command prints (the functions' own logs also go to stdout)
    monkeypatch.setattr(admin_command, "print", lambda text, **kw: printed.append(text), raising=False)
    assert admin_command.main(["find", "cli@example.com"]) == 0
    assert json.loads(printed[-1])["id"] == user_id
    assert admin_command.main(["disable", user_id]) == 0
    assert json.loads(printed[-1])["success"] is True
    assert api.get("/profile", token=answer["access"]).status == 401
    assert admin_command.main(["get", UNKNOWN_ID]) == 1
    assert json.loads(printed[-1])["error"] == "Not found"


def test_make_admin_says_in_one_line_when_nothing_answers(monkeypatch, capsys):
    import socket

    from local import admin as admin_command

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free, and nothing listens on it once closed
    monkeypatch.setenv("PORT", str(port))
    monkeypatch.delenv("STACK_NAME", raising=False)
    assert admin_command.main(["get", UNKNOWN_ID]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not answer" in err and "STACK_NAME" in err
    assert admin_command.main(["frobnicate", "x"]) == 2

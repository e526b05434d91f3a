"""Login, token refresh with rotation and reuse detection, logout, the authorizer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import bcrypt
import botocore.client
import jwt
import pytest
from carekey import audit_verify, passwords, store, tokens
from carekey.keys import forget_cached_keys
from carekey.signing import signing_keys
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.client import PASSWORD


@pytest.fixture
def signed_in(api):
    api.verified_user("pat@example.com")
    return api.login("pat@example.com")


def test_login_returns_user_and_token_pair(api):
    api.verified_user("pat@example.com")
    r = api.post("/login", {"email": " PAT@example.com", "password": PASSWORD})
    assert r.status == 200
    body = r.json()
    assert set(body) == {"user", "access", "refresh", "message"}
    assert body["message"] == "Login successful" and body["user"]["email"] == "pat@example.com"
    assert r.headers["Cache-Control"] == "no-store"
    header = jwt.get_unverified_header(body["access"])
    assert header["alg"] == "ES256" and header["kid"] and header["typ"] == "at+jwt"
    claims = jwt.decode(body["access"], options={"verify_signature": False})
    assert {"iss", "aud", "sub", "iat", "exp", "jti", "client_id", "user_id"} <= set(claims)
    assert claims["iss"] == "http://127.0.0.1:3000" and claims["client_id"] == tokens.settings().token_client_id
    assert claims["user_id"] == claims["sub"] == body["user"]["id"]
    assert claims["exp"] - claims["iat"] == 5 * 60


def test_a_refresh_token_is_opaque_and_stored_only_as_a_digest(api):
    # Given a new session
    api.verified_user("pat@example.com")
    refresh = api.login("pat@example.com")["refresh"]
    # Then its refresh token is no JWT at all
    with pytest.raises(jwt.DecodeError):
        jwt.get_unverified_header(refresh)
    # and the sessions table holds its SHA-256, never the token or its secret
    [item] = list(store.SessionItem.scan())
    stored = json.dumps(item.serialize())
    assert item.token_hash == hashlib.sha256(refresh.encode()).hexdigest()
    assert refresh not in stored and refresh.rsplit("~", 1)[1] not in stored
    assert item.refresh_expires_at - item.created_at == 24 * 3600


def test_a_forged_refresh_token_is_refused_and_ends_nothing(api, outbox):
    # Given a live session, and a token naming it with a made-up secret
    api.verified_user("pat@example.com")
    pair = api.login("pat@example.com")
    user_id, session_id, _, secret = pair["refresh"].split("~")
    for forged in (f"{user_id}~{session_id}~0~{'0' * 64}", f"{user_id}~{session_id}~7~{secret}", pair["refresh"] + "0"):
        # When it is presented, it is refused
        r = api.post("/token/refresh", {"refresh": forged})
        assert r.status == 401 and r.json()["code"] == "token_not_valid"
    # Then the real session goes on, and nobody was told of a replay
    assert api.post("/token/refresh", {"refresh": pair["refresh"]}).status == 200
    assert [m["subject"] for m in outbox.to("pat@example.com") if "ended" in m["subject"]] == []


def test_wrong_password_and_unknown_email_get_the_same_401(api):
    api.verified_user("pat@example.com")
    wrong = api.post("/login", {"email": "pat@example.com", "password": "not-the-password"})
    unknown = api.post("/login", {"email": "ghost@example.com", "password": "not-the-password"})
    assert wrong.status == unknown.status == 401
    assert wrong.body == unknown.body
    assert wrong.json()["error"] == "Invalid credentials"


def test_a_wrong_password_costs_the_same_whatever_the_account_or_none(api, monkeypatch):
    # Given an Argon2id account, a bcrypt-era account, a pending sign-up and an unknown address,
    # a bcrypt check at BCRYPT_COST that costs 0.5 s here and an Argon2id check 0.1 s, and a
    # clock that waiting moves on
    api.verified_user("pat@example.com")
    api.verified_user("old@example.com")
    old = store.user_by_email("old@example.com")
    store.UserItem(old.pk).update(actions=[store.UserItem.password_hash.set(passwords.bcrypt_hash(PASSWORD, cost=4))])
    api.register("sam@example.com")
    monkeypatch.setattr(passwords, "bcrypt_check_seconds", lambda: 0.5)
    monkeypatch.setattr(passwords, "argon2_check_seconds", lambda: 0.1)
    waited = {"s": 0.0}
    real = time.perf_counter
    monkeypatch.setattr(passwords.time, "perf_counter", lambda: real() + waited["s"])
    monkeypatch.setattr(passwords.time, "sleep", lambda s: waited.update(s=waited["s"] + s))
    spent = {}
    for email in ("pat@example.com", "old@example.com", "sam@example.com", "ghost@example.com"):
        # When a wrong password is tried
        started = passwords.time.perf_counter()
        assert api.post("/login", {"email": email, "password": "not-the-password"}).status == 401
        spent[email] = passwords.time.perf_counter() - started
    # Then each answer leaves at the floor (a bcrypt check and the second, Argon2id, check)
    # after the request began, whatever the address holds
    assert min(spent.values()) >= 0.6
    assert max(spent.values()) - min(spent.values()) < 0.05, spent


def test_the_failure_floor_is_one_bcrypt_check_at_the_configured_cost(monkeypatch, settings_override):
    # Given BCRYPT_COST 6
    settings_override(BCRYPT_COST="6")
    costs: list[bytes] = []
    real = bcrypt.checkpw
    monkeypatch.setattr(passwords.bcrypt, "checkpw", lambda pw, h: costs.append(h[:7]) or real(pw, h))
    passwords._bcrypt_seconds.cache_clear()
    # When the floor is measured, twice
    first, second = passwords.bcrypt_check_seconds(), passwords.bcrypt_check_seconds()
    # Then one real bcrypt check at cost 6 measured it, once per environment
    assert costs == [b"$2b$06$"] and first == second > 0


def test_the_failure_floor_sits_a_quarter_above_the_measured_check(monkeypatch, settings_override):
    # Given a bcrypt check that takes 0.2 s by the clock
    settings_override(BCRYPT_COST="5")
    ticks = iter([10.0, 10.2])
    monkeypatch.setattr(passwords.time, "perf_counter", lambda: next(ticks))
    passwords._bcrypt_seconds.cache_clear()
    # When the floor is measured
    # Then a bcrypt-era account's own check must run 25% slow before it outlasts the floor
    assert passwords.bcrypt_check_seconds() == pytest.approx(0.25)
    passwords._bcrypt_seconds.cache_clear()  # the next test measures with the real clock


def test_the_failure_deadline_is_fixed_when_the_request_begins(monkeypatch):
    # Given floors of 0.3 s (bcrypt) and 0.05 s (Argon2id), and a clock at 100 s
    monkeypatch.setattr(passwords, "bcrypt_check_seconds", lambda: 0.3)
    monkeypatch.setattr(passwords, "argon2_check_seconds", lambda: 0.05)
    slept: list[float] = []
    monkeypatch.setattr(passwords.time, "sleep", slept.append)
    for spent in (0.02, 0.29):  # a quick Argon2id failure, a slow bcrypt-era one
        monkeypatch.setattr(passwords.time, "perf_counter", lambda spent=spent: 100.0 + spent)
        # When a failure that began at 100 s settles after `spent` seconds of work
        passwords.settle_failure(100.0)
    # Then both answer at 100.35 s: the request's own work never moves the deadline
    assert slept == [pytest.approx(0.33), pytest.approx(0.06)]


def test_the_second_checks_floor_is_one_argon2id_check_measured_once(monkeypatch):
    # Given an Argon2id check that takes 0.04 s by the clock
    ticks = iter([5.0, 5.04])
    passwords._argon2_seconds.cache_clear()
    passwords.prepare_dummy_check()  # the dummy hash exists already in a warm environment
    monkeypatch.setattr(passwords.time, "perf_counter", lambda: next(ticks))
    # When the floor is read twice
    first, second = passwords.argon2_check_seconds(), passwords.argon2_check_seconds()
    # Then it was measured once, with the same quarter's margin as bcrypt's
    assert first == second == pytest.approx(0.05)
    passwords._argon2_seconds.cache_clear()  # the next test measures with the real clock


def test_unverified_account_is_told_only_after_the_right_password(api):
    api.register("new@example.com")
    wrong = api.post("/login", {"email": "new@example.com", "password": "not-the-password"})
    right = api.post("/login", {"email": "new@example.com", "password": PASSWORD})
    assert wrong.status == 401
    assert right.status == 403
    assert right.json()["error"] == "Email not verified" and right.json()["can_resend_otp"] is True


def test_deactivated_account_is_refused(api):
    api.verified_user("gone@example.com")
    user = store.user_by_email("gone@example.com")
    user.update(actions=[store.UserItem.is_active.set(False)])
    r = api.post("/login", {"email": "gone@example.com", "password": PASSWORD})
    assert r.status == 403 and r.json()["error"] == "Account deactivated"


def test_login_rehashes_when_the_hash_parameters_change(api, settings_override):
    api.verified_user("pat@example.com")
    assert "$m=1024,t=1,p=1$" in store.user_by_email("pat@example.com").password_hash
    settings_override(ARGON2_ITERATIONS="2")
    api.login("pat@example.com")
    assert "$m=1024,t=2,p=1$" in store.user_by_email("pat@example.com").password_hash
    api.login("pat@example.com")


def test_profile_needs_a_valid_access_token(api, signed_in):
    assert api.get("/profile").status == 401
    assert api.get("/profile", token="garbage").status == 401
    assert api.get("/profile", token=signed_in["refresh"]).status == 401
    ok = api.get("/profile", token=signed_in["access"])
    assert ok.status == 200 and ok.json()["email"] == "pat@example.com"
    assert api.get("/me", token=signed_in["access"]).json() == ok.json()
    assert api.get("/profile/", token=signed_in["access"]).status == 200


def test_refresh_rotates_and_an_access_token_is_not_a_refresh_token(api, signed_in):
    assert api.post("/token/refresh", {"refresh": signed_in["access"]}).status == 401
    r = api.post("/token/refresh", {"refresh": signed_in["refresh"]})
    assert r.status == 200
    pair = r.json()
    assert set(pair) == {"access", "refresh"} and pair["refresh"] != signed_in["refresh"]
    assert r.headers["Cache-Control"] == "no-store"
    assert api.get("/profile", token=pair["access"]).status == 200


def test_the_token_just_replaced_returns_the_current_pair_within_the_reuse_interval(api, signed_in, monkeypatch):
    # Given a refresh whose answer the client lost (the clock held still, so a slow machine adds no second)
    start = store.now()
    monkeypatch.setattr(store, "now", lambda: start)
    newer = api.post("/token/refresh", {"refresh": signed_in["refresh"]}).json()
    # When it retries with the same token 9 seconds later
    monkeypatch.setattr(store, "now", lambda: start + 9)
    retry = api.post("/token/refresh", {"refresh": signed_in["refresh"]})
    # Then it gets the session's current refresh token and a working access token
    assert retry.status == 200
    assert retry.json()["refresh"] == newer["refresh"]
    assert api.get("/profile", token=retry.json()["access"]).status == 200
    # and the session carries on
    assert api.post("/token/refresh", {"refresh": newer["refresh"]}).status == 200


def test_replaying_a_replaced_token_after_the_interval_ends_the_session_and_tells_the_owner(api, signed_in, monkeypatch, outbox):
    # Given a token replaced 11 seconds ago (the interval is 10)
    start = store.now()
    monkeypatch.setattr(store, "now", lambda: start)
    newer = api.post("/token/refresh", {"refresh": signed_in["refresh"]}).json()
    monkeypatch.setattr(store, "now", lambda: start + 11)
    # When someone presents it again
    replay = api.post("/token/refresh", {"refresh": signed_in["refresh"]})
    # Then it is refused, the whole session ends, and its owner gets a notice
    assert replay.status == 401 and replay.json()["code"] == "token_not_valid"
    assert api.post("/token/refresh", {"refresh": newer["refresh"]}).status == 401
    assert api.get("/profile", token=newer["access"]).status == 401
    assert outbox.to("pat@example.com")[-1]["subject"] == "A CareKey session of yours was ended"


def test_an_older_token_is_a_replay_even_within_the_interval(api, signed_in, outbox):
    second = api.post("/token/refresh", {"refresh": signed_in["refresh"]}).json()
    third = api.post("/token/refresh", {"refresh": second["refresh"]}).json()
    # the first token is two rotations old: only the token just replaced may be reused
    assert api.post("/token/refresh", {"refresh": signed_in["refresh"]}).status == 401
    assert api.post("/token/refresh", {"refresh": third["refresh"]}).status == 401
    assert outbox.to("pat@example.com")[-1]["subject"].endswith("was ended")


def test_a_reuse_interval_of_zero_makes_any_reuse_a_replay(api, signed_in, settings_override):
    settings_override(REFRESH_REUSE_SECONDS="0")
    newer = api.post("/token/refresh", {"refresh": signed_in["refresh"]}).json()
    assert api.post("/token/refresh", {"refresh": signed_in["refresh"]}).status == 401
    assert api.post("/token/refresh", {"refresh": newer["refresh"]}).status == 401


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_tokens_with_another_algorithm_or_signature_are_refused(api, signed_in):
    # Given the claims and key id of a genuine token
    head, payload, sig = signed_in["access"].split(".")
    kid = jwt.get_unverified_header(signed_in["access"])["kid"]
    current, _ = signing_keys()
    public_pem = current.public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    # When an attacker re-signs them with "none", or HS256 keyed with the public key,
    none_head = _b64(json.dumps({"alg": "none", "kid": kid, "typ": "JWT"}).encode())
    unsigned = f"{none_head}.{payload}."
    hs_head = _b64(json.dumps({"alg": "HS256", "kid": kid, "typ": "JWT"}).encode())
    hs_sig = _b64(hmac.new(public_pem, f"{hs_head}.{payload}".encode(), hashlib.sha256).digest())
    hs256 = f"{hs_head}.{payload}.{hs_sig}"
    # or changes one character of the payload
    tampered = ".".join([head, payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1], sig])
    # Then every one is refused
    for bad in (unsigned, hs256, tampered):
        assert api.get("/profile", token=bad).status == 401
        assert api.post("/token/refresh", {"refresh": bad}).status == 401


def test_expired_and_foreign_tokens_are_refused(api, signed_in, settings_override):
    claims = jwt.decode(signed_in["access"], options={"verify_signature": False})
    current, _ = signing_keys()
    kid = {"kid": current.kid}
    kid = {**kid, "typ": "at+jwt"}
    assert api.get("/profile", token=jwt.encode(claims, current.private, algorithm="ES256", headers=kid)).status == 200
    expired = jwt.encode({**claims, "exp": int(time.time()) - 60}, current.private, algorithm="ES256", headers=kid)
    other_aud = jwt.encode({**claims, "aud": "someone-else"}, current.private, algorithm="ES256", headers=kid)
    other_iss = jwt.encode({**claims, "iss": "someone-else"}, current.private, algorithm="ES256", headers=kid)
    other_client = jwt.encode({**claims, "client_id": "someone-else"}, current.private, algorithm="ES256", headers=kid)
    plain_jwt = jwt.encode(claims, current.private, algorithm="ES256", headers={**kid, "typ": "JWT"})
    for bad in (expired, other_aud, other_iss, other_client, plain_jwt):
        r = api.get("/profile", token=bad)
        assert r.status == 401 and r.json()["code"] == "token_not_valid"
        assert r.headers["WWW-Authenticate"].startswith('Bearer realm="carekey", error="invalid_token"')


def test_jwks_verifies_issued_tokens(api, signed_in):
    r = api.get("/.well-known/jwks.json")
    assert r.status == 200
    [key] = r.json()["keys"]
    assert key["kty"] == "EC" and key["alg"] == "ES256" and "d" not in key
    public = jwt.PyJWK(key).key
    claims = jwt.decode(
        signed_in["access"], public, algorithms=["ES256"], audience=tokens.settings().token_audience, issuer="http://127.0.0.1:3000"
    )
    assert claims["sub"]


def test_key_rotation_keeps_issued_tokens_valid(api, signed_in):
    import boto3

    boto3.client("secretsmanager").put_secret_value(
        SecretId=tokens.settings().signing_secret_id, SecretString='{"seed": "a-brand-new-seed-for-rotation-0123456789"}'
    )
    forget_cached_keys()

    assert api.get("/profile", token=signed_in["access"]).status == 200
    fresh = api.login("pat@example.com")
    kids = {k["kid"] for k in api.get("/.well-known/jwks.json").json()["keys"]}
    assert len(kids) == 2
    assert jwt.get_unverified_header(fresh["access"])["kid"] != jwt.get_unverified_header(signed_in["access"])["kid"]
    assert api.post("/token/refresh", {"refresh": signed_in["refresh"]}).status == 200


def test_logout_ends_this_session_at_once(api, signed_in):
    other = api.login("pat@example.com")
    r = api.post("/logout", {}, token=signed_in["access"])
    assert r.status == 200 and r.json()["success"] is True
    assert api.get("/profile", token=signed_in["access"]).status == 401
    assert api.post("/token/refresh", {"refresh": signed_in["refresh"]}).status == 401
    assert api.get("/profile", token=other["access"]).status == 200


def test_logout_everywhere_ends_every_session(api, signed_in):
    other = api.login("pat@example.com")
    assert api.post("/logout", {"all": True}, token=signed_in["access"]).status == 200
    assert api.get("/profile", token=other["access"]).status == 401
    assert api.post("/token/refresh", {"refresh": other["refresh"]}).status == 401


def _session_of(refresh: str) -> store.SessionItem:
    return store.SessionItem.get(tokens.read_refresh(refresh).session_id, consistent_read=True)


def test_a_session_idle_for_30_minutes_ends(api, signed_in, monkeypatch):
    real_now = store.now()
    monkeypatch.setattr(store, "now", lambda: real_now + 31 * 60)
    assert api.post("/token/refresh", {"refresh": signed_in["refresh"]}).status == 401
    monkeypatch.undo()
    assert _session_of(signed_in["refresh"]).revoked


def test_a_session_ends_12_hours_after_login_even_when_active(api, signed_in):
    # Given a session that began 11h59m ago and was used a minute ago
    item = _session_of(signed_in["refresh"])
    item.update(actions=[store.SessionItem.created_at.set(store.now() - (12 * 3600 - 60)), store.SessionItem.last_used.set(store.now() - 60)])
    # When it refreshes, it still works
    r = api.post("/token/refresh", {"refresh": signed_in["refresh"]})
    assert r.status == 200
    # Given the same session two minutes later, past 12 hours
    item.update(actions=[store.SessionItem.created_at.set(store.now() - (12 * 3600 + 60))])
    # Then neither its refresh token nor its access token works
    assert api.post("/token/refresh", {"refresh": r.json()["refresh"]}).status == 401
    assert api.get("/profile", token=r.json()["access"]).status == 401


def test_change_password_keeps_this_session_and_ends_the_others(api, signed_in, outbox):
    other = api.login("pat@example.com")
    new = "a-completely-new-passphrase"
    r = api.post(
        "/change-password",
        {"current_password": PASSWORD, "new_password": new, "confirm_password": new},
        token=signed_in["access"],
    )
    assert r.status == 200, r.body
    body = r.json()
    assert api.get("/profile", token=body["access"]).status == 200
    assert api.get("/profile", token=signed_in["access"]).status == 401
    assert api.get("/profile", token=other["access"]).status == 401
    assert api.post("/token/refresh", {"refresh": other["refresh"]}).status == 401
    assert api.post("/login", {"email": "pat@example.com", "password": PASSWORD}).status == 401
    assert api.login("pat@example.com", new)
    assert outbox.to("pat@example.com")[-1]["subject"].endswith("password was changed")


def test_change_password_needs_the_current_one(api, signed_in):
    new = "a-completely-new-passphrase"
    r = api.post(
        "/change-password",
        {"current_password": "wrong-wrong-wrong", "new_password": new, "confirm_password": new},
        token=signed_in["access"],
    )
    assert r.status == 400 and "current_password" in r.json()
    assert api.post("/change-password", {"current_password": PASSWORD}, token=None).status == 401


# ---- a routine refresh reads eventually consistent; anything else is decided from a strong read ----


class StaleReads:
    """Eventually consistent reads of the account and the session as DynamoDB may
    answer them for up to about a second after a write: `keep` takes a snapshot
    now, and every later eventually consistent read returns it instead of the
    truth.  Strongly consistent reads always see the truth; `asked` lists the
    consistency of every read, in order."""

    def __init__(self, real):
        self.real, self.kept, self.asked = real, {}, []

    def keep(self, refresh: str, *, account: bool = True, session: bool = True) -> None:
        token = tokens.read_refresh(refresh)
        user, item = self.real(token.user_id, token.session_id)
        self.kept.update({**({"account": user} if account else {}), **({"session": item} if session else {})})

    def catch_up(self) -> None:
        self.kept.clear()

    def __call__(self, user_id: str, session_id: str, consistent: bool = True):
        self.asked.append(consistent)
        user, item = self.real(user_id, session_id, consistent=consistent)
        if consistent:
            return user, item
        return self.kept.get("account", user), self.kept.get("session", item)


@pytest.fixture
def stale_reads(monkeypatch) -> StaleReads:
    reads = StaleReads(store.user_and_session)
    monkeypatch.setattr(store, "user_and_session", reads)
    return reads


@pytest.fixture
def dynamodb(monkeypatch) -> list[tuple[str, dict]]:
    """Every DynamoDB request the service makes outside the audit table."""
    seen: list[tuple[str, dict]] = []
    original, audit_table = botocore.client.BaseClient._make_api_call, os.environ["AUDIT_TABLE"]

    def capture(client, operation, params):
        if client.meta.service_model.service_name == "dynamodb" and audit_table not in {params.get("TableName"), *(params.get("RequestItems") or {})}:
            seen.append((operation, params))
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", capture)
    return seen


def _user_id(refresh: str) -> str:
    return tokens.read_refresh(refresh).user_id


def _refresh_outcomes(refresh: str) -> list[str]:
    return [r["outcome"] for r in audit_verify.trail_of(_user_id(refresh)) if r["event"] == "refresh"]


def _ended_notices(outbox) -> list[str]:
    return [m["subject"] for m in outbox.to("pat@example.com") if m["subject"].endswith("was ended")]


def test_a_routine_refresh_reads_the_account_and_session_eventually_consistent_in_one_request(api, signed_in, dynamodb):
    # Given a live session
    dynamodb.clear()
    # When it refreshes its token from where it signed in
    r = api.post("/token/refresh", {"refresh": signed_in["refresh"]})
    assert r.status == 200
    # Then it made one eventually consistent read of both items (half the read units) and the rotation, nothing else
    assert [op for op, _ in dynamodb] == ["BatchGetItem", "UpdateItem"]
    read = dynamodb[0][1]["RequestItems"]
    assert {table: asked["ConsistentRead"] for table, asked in read.items()} == {os.environ["USERS_TABLE"]: False, os.environ["SESSIONS_TABLE"]: False}
    # and the authorizer still reads both strongly consistent before the new access token is let in
    dynamodb.clear()
    assert api.get("/profile", token=r.json()["access"]).status == 200
    [(op, guard)] = [call for call in dynamodb if call[0] == "BatchGetItem"]
    assert {asked["ConsistentRead"] for asked in guard["RequestItems"].values()} == {True}


def test_a_stale_read_of_the_session_never_refuses_its_current_token(api, signed_in, stale_reads, outbox):
    # Given a session that rotated once, and eventual reads that still return it as before that rotation
    stale_reads.keep(signed_in["refresh"], account=False)
    newer = api.post("/token/refresh", {"refresh": signed_in["refresh"]}).json()
    stale_reads.asked.clear()
    # When its current token is presented
    r = api.post("/token/refresh", {"refresh": newer["refresh"]})
    # Then the stale read did not decide: a strong read did, and the token rotated as always
    assert r.status == 200 and stale_reads.asked == [False, True]
    assert api.get("/profile", token=r.json()["access"]).status == 200
    item = _session_of(newer["refresh"])
    assert not item.revoked and int(item.generation) == 2 and int(item.unaudited) == 2
    # and nothing was revoked, reported or audited
    assert _ended_notices(outbox) == [] and _refresh_outcomes(newer["refresh"]) == []


def test_a_replayed_token_that_a_stale_read_shows_as_current_is_still_a_replay(api, signed_in, stale_reads, outbox):
    # Given a session two rotations past its first token, and eventual reads that return it as it was
    # when that first token was current
    stale_reads.keep(signed_in["refresh"], account=False)
    second = api.post("/token/refresh", {"refresh": signed_in["refresh"]}).json()
    third = api.post("/token/refresh", {"refresh": second["refresh"]}).json()
    # When a copy of the first token is replayed
    replay = api.post("/token/refresh", {"refresh": signed_in["refresh"]})
    # Then the rotation's condition found the session moved on, and the strong read named it a replay:
    # the session ends, its owner is told, the trail has it
    assert replay.status == 401 and replay.json()["code"] == "token_not_valid"
    assert _session_of(third["refresh"]).revoked
    assert _ended_notices(outbox) == ["A CareKey session of yours was ended"]
    assert _refresh_outcomes(third["refresh"]) == ["reuse_detected"]
    assert api.post("/token/refresh", {"refresh": third["refresh"]}).status == 401
    assert api.get("/profile", token=third["access"]).status == 401


def test_a_stale_read_of_the_account_never_refuses_a_session_renewed_by_a_password_change(api, signed_in, stale_reads, outbox):
    # Given eventual reads that return the account as before this session changed its password (the older token version)
    stale_reads.keep(signed_in["refresh"], session=False)
    new = "a-completely-new-passphrase"
    changed = api.post(
        "/change-password", {"current_password": PASSWORD, "new_password": new, "confirm_password": new}, token=signed_in["access"]
    ).json()
    stale_reads.asked.clear()
    # When the session's renewed token is presented
    r = api.post("/token/refresh", {"refresh": changed["refresh"]})
    # Then the strong read decided, and it rotates
    assert r.status == 200 and stale_reads.asked == [False, True]
    assert api.get("/profile", token=r.json()["access"]).status == 200
    assert not _session_of(changed["refresh"]).revoked
    # and nothing was reported or audited as a refresh
    assert _ended_notices(outbox) == [] and _refresh_outcomes(changed["refresh"]) == []


def _end_by(api, how: str, signed_in: dict) -> None:
    if how == "deactivated":
        assert store.set_active(_user_id(signed_in["refresh"]), False) is not None
    else:
        new = "a-completely-new-passphrase"
        body = {"current_password": PASSWORD, "new_password": new, "confirm_password": new}
        assert api.post("/change-password", body, token=signed_in["access"]).status == 200


@pytest.mark.parametrize("how", ["deactivated", "password changed"])
def test_a_refresh_after_the_account_is_deactivated_or_its_password_changed_is_refused(api, signed_in, stale_reads, outbox, how):
    # Given a second session of the account, and then the account deactivated or its password changed by the first
    other = api.login("pat@example.com")
    _end_by(api, how, signed_in)
    stale_reads.asked.clear()
    # When the second session's token is presented
    r = api.post("/token/refresh", {"refresh": other["refresh"]})
    # Then it is refused with the strong read's answer, which ends nothing more and tells nobody
    assert r.status == 401 and r.json()["code"] == "token_not_valid" and stale_reads.asked == [False, True]
    assert not _session_of(other["refresh"]).revoked and int(_session_of(other["refresh"]).generation) == 0
    assert _ended_notices(outbox) == [] and _refresh_outcomes(other["refresh"]) == []


@pytest.mark.parametrize("how", ["deactivated", "password changed"])
def test_tokens_minted_from_a_stale_account_read_are_refused_at_their_first_use(api, signed_in, stale_reads, how):
    # Given a second session, and eventual reads that still return the account as before it was
    # deactivated or its password changed (the window of about a second docs describe)
    other = api.login("pat@example.com")
    stale_reads.keep(other["refresh"], session=False)
    _end_by(api, how, signed_in)
    # When the second session refreshes inside that window, it gets a pair
    minted = api.post("/token/refresh", {"refresh": other["refresh"]})
    assert minted.status == 200
    # Then its access token is refused by the authorizer's strongly consistent read
    assert api.get("/profile", token=minted.json()["access"]).status == 401
    # and once reads catch up, its refresh token is refused too
    stale_reads.catch_up()
    assert api.post("/token/refresh", {"refresh": minted.json()["refresh"]}).status == 401


def test_ten_parallel_refreshes_that_all_read_stale_still_rotate_once(api, signed_in, stale_reads, outbox):
    # Given one token sent by ten tabs at once, every eventual read returning the session as before any of them
    stale_reads.keep(signed_in["refresh"])
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: api.post("/token/refresh", {"refresh": signed_in["refresh"]}), range(10)))
    # Then every tab gets 200 and the same new refresh token: one rotation won, the other nine got its pair
    assert [a.status for a in answers] == [200] * 10
    assert len({a.json()["refresh"] for a in answers}) == 1
    newest = answers[0].json()["refresh"]
    item = _session_of(newest)
    assert newest != signed_in["refresh"] and int(item.generation) == 1 and not item.revoked
    # counted once, the nine others recorded as reuse within the interval, no replay, nobody told
    assert int(item.unaudited) == 1
    assert sorted(_refresh_outcomes(newest)) == ["reused_within_interval"] * 9
    assert _ended_notices(outbox) == []
    # and the session carries on: every access token works, its token refreshes
    assert all(api.get("/profile", token=a.json()["access"]).status == 200 for a in answers)
    assert api.post("/token/refresh", {"refresh": newest}).status == 200
    assert audit_verify.verify().problems == []


def test_a_summary_put_back_after_a_stale_read_is_still_recorded_when_it_is_due(api, signed_in, stale_reads, monkeypatch):
    # Given a session kept active for 59 minutes, whose rotation from a new address then could not be
    # audited (the client got 503; the session counts its three rotations again, since its login)
    from carekey import audit, errors

    login_at = int(_session_of(signed_in["refresh"]).audited_at)
    latest = signed_in["refresh"]
    for minutes in (25, 50):
        monkeypatch.setattr(store, "now", lambda m=minutes: login_at + m * 60)
        latest = api.post("/token/refresh", {"refresh": latest}).json()["refresh"]
    monkeypatch.setattr(store, "now", lambda: login_at + 59 * 60)
    real_record, real_restore = audit.record, store.restore_unaudited

    def refused_once(event, outcome, *args, **kwargs):
        if event == "refresh" and outcome == "success":
            monkeypatch.setattr(audit, "record", real_record)
            raise errors.AuditUnavailable()
        return real_record(event, outcome, *args, **kwargs)

    def restore_after_a_snapshot(session_id, rotations, audited_at):
        stale_reads.keep(latest)  # and eventual reads still return the session as that rotation left it
        real_restore(session_id, rotations, audited_at)

    monkeypatch.setattr(audit, "record", refused_once)
    monkeypatch.setattr(store, "restore_unaudited", restore_after_a_snapshot)
    assert api.post("/token/refresh", {"refresh": latest}, ip="203.0.113.5").status == 503
    retry = api.post("/token/refresh", {"refresh": latest}, ip="203.0.113.5").json()
    # When it refreshes from there past the hour since its login (a summary is due; the stale read says it is not)
    monkeypatch.setattr(store, "now", lambda: login_at + 61 * 60)
    assert api.post("/token/refresh", {"refresh": retry["refresh"]}, ip="203.0.113.5").status == 200
    # Then the strong read decided: one summary of all four rotations since the login, the count starts again
    [summary] = [r for r in audit_verify.trail_of(_user_id(latest)) if r["event"] == "refresh" and r["outcome"] == "success"]
    assert summary["detail"]["why"] == "interval" and summary["detail"]["rotations"] == "4"
    assert int(_session_of(latest).unaudited) == 0

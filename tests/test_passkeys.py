"""Passkeys: adding one, signing in with one, listing and removing them, and the
attacks on each (replays, races, clones, strangers, bad input)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from carekey import audit, store
from carekey.config import Settings
from cryptography.hazmat.primitives.asymmetric import ec

from tests.authenticator import Authenticator, b64url
from tests.client import PASSWORD, ApiClient

EMAIL = "pat@example.com"


def _signed_in(api: ApiClient, email: str = EMAIL) -> dict:
    api.verified_user(email)
    return api.login(email)


def _add_passkey(api: ApiClient, token: str, key: Authenticator | None = None, name: str = "Laptop"):
    key = key or Authenticator()
    options = api.post("/webauthn/register/options", {"password": PASSWORD}, token=token)
    assert options.status == 200, options.body
    response = api.post("/webauthn/register/verify", {"credential": key.create(options.json()), "name": name}, token=token)
    return key, response


def _login_options(api: ApiClient, email: str | None = None) -> dict:
    r = api.post("/webauthn/login/options", {"email": email} if email else {})
    assert r.status == 200, r.body
    return r.json()


def _events(user_id: str) -> list[tuple[str, str]]:
    return [(r["event"], r["outcome"]) for r in audit.trail_of(user_id)]


# ---- adding a passkey ------------------------------------------------------------------


def test_adding_a_passkey_stores_it_emails_the_owner_and_audits(api, outbox):
    # Given a signed-in user
    tokens = _signed_in(api)
    # When they add a passkey with their password
    key, added = _add_passkey(api, tokens["access"])
    # Then it is stored and listed, the owner is told, and the trail records it
    assert added.status == 201, added.body
    assert added.json()["credential"]["id"] == key.id and added.json()["credential"]["name"] == "Laptop"
    listed = api.get("/webauthn/credentials", token=tokens["access"]).json()["credentials"]
    assert [c["id"] for c in listed] == [key.id] and listed[0]["transports"] == ["internal"]
    assert outbox.to(EMAIL)[-1]["subject"].startswith("A passkey was added")
    assert ("passkey.register", "success") in _events(tokens["user"]["id"])
    assert store.user_by_email(EMAIL).passkey_count == 1


def test_creation_options_ask_for_a_discoverable_verified_passkey_and_exclude_existing_ones(api):
    tokens = _signed_in(api)
    key, _ = _add_passkey(api, tokens["access"])
    options = api.post("/webauthn/register/options", {"password": PASSWORD}, token=tokens["access"]).json()
    assert options["rp"] == {"id": "localhost", "name": "CareKey"}
    assert options["user"]["name"] == EMAIL
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["timeout"] == 300_000
    assert [c["id"] for c in options["excludeCredentials"]] == [key.id]
    assert {p["alg"] for p in options["pubKeyCredParams"]} == {-7, -8, -257}


def test_adding_a_passkey_needs_the_current_password(api):
    tokens = _signed_in(api)
    r = api.post("/webauthn/register/options", {"password": "not-my-password-at-all"}, token=tokens["access"])
    assert r.status == 400 and r.json() == {"password": ["The current password is incorrect."]}
    assert api.post("/webauthn/register/options", {}, token=tokens["access"]).status == 400
    assert ("passkey.register", "failure") in _events(tokens["user"]["id"])


def test_passkey_routes_need_a_token(api):
    for method, path in (("POST", "/webauthn/register/options"), ("POST", "/webauthn/register/verify"),
                         ("GET", "/webauthn/credentials"), ("DELETE", "/webauthn/credentials/abc")):
        assert api.request(method, path, {"password": PASSWORD}).status == 401, path


def test_a_registration_challenge_works_once_and_only_for_its_user(api):
    # Given two users, one asking to add a passkey
    mine = _signed_in(api)
    theirs = _signed_in(api, "other@example.com")
    options = api.post("/webauthn/register/options", {"password": PASSWORD}, token=mine["access"]).json()
    credential = Authenticator().create(options)
    # When the other user presents the answer to it, it is refused and used up
    assert api.post("/webauthn/register/verify", {"credential": credential}, token=theirs["access"]).status == 400
    assert api.post("/webauthn/register/verify", {"credential": credential}, token=mine["access"]).status == 400
    assert api.get("/webauthn/credentials", token=mine["access"]).json()["credentials"] == []


def test_ten_parallel_registrations_with_one_challenge_store_one_passkey(api):
    tokens = _signed_in(api)
    options = api.post("/webauthn/register/options", {"password": PASSWORD}, token=tokens["access"]).json()
    credential = Authenticator().create(options)
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda _: api.post("/webauthn/register/verify", {"credential": credential}, token=tokens["access"]).status,
                                 range(10)))
    assert sorted(statuses) == [201] + [400] * 9
    assert len(api.get("/webauthn/credentials", token=tokens["access"]).json()["credentials"]) == 1


def test_a_registration_from_another_origin_or_rp_or_without_user_verification_is_refused(api):
    tokens = _signed_in(api)
    for kwargs in ({"origin": "https://evil.example"}, {"rp_id": "evil.example"}, {"uv": False}):
        options = api.post("/webauthn/register/options", {"password": PASSWORD}, token=tokens["access"]).json()
        r = api.post("/webauthn/register/verify", {"credential": Authenticator().create(options, **kwargs)}, token=tokens["access"])
        assert r.status == 400 and r.json()["error"] == "Invalid passkey", kwargs
    assert api.get("/webauthn/credentials", token=tokens["access"]).json()["credentials"] == []


def test_an_expired_registration_challenge_is_refused(api, monkeypatch):
    tokens = _signed_in(api)
    options = api.post("/webauthn/register/options", {"password": PASSWORD}, token=tokens["access"]).json()
    credential = Authenticator().create(options)
    later = time.time() + 301
    monkeypatch.setattr(store, "now", lambda: int(later))
    r = api.post("/webauthn/register/verify", {"credential": credential}, token=tokens["access"])
    assert r.status == 400 and "expired" in r.json()["message"]


def test_the_same_passkey_twice_and_more_than_the_cap_are_refused(api, settings_override):
    settings_override(WEBAUTHN_MAX_PASSKEYS="2")
    tokens = _signed_in(api)
    key, first = _add_passkey(api, tokens["access"])
    assert first.status == 201
    _, again = _add_passkey(api, tokens["access"], key)
    assert again.status == 400 and "already" in again.json()["message"]
    assert _add_passkey(api, tokens["access"])[1].status == 201
    refused = api.post("/webauthn/register/options", {"password": PASSWORD}, token=tokens["access"])
    assert refused.status == 400 and "at most 2" in refused.json()["message"]
    assert store.user_by_email(EMAIL).passkey_count == 2


@pytest.mark.parametrize(
    "body",
    [
        {"credential": "not an object"},
        {"credential": {}},
        {"credential": {"id": "x", "response": {"clientDataJSON": "!!!"}}},
        {"credential": {"id": "x", "response": {"clientDataJSON": "eyJjaGFsbGVuZ2UiOiAxfQ"}}},
        {"credential": {"id": 1, "rawId": [], "type": None, "response": {"clientDataJSON": 5}}},
        {"credential": {"response": []}},
        {},
        [],
    ],
)
def test_malformed_credentials_get_a_400_never_a_500(api, body):
    tokens = _signed_in(api)
    for path, token in (("/webauthn/register/verify", tokens["access"]), ("/webauthn/login/verify", None)):
        r = api.post(path, body, token=token)
        assert r.status == 400, (path, r.body)
        assert isinstance(r.json(), dict)


def test_deeply_nested_client_data_gets_a_400(api):
    # JSON nested past Python's recursion limit, inside the base64 of clientDataJSON
    deep = b64url(b"[" * 5000 + b"]" * 5000)
    r = api.post("/webauthn/login/verify", {"credential": {"id": "x", "response": {"clientDataJSON": deep}}})
    assert r.status == 400 and r.json()["error"] == "Invalid passkey"


def test_a_huge_credential_gets_413(api):
    r = api.post("/webauthn/login/verify", {"credential": {"id": "a" * 20000}})
    assert r.status == 413


# ---- signing in with a passkey -----------------------------------------------------------


def test_passwordless_sign_in_with_a_passkey_gives_working_tokens(api):
    # Given a user with a passkey
    tokens = _signed_in(api)
    key, _ = _add_passkey(api, tokens["access"])
    # When they sign in with it and no email or password
    r = api.post("/webauthn/login/verify", {"credential": key.get(_login_options(api))})
    # Then they get tokens that work, and the trail says how they signed in
    assert r.status == 200, r.body
    body = r.json()
    assert body["user"]["email"] == EMAIL and body["message"] == "Login successful"
    assert api.get("/profile", token=body["access"]).json()["email"] == EMAIL
    assert api.post("/token/refresh", {"refresh": body["refresh"]}).status == 200
    record = [r for r in audit.trail_of(tokens["user"]["id"]) if r["event"] == "login"][-1]
    assert record["outcome"] == "success" and record["detail"] == {"method": "passkey"}
    listed = api.get("/webauthn/credentials", token=body["access"]).json()["credentials"]
    assert listed[0]["last_used_at"] is not None
    assert r.headers["Cache-Control"] == "no-store"


def test_login_options_are_alike_for_known_and_unknown_emails(api):
    tokens = _signed_in(api)
    _add_passkey(api, tokens["access"])
    known, unknown, none = _login_options(api, EMAIL), _login_options(api, "nobody@example.com"), _login_options(api)
    for options in (known, unknown, none):
        options.pop("challenge")
    assert known == unknown == none
    assert known["userVerification"] == "required" and known["rpId"] == "localhost"
    assert known.get("allowCredentials", []) == []


def test_an_assertion_works_once(api):
    tokens = _signed_in(api)
    key, _ = _add_passkey(api, tokens["access"])
    assertion = key.get(_login_options(api))
    assert api.post("/webauthn/login/verify", {"credential": assertion}).status == 200
    again = api.post("/webauthn/login/verify", {"credential": assertion})
    assert again.status == 401 and again.json()["error"] == "Invalid credentials"


def test_ten_parallel_sign_ins_with_one_assertion_make_one_session(api):
    tokens = _signed_in(api)
    key, _ = _add_passkey(api, tokens["access"])
    assertion = key.get(_login_options(api))
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda _: api.post("/webauthn/login/verify", {"credential": assertion}).status, range(10)))
    assert sorted(statuses) == [200] + [401] * 9


def test_a_sign_counter_that_goes_back_is_refused_and_audited(api):
    # Given a passkey that has signed in with counter 5
    tokens = _signed_in(api)
    key, _ = _add_passkey(api, tokens["access"])
    assert api.post("/webauthn/login/verify", {"credential": key.get(_login_options(api), sign_count=5)}).status == 200
    # When a clone of it signs with counter 3 (or 5 again)
    for count in (3, 5):
        r = api.post("/webauthn/login/verify", {"credential": key.get(_login_options(api), sign_count=count)})
        # Then it is refused, and the trail records the regression
        assert r.status == 401
    regressions = [r for r in audit.trail_of(tokens["user"]["id"]) if r["outcome"] == "sign_count_regression"]
    assert len(regressions) == 2 and regressions[0]["detail"]["stored"] == "5" and regressions[0]["detail"]["received"] == "3"
    # And the genuine authenticator, moving on, still works
    assert api.post("/webauthn/login/verify", {"credential": key.get(_login_options(api), sign_count=6)}).status == 200


def test_authenticators_without_a_counter_keep_working(api):
    tokens = _signed_in(api)
    key, _ = _add_passkey(api, tokens["access"])
    for _ in range(2):
        assert api.post("/webauthn/login/verify", {"credential": key.get(_login_options(api), sign_count=0)}).status == 200


@pytest.mark.parametrize(
    "tamper",
    [
        {"origin": "https://evil.example"},
        {"rp_id": "evil.example"},
        {"uv": False},
        {"signer": "other key"},
    ],
)
def test_assertions_from_elsewhere_unverified_or_badly_signed_are_refused(api, tamper):
    tokens = _signed_in(api)
    key, _ = _add_passkey(api, tokens["access"])
    if tamper.get("signer"):
        tamper = {"signer": ec.generate_private_key(ec.SECP256R1())}
    r = api.post("/webauthn/login/verify", {"credential": key.get(_login_options(api), **tamper)})
    assert r.status == 401 and r.json()["error"] == "Invalid credentials"
    assert ("passkey.login", "invalid_response") in _events(tokens["user"]["id"])


def test_an_unknown_passkey_and_an_expired_challenge_are_refused(api, monkeypatch):
    _signed_in(api)
    stranger = Authenticator()
    stranger.user_handle = b"not-a-user"
    assert api.post("/webauthn/login/verify", {"credential": stranger.get(_login_options(api))}).status == 401

    tokens = api.login(EMAIL)
    key, _ = _add_passkey(api, tokens["access"])
    assertion = key.get(_login_options(api))
    later = time.time() + 301
    monkeypatch.setattr(store, "now", lambda: int(later))
    assert api.post("/webauthn/login/verify", {"credential": assertion}).status == 401


def test_an_email_bound_challenge_only_signs_in_that_emails_account(api):
    tokens = _signed_in(api)
    key, _ = _add_passkey(api, tokens["access"])
    _signed_in(api, "other@example.com")
    assert api.post("/webauthn/login/verify", {"credential": key.get(_login_options(api, "other@example.com"))}).status == 401
    assert api.post("/webauthn/login/verify", {"credential": key.get(_login_options(api, EMAIL))}).status == 200


def test_challenges_do_not_cross_ceremonies(api):
    tokens = _signed_in(api)
    key, _ = _add_passkey(api, tokens["access"])
    # A registration challenge cannot be answered with an assertion, nor a login challenge with a new credential.
    reg_options = api.post("/webauthn/register/options", {"password": PASSWORD}, token=tokens["access"]).json()
    assert api.post("/webauthn/login/verify", {"credential": key.get(reg_options)}).status == 401
    login_options = _login_options(api)
    login_options["user"] = {"id": "eA", "name": "x", "displayName": "x"}
    r = api.post("/webauthn/register/verify", {"credential": Authenticator().create(login_options)}, token=tokens["access"])
    assert r.status == 400


def test_a_deactivated_account_cannot_sign_in_with_its_passkey(api):
    tokens = _signed_in(api)
    key, _ = _add_passkey(api, tokens["access"])
    user = store.user_by_email(EMAIL)
    user.update(actions=[store.UserItem.is_active.set(False)])
    assert api.post("/webauthn/login/verify", {"credential": key.get(_login_options(api))}).status == 401


# ---- listing and removing ------------------------------------------------------------------


def test_removing_a_passkey_ends_its_use_emails_the_owner_and_audits(api, outbox):
    tokens = _signed_in(api)
    key, _ = _add_passkey(api, tokens["access"])
    r = api.request("DELETE", f"/webauthn/credentials/{key.id}", token=tokens["access"])
    assert r.status == 200 and r.json() == {"message": "Passkey removed.", "success": True}
    assert api.get("/webauthn/credentials", token=tokens["access"]).json()["credentials"] == []
    assert outbox.to(EMAIL)[-1]["subject"].startswith("A passkey was removed")
    assert ("passkey.remove", "success") in _events(tokens["user"]["id"])
    assert api.post("/webauthn/login/verify", {"credential": key.get(_login_options(api))}).status == 401
    assert api.request("DELETE", f"/webauthn/credentials/{key.id}", token=tokens["access"]).status == 404
    assert store.user_by_email(EMAIL).passkey_count == 0


def test_nobody_can_list_or_remove_someone_elses_passkey(api):
    mine = _signed_in(api)
    key, _ = _add_passkey(api, mine["access"])
    theirs = _signed_in(api, "other@example.com")
    assert api.get("/webauthn/credentials", token=theirs["access"]).json()["credentials"] == []
    assert api.request("DELETE", f"/webauthn/credentials/{key.id}", token=theirs["access"]).status == 404
    assert len(api.get("/webauthn/credentials", token=mine["access"]).json()["credentials"]) == 1


# ---- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rp_id", "origins"),
    [("example.com", "https://evil.com"), ("example.com", "http://login.example.com"), ("localhost", "localhost:3000"),
     ("example.com", "https://example.com/path")],
)
def test_origins_outside_the_rp_id_fail_at_cold_start(rp_id, origins):
    with pytest.raises(ValueError, match="WEBAUTHN_ORIGINS"):
        Settings.model_validate({"WEBAUTHN_RP_ID": rp_id, "WEBAUTHN_ORIGINS": origins})


def test_origins_within_the_rp_id_are_accepted():
    cfg = Settings.model_validate({"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": "https://login.example.com, https://example.com/"})
    assert cfg.allowed_origins == ["https://login.example.com", "https://example.com"]

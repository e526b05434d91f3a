"""Two-step sign-in: authenticator apps (TOTP), recovery codes, the second step
of a login, the policy that can require it, and the attacks on each (replayed
codes and tokens, races, token swaps, lockout, bad input)."""

from __future__ import annotations

import base64
import re
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from carekey import audit, mfa, store
from carekey.aws import client

from tests.authenticator import Authenticator
from tests.client import PASSWORD, ApiClient

EMAIL = "mira@example.com"


class Clock:
    """The time carekey.mfa checks codes against; tests step it 30 s at a time."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def next_step(self) -> None:
        self.offset += mfa.STEP_SECONDS


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(mfa, "_now", c.now)
    return c


def _code(secret: str, clock: Clock, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock.now() + steps * mfa.STEP_SECONDS)


def _signed_in(api: ApiClient, email: str = EMAIL) -> dict:
    api.verified_user(email)
    return api.login(email)


def _setup(api: ApiClient, access: str) -> dict:
    r = api.post("/mfa/totp/setup", {"password": PASSWORD}, token=access)
    assert r.status == 200, r.body
    return r.json()


def _enrolled(api: ApiClient, clock: Clock, email: str = EMAIL) -> tuple[dict, str, list[str]]:
    """A signed-in user with TOTP on: (tokens, secret, recovery codes). The clock moves past the step used."""
    tokens = _signed_in(api, email)
    secret = _setup(api, tokens["access"])["secret"]
    r = api.post("/mfa/totp/confirm", {"code": _code(secret, clock)}, token=tokens["access"])
    assert r.status == 200, r.body
    clock.next_step()
    return tokens, secret, r.json()["recovery_codes"]


def _challenge(api: ApiClient, email: str = EMAIL, **kw) -> dict:
    r = api.post("/login", {"email": email, "password": PASSWORD}, **kw)
    assert r.status == 200, r.body
    assert r.json()["mfa_required"] is True, r.body
    return r.json()


def _events(user_id: str) -> list[tuple[str, str]]:
    return [(r["event"], r["outcome"]) for r in audit.trail_of(user_id)]


# ---- setting up an authenticator app --------------------------------------------------


def test_setup_answers_a_secret_its_uri_and_a_qr_code_and_keeps_it_encrypted(api):
    # Given a signed-in user
    tokens = _signed_in(api)
    # When they start setting up an authenticator app
    answer = _setup(api, tokens["access"])
    # Then they get a base32 secret of 160 bits, an otpauth URI with issuer and account, and an SVG QR code
    secret = answer["secret"]
    assert len(base64.b32decode(secret)) == 20
    uri = urlsplit(answer["otpauth_uri"])
    assert uri.scheme == "otpauth" and uri.netloc == "totp" and "mira%40example.com" in uri.path and uri.path.startswith("/CareKey")
    query = parse_qs(uri.query)
    assert query["secret"] == [secret] and query["issuer"] == ["CareKey"]
    assert answer["qr_svg"].lstrip().startswith("<svg") and answer["qr_svg"].rstrip().endswith("</svg>")
    assert "http" not in answer["qr_svg"].replace("http://www.w3.org/2000/svg", "")  # nothing fetched from anywhere
    # And the account stores only a KMS ciphertext of it, bound to this user (another user's context does not decrypt)
    user = store.user_by_email(EMAIL)
    assert secret not in (user.totp_pending or "") and not user.totp_enabled
    assert mfa.unseal(user.totp_pending, user.user_id) == secret
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        client("kms").decrypt(CiphertextBlob=base64.b64decode(user.totp_pending), EncryptionContext={"purpose": "totp-secret", "user_id": "someone"})


def test_setup_again_replaces_the_pending_secret(api, clock):
    # Given a user who started setup twice
    tokens = _signed_in(api)
    first = _setup(api, tokens["access"])["secret"]
    second = _setup(api, tokens["access"])["secret"]
    assert first != second
    # When they confirm with a code of the first secret, then of the second
    stale = api.post("/mfa/totp/confirm", {"code": _code(first, clock)}, token=tokens["access"])
    fresh = api.post("/mfa/totp/confirm", {"code": _code(second, clock)}, token=tokens["access"])
    # Then only the newest secret counts
    assert stale.status == 400 and stale.json()["error"] == "Invalid or expired code"
    assert fresh.status == 200 and fresh.json()["enabled"] is True


def test_setup_refuses_a_wrong_password_no_token_and_an_account_with_totp_on(api, clock):
    tokens = _signed_in(api)
    # Given a wrong password: 400 on the field
    wrong = api.post("/mfa/totp/setup", {"password": "not-my-password-1"}, token=tokens["access"])
    assert wrong.status == 400 and "password" in wrong.json()
    # Given no token at all: 401
    assert api.post("/mfa/totp/setup", {"password": PASSWORD}).status == 401
    assert api.post("/mfa/totp/confirm", {"code": "123456"}).status == 401
    # Given TOTP already on: 400
    secret = _setup(api, tokens["access"])["secret"]
    assert api.post("/mfa/totp/confirm", {"code": _code(secret, clock)}, token=tokens["access"]).status == 200
    again = api.post("/mfa/totp/setup", {"password": PASSWORD}, token=tokens["access"])
    assert again.status == 400 and "already on" in again.json()["message"]


def test_confirm_turns_it_on_with_ten_strong_single_use_recovery_codes(api, clock, outbox):
    # Given a user with a pending secret
    tokens = _signed_in(api)
    secret = _setup(api, tokens["access"])["secret"]
    # When a wrong code is sent, then the right one
    wrong = api.post("/mfa/totp/confirm", {"code": "000000" if _code(secret, clock) != "000000" else "111111"}, token=tokens["access"])
    right = api.post("/mfa/totp/confirm", {"code": _code(secret, clock)}, token=tokens["access"])
    # Then the wrong one is "Invalid or expired code", the right one turns TOTP on with 10 recovery codes
    assert wrong.status == 400 and wrong.json()["error"] == "Invalid or expired code"
    assert right.status == 200, right.body
    body = right.json()
    assert body["enabled"] is True and set(body) == {"enabled", "recovery_codes"}
    codes = body["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    for code in codes:
        assert re.fullmatch(r"[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}", code)  # 12 x 5 bits = 60 bits
    # And only keyed hashes are stored, the owner is told and the trail records it
    user = store.user_by_email(EMAIL)
    assert user.totp_enabled and user.totp_pending is None and len(user.recovery_codes) == 10
    assert not any(c in h or c.replace("-", "") in h for c in codes for h in user.recovery_codes)
    assert outbox.to(EMAIL)[-1]["subject"].startswith("Two-step sign-in is on")
    assert ("mfa.enable", "success") in _events(user.user_id)


def test_status_tells_whether_it_is_on_and_never_the_secret(api, clock):
    tokens = _signed_in(api)
    assert api.get("/mfa", token=tokens["access"]).json() == {"totp_enabled": False, "recovery_codes_left": 0, "policy": "optional"}
    secret = _setup(api, tokens["access"])["secret"]
    api.post("/mfa/totp/confirm", {"code": _code(secret, clock)}, token=tokens["access"])
    r = api.get("/mfa", token=tokens["access"])
    assert r.status == 200 and r.json() == {"totp_enabled": True, "recovery_codes_left": 10, "policy": "optional"}
    assert secret.encode() not in r.body
    assert api.get("/mfa").status == 401


def test_ten_parallel_confirmations_with_one_code_turn_it_on_once(api, clock):
    # Given a user with a pending secret
    tokens = _signed_in(api)
    secret = _setup(api, tokens["access"])["secret"]
    code = _code(secret, clock)
    # When ten confirmations with the same code race
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: api.post("/mfa/totp/confirm", {"code": code}, token=tokens["access"]), range(10)))
    # Then exactly one wins, and the stored recovery codes are the ones it answered
    winners = [a for a in answers if a.status == 200]
    assert len(winners) == 1 and sorted(a.status for a in answers) == [200] + [400] * 9
    user = store.user_by_email(EMAIL)
    assert user.recovery_codes == {mfa.recovery_hash(user.user_id, c) for c in winners[0].json()["recovery_codes"]}


# ---- the second step of a login ------------------------------------------------------


def test_login_with_totp_on_asks_for_the_second_step_and_gives_no_tokens(api, clock):
    _enrolled(api, clock)
    # When the user logs in with the right password
    r = api.post("/login", {"email": EMAIL, "password": PASSWORD})
    # Then the answer is the challenge, with no token in it
    assert r.status == 200
    body = r.json()
    assert body["mfa_required"] is True and body["methods"] == ["totp", "recovery_code"]
    assert set(body) == {"mfa_required", "mfa_token", "methods", "message"}
    assert "access" not in body and "refresh" not in body


def test_a_code_signs_in_once_and_an_older_step_never(api, clock, settings_override):
    settings_override(LOGIN_LOCKOUT_THRESHOLD="50")
    _, secret, _ = _enrolled(api, clock)
    # Given a login's challenge
    first = _challenge(api)
    code = _code(secret, clock)
    # When the second step is sent with the current code
    r = api.post("/login/mfa", {"mfa_token": first["mfa_token"], "code": code})
    # Then it answers like /login
    assert r.status == 200, r.body
    assert set(r.json()) == {"user", "access", "refresh", "message"} and r.json()["user"]["email"] == EMAIL
    assert api.get("/profile", token=r.json()["access"]).status == 200
    # And the same code on a new login, or the previous step's code, is refused
    again = api.post("/login/mfa", {"mfa_token": _challenge(api)["mfa_token"], "code": code})
    assert again.status == 401 and again.json()["error"] == "Invalid code"
    older = api.post("/login/mfa", {"mfa_token": _challenge(api)["mfa_token"], "code": _code(secret, clock, -1)})
    assert older.status == 401
    # And the next step's code still works (one step of drift)
    assert api.post("/login/mfa", {"mfa_token": _challenge(api)["mfa_token"], "code": _code(secret, clock, 1)}).status == 200


def test_an_mfa_token_works_once(api, clock):
    _, secret, _ = _enrolled(api, clock)
    token = _challenge(api)["mfa_token"]
    assert api.post("/login/mfa", {"mfa_token": token, "code": _code(secret, clock)}).status == 200
    clock.next_step()
    # When the used token is replayed with a fresh, valid code
    replay = api.post("/login/mfa", {"mfa_token": token, "code": _code(secret, clock)})
    # Then it is refused
    assert replay.status == 401 and replay.json()["error"] == "Invalid code"


def test_an_mfa_token_dies_after_five_wrong_codes(api, clock, settings_override):
    settings_override(LOGIN_LOCKOUT_THRESHOLD="50")
    _, secret, _ = _enrolled(api, clock)
    token = _challenge(api)["mfa_token"]
    right = _code(secret, clock)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    # When five wrong codes are tried, then the right one (the sixth try)
    refusals = [api.post("/login/mfa", {"mfa_token": token, "code": wrong}).status for _ in range(5)]
    sixth = api.post("/login/mfa", {"mfa_token": token, "code": right})
    # Then every one is refused: the token is dead
    assert refusals == [401] * 5 and sixth.status == 401
    # While a new login with the same code works
    assert api.post("/login/mfa", {"mfa_token": _challenge(api)["mfa_token"], "code": right}).status == 200


def test_an_mfa_token_expires_after_five_minutes(api, clock, monkeypatch):
    _, secret, _ = _enrolled(api, clock)
    token = _challenge(api)["mfa_token"]
    real = store.now
    monkeypatch.setattr(store, "now", lambda: real() + 301)
    assert api.post("/login/mfa", {"mfa_token": token, "code": _code(secret, clock)}).status == 401


def test_a_password_change_kills_a_pending_mfa_token(api, clock):
    tokens, secret, _ = _enrolled(api, clock)
    token = _challenge(api)["mfa_token"]
    changed = api.post(
        "/change-password",
        {"current_password": PASSWORD, "new_password": "a-new-long-passphrase", "confirm_password": "a-new-long-passphrase", "code": _code(secret, clock)},
        token=tokens["access"],
    )
    assert changed.status == 200, changed.body
    clock.next_step()
    assert api.post("/login/mfa", {"mfa_token": token, "code": _code(secret, clock)}).status == 401


def test_the_mfa_token_is_no_bearer_token_and_an_access_token_is_no_mfa_token(api, clock):
    tokens, secret, _ = _enrolled(api, clock)
    token = _challenge(api)["mfa_token"]
    # When the mfa_token is used as a bearer token, on the gateway's authorizer and on routes that check it themselves
    for method, path, body in (("GET", "/profile", None), ("GET", "/mfa", None), ("POST", "/mfa/totp/setup", {"password": PASSWORD})):
        r = api.request(method, path, body, token=token)
        # Then it is refused
        assert r.status == 401, (path, r.body)
    from carekey.flows.sessions import authorize

    assert authorize(f"Bearer {token}", "arn:aws:execute-api:us-east-1:1:api/dev/GET/profile")["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    # When an access token, a refresh token or garbage is sent as the mfa_token
    for fake in (tokens["access"], tokens["refresh"], "mfa_" + "A" * 43, token + "x"):
        r = api.post("/login/mfa", {"mfa_token": fake, "code": _code(secret, clock)})
        # Then it is refused
        assert r.status == 401 and r.json()["error"] == "Invalid code"
    # And the real token still works
    assert api.post("/login/mfa", {"mfa_token": token, "code": _code(secret, clock)}).status == 200


def test_ten_parallel_logins_with_one_code_sign_in_once(api, clock, settings_override):
    settings_override(LOGIN_LOCKOUT_THRESHOLD="50")
    _, secret, _ = _enrolled(api, clock)
    # Given ten logins, each waiting for its second step
    challenges = [_challenge(api)["mfa_token"] for _ in range(10)]
    code = _code(secret, clock)
    # When all ten send the same code at once
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda t: api.post("/login/mfa", {"mfa_token": t, "code": code}), challenges))
    # Then exactly one signs in
    assert sorted(a.status for a in answers) == [200] + [401] * 9


def test_ten_parallel_uses_of_one_token_and_code_sign_in_once(api, clock, settings_override):
    settings_override(LOGIN_LOCKOUT_THRESHOLD="50")
    _, secret, recovery = _enrolled(api, clock)
    token = _challenge(api)["mfa_token"]
    code = _code(secret, clock)
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: api.post("/login/mfa", {"mfa_token": token, "code": code}), range(10)))
    assert sorted(a.status for a in answers) == [200] + [401] * 9
    # And ten parallel logins with one recovery code: one wins, the code is gone
    challenges = [_challenge(api)["mfa_token"] for _ in range(10)]
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda t: api.post("/login/mfa", {"mfa_token": t, "code": recovery[0]}), challenges))
    assert sorted(a.status for a in answers) == [200] + [401] * 9
    assert len(store.user_by_email(EMAIL).recovery_codes) == 9


def test_a_recovery_code_signs_in_once_and_tells_the_owner(api, clock, outbox):
    tokens, _, recovery = _enrolled(api, clock)
    # When a recovery code is used (typed with spaces and capitals)
    typed = recovery[3].upper().replace("-", " ")
    r = api.post("/login/mfa", {"mfa_token": _challenge(api)["mfa_token"], "code": typed})
    # Then it signs in, the owner is emailed, the trail records it and nine are left
    assert r.status == 200, r.body
    assert outbox.to(EMAIL)[-1]["subject"].startswith("A recovery code of your")
    assert "9 left" in outbox.to(EMAIL)[-1]["text"]
    assert ("mfa.recovery_code", "used") in _events(tokens["user"]["id"])
    assert api.get("/mfa", token=r.json()["access"]).json()["recovery_codes_left"] == 9
    # And the same code a second time is refused
    assert api.post("/login/mfa", {"mfa_token": _challenge(api)["mfa_token"], "code": recovery[3]}).status == 401


def test_another_accounts_recovery_code_does_not_work(api, clock, settings_override):
    settings_override(LOGIN_LOCKOUT_THRESHOLD="50")
    _enrolled(api, clock)
    _, _, theirs = _enrolled(api, clock, "other@example.com")
    assert api.post("/login/mfa", {"mfa_token": _challenge(api)["mfa_token"], "code": theirs[0]}).status == 401


def test_second_step_failures_count_toward_the_account_lockout(api, clock):
    # Given the default lockout (from the 5th failed attempt)
    _, secret, _ = _enrolled(api, clock)
    token = _challenge(api)["mfa_token"]  # attempt 1: the password was right, the login not done
    wrong = f"{(int(_code(secret, clock)) + 1) % 1_000_000:06d}"
    # When four wrong codes follow
    for _ in range(4):
        assert api.post("/login/mfa", {"mfa_token": token, "code": wrong}).status == 401
    # Then the account is locked: even the right password gets the 401 of a wrong one, and a right code too
    locked = api.post("/login", {"email": EMAIL, "password": PASSWORD})
    assert locked.status == 401 and locked.json()["error"] == "Invalid credentials"
    assert api.post("/login/mfa", {"mfa_token": token, "code": _code(secret, clock)}).status == 401
    assert ("login.mfa", "locked_out") in _events(store.user_by_email(EMAIL).user_id)


def test_a_two_step_sign_in_counts_no_failure_in_the_hourly_cap_and_wrong_codes_do(api, clock, settings_override):
    # Given an hourly cap of three failures and an account with TOTP on
    settings_override(LOGIN_FAILURES_PER_HOUR="3", LOGIN_LOCKOUT_THRESHOLD="50")
    _, secret, _ = _enrolled(api, clock)
    # When its owner signs in with both steps three times
    for _ in range(3):
        r = api.post("/login/mfa", {"mfa_token": _challenge(api)["mfa_token"], "code": _code(secret, clock)})
        assert r.status == 200, r.body
        clock.next_step()
    # Then none of the six admitted steps is left counted: a fourth sign-in is not refused by the cap
    token = _challenge(api)["mfa_token"]
    # But three wrong codes fill it: the right code, and then the right password, get the answer of a wrong one
    wrong = f"{(int(_code(secret, clock)) + 1) % 1_000_000:06d}"
    for _ in range(3):
        assert api.post("/login/mfa", {"mfa_token": token, "code": wrong}).status == 401
    assert api.post("/login/mfa", {"mfa_token": token, "code": _code(secret, clock)}).status == 401
    assert api.post("/login", {"email": EMAIL, "password": PASSWORD}).status == 401


def test_second_step_failures_count_toward_the_per_ip_limit(api, clock, settings_override):
    settings_override(IP_FAILURES_PER_HOUR="3", LOGIN_LOCKOUT_THRESHOLD="50")
    _, secret, _ = _enrolled(api, clock)
    token = _challenge(api, ip="203.0.113.9")["mfa_token"]
    for _ in range(3):
        assert api.post("/login/mfa", {"mfa_token": token, "code": "000000"}, ip="203.0.113.9").status == 401
    limited = api.post("/login/mfa", {"mfa_token": token, "code": _code(secret, clock)}, ip="203.0.113.9")
    assert limited.status == 429 and "Retry-After" in limited.headers


# ---- turning it off, new recovery codes, password change and reset -----------------


def test_disable_needs_the_password_and_a_code_then_tells_the_owner(api, clock, outbox):
    tokens, secret, _ = _enrolled(api, clock)
    access = tokens["access"]
    # Given a wrong password, or a wrong code, or no code
    assert api.post("/mfa/totp/disable", {"password": "wrong-password-77", "code": _code(secret, clock)}, token=access).status == 400
    bad = api.post("/mfa/totp/disable", {"password": PASSWORD, "code": "000000"}, token=access)
    assert bad.status == 400 and bad.json()["error"] == "Invalid or expired code"
    assert api.post("/mfa/totp/disable", {"password": PASSWORD}, token=access).status == 400
    assert api.post("/mfa/totp/disable", {"password": PASSWORD, "code": "000000"}).status == 401
    # When both are right
    r = api.post("/mfa/totp/disable", {"password": PASSWORD, "code": _code(secret, clock)}, token=access)
    # Then it is off, the owner is told, the trail records it, and login gives tokens again
    assert r.status == 200 and r.json() == {"enabled": False}
    assert outbox.to(EMAIL)[-1]["subject"].startswith("Two-step sign-in was turned off")
    assert ("mfa.disable", "success") in _events(tokens["user"]["id"])
    assert "access" in api.login(EMAIL)
    user = store.user_by_email(EMAIL)
    assert user.totp_secret is None and not user.recovery_codes


def test_new_recovery_codes_replace_the_old_ones(api, clock, outbox, settings_override):
    settings_override(LOGIN_LOCKOUT_THRESHOLD="50")
    tokens, secret, old = _enrolled(api, clock)
    # When new codes are made (with the password and a recovery code)
    r = api.post("/mfa/recovery-codes", {"password": PASSWORD, "code": old[0]}, token=tokens["access"])
    # Then ten new codes come back, the old ones die, the new ones work; the owner is told, the trail records it
    assert r.status == 200, r.body
    new = r.json()["recovery_codes"]
    assert len(set(new)) == 10 and not set(new) & set(old)
    assert api.post("/login/mfa", {"mfa_token": _challenge(api)["mfa_token"], "code": old[1]}).status == 401
    assert api.post("/login/mfa", {"mfa_token": _challenge(api)["mfa_token"], "code": new[0]}).status == 200
    assert any(m["subject"].startswith("New recovery codes") for m in outbox.to(EMAIL))
    assert any(m["subject"].startswith("A recovery code of your") for m in outbox.to(EMAIL))  # old[0] was used
    assert ("mfa.recovery_codes", "replaced") in _events(tokens["user"]["id"])
    assert ("mfa.recovery_code", "used") in _events(tokens["user"]["id"])
    # And a wrong code makes none
    assert api.post("/mfa/recovery-codes", {"password": PASSWORD, "code": "000000"}, token=tokens["access"]).status == 400


def test_change_password_needs_a_code_when_totp_is_on(api, clock):
    tokens, secret, _ = _enrolled(api, clock)
    body = {"current_password": PASSWORD, "new_password": "a-new-long-passphrase", "confirm_password": "a-new-long-passphrase"}
    missing = api.post("/change-password", body, token=tokens["access"])
    assert missing.status == 400 and "code" in missing.json()
    wrong = api.post("/change-password", {**body, "code": "000000"}, token=tokens["access"])
    assert wrong.status == 400 and "code" in wrong.json()
    assert store.user_by_email(EMAIL).token_version == 0
    right = api.post("/change-password", {**body, "code": _code(secret, clock)}, token=tokens["access"])
    assert right.status == 200 and right.json()["success"] is True


def test_a_password_reset_leaves_totp_on(api, clock, settings_override):
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    _enrolled(api, clock)
    # When the user resets their password by email
    assert api.post("/forgot-password", {"email": EMAIL}).status == 200
    code = api.latest_code(EMAIL)
    new = "a-fresh-and-long-passphrase"
    assert api.post("/reset-password", {"email": EMAIL, "otp": code, "new_password": new, "confirm_password": new}).status == 200
    # Then the next login still asks for the second factor
    r = api.post("/login", {"email": EMAIL, "password": new})
    assert r.status == 200 and r.json()["mfa_required"] is True
    assert store.user_by_email(EMAIL).totp_enabled


# ---- MFA_POLICY=required ---------------------------------------------------------------


def test_required_policy_makes_a_login_enrol_first_with_a_token_good_for_nothing_else(api, clock, settings_override):
    api.verified_user(EMAIL)
    settings_override(MFA_POLICY="required")
    # When a user without a second factor logs in
    r = api.post("/login", {"email": EMAIL, "password": PASSWORD})
    # Then they get an enrolment token and no session
    assert r.status == 200 and set(r.json()) == {"mfa_enrollment_required", "mfa_token", "message"}
    token = r.json()["mfa_token"]
    # And the token is no bearer token and no login second step
    assert api.get("/profile", token=token).status == 401
    assert api.post("/login/mfa", {"mfa_token": token, "code": "123456"}).status == 401
    # When they set up an app with it (no password needed: the login proved it) and confirm
    setup = api.post("/mfa/totp/setup", {"mfa_token": token})
    assert setup.status == 200, setup.body
    done = api.post("/mfa/totp/confirm", {"mfa_token": token, "code": _code(setup.json()["secret"], clock)})
    # Then TOTP is on and the session starts
    assert done.status == 200, done.body
    body = done.json()
    assert body["enabled"] is True and len(body["recovery_codes"]) == 10 and body["user"]["email"] == EMAIL
    assert api.get("/profile", token=body["access"]).status == 200
    # And the token is used up (refused like any bad token: the documented 401 of these routes)
    used = api.post("/mfa/totp/setup", {"mfa_token": token})
    assert used.status == 401 and used.json()["code"] == "token_not_valid"
    # And under the policy TOTP cannot be turned off
    clock.next_step()
    off = api.post("/mfa/totp/disable", {"password": PASSWORD, "code": _code(setup.json()["secret"], clock)}, token=body["access"])
    assert off.status == 400
    # And the next login asks for the second step
    assert api.post("/login", {"email": EMAIL, "password": PASSWORD}).json()["mfa_required"] is True


def test_a_login_token_cannot_enrol(api, clock, settings_override):
    _enrolled(api, clock)
    token = _challenge(api)["mfa_token"]
    assert api.post("/mfa/totp/setup", {"mfa_token": token}).status == 401
    assert api.post("/mfa/totp/confirm", {"mfa_token": token, "code": "123456"}).status == 401


# ---- a passkey as the second step --------------------------------------------------


def _add_passkey(api: ApiClient, access: str) -> Authenticator:
    key = Authenticator()
    options = api.post("/webauthn/register/options", {"password": PASSWORD}, token=access)
    assert api.post("/webauthn/register/verify", {"credential": key.create(options.json())}, token=access).status == 201
    return key


def test_a_passkey_can_be_the_second_step(api, clock):
    tokens, _, _ = _enrolled(api, clock)
    key = _add_passkey(api, tokens["access"])
    # When the user logs in with their password
    challenge = _challenge(api)
    # Then webauthn is offered, and the passkey (asked for with the mfa_token) finishes the login
    assert challenge["methods"] == ["totp", "recovery_code", "webauthn"]
    options = api.post("/webauthn/login/options", {"mfa_token": challenge["mfa_token"]})
    assert options.status == 200 and [c["id"] for c in options.json()["allowCredentials"]] == [key.id]
    r = api.post("/webauthn/login/verify", {"credential": key.get(options.json()), "mfa_token": challenge["mfa_token"]})
    assert r.status == 200, r.body
    assert api.get("/profile", token=r.json()["access"]).status == 200
    # And the token is used up
    options = api.post("/webauthn/login/options", {"mfa_token": challenge["mfa_token"]})
    assert options.status == 401


def test_another_accounts_passkey_cannot_be_the_second_step(api, clock, settings_override):
    settings_override(LOGIN_LOCKOUT_THRESHOLD="50")
    tokens, _, _ = _enrolled(api, clock)
    _add_passkey(api, tokens["access"])
    other = _signed_in(api, "other@example.com")
    theirs = _add_passkey(api, other["access"])
    token = _challenge(api)["mfa_token"]
    # A challenge bound to this login, answered by the other account's passkey
    options = api.post("/webauthn/login/options", {"mfa_token": token}).json()
    assert api.post("/webauthn/login/verify", {"credential": theirs.get(options), "mfa_token": token}).status == 401
    # A challenge not bound to this login (passwordless options) with the mfa_token
    loose = api.post("/webauthn/login/options", {}).json()
    assert api.post("/webauthn/login/verify", {"credential": theirs.get(loose), "mfa_token": token}).status == 401


# ---- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/login/mfa", "/mfa/totp/setup", "/mfa/totp/confirm", "/mfa/totp/disable", "/mfa/recovery-codes"],
)
def test_malformed_and_huge_bodies_get_4xx(api, clock, path):
    tokens, _, _ = _enrolled(api, clock)
    for raw in (b"{", b"[]", b'{"code": 123456, "mfa_token": 5}', b'{"code": "\\u0000", "password": "x"}', b"\xff\xfe"):
        r = api.post(path, raw=raw, token=tokens["access"])
        assert 400 <= r.status < 500, (path, raw, r.status, r.body)
    huge = api.post(path, raw=b'{"code": "' + b"1" * 20000 + b'"}', token=tokens["access"])
    assert huge.status == 413
    long_code = api.post(path, {"code": "1" * 65, "mfa_token": "m" * 4097, "password": PASSWORD}, token=tokens["access"])
    assert long_code.status == 400


def test_other_methods_get_405(api):
    assert api.get("/login/mfa").status == 405
    assert api.put("/mfa", {}).status == 405
    assert api.get("/mfa/totp/setup").status == 405


def test_logs_hold_no_secret_code_or_token(api, clock, capsys, service_logs):
    tokens, secret, recovery = _enrolled(api, clock)
    challenge = _challenge(api)
    api.post("/login/mfa", {"mfa_token": challenge["mfa_token"], "code": "000000"})
    api.post("/login/mfa", {"mfa_token": challenge["mfa_token"], "code": recovery[0]})
    api.post("/mfa/totp/setup", {"password": PASSWORD}, token=tokens["access"])
    captured = capsys.readouterr()
    logs = captured.out + captured.err + service_logs.getvalue()
    assert "request refused" in logs  # the capture really holds the service's logs
    for value in (secret, recovery[0], challenge["mfa_token"]):
        assert value not in logs


def test_the_self_documenting_root_describes_two_step_sign_in(api):
    # When a client reads GET /
    doc = api.get("/").json()
    # Then every route, the flow and the policy are there
    for name in ("login_mfa", "mfa_status", "mfa_totp_setup", "mfa_totp_confirm", "mfa_totp_disable", "mfa_recovery_codes"):
        assert name in doc["endpoints"], name
    assert any("/login/mfa" in step for step in doc["authentication_flows"]["two_step_sign_in_flow"])
    assert doc["specifications"]["two_step_sign_in"]["policy"] == "optional"


# ---- other sensitive changes need the second factor too --------------------------------


def test_deleting_your_account_needs_a_code_when_totp_is_on_and_the_code_serves_once(api, clock):
    # Given a signed-in user with an authenticator app
    tokens, secret, _ = _enrolled(api, clock)
    # When they delete their account with the password alone, or a wrong code
    missing = api.request("DELETE", "/profile", {"password": PASSWORD}, token=tokens["access"])
    wrong = api.request("DELETE", "/profile", {"password": PASSWORD, "code": "000000"}, token=tokens["access"])
    # Then both are refused on `code` and the account stays
    assert missing.status == 400 and "code" in missing.json(), missing.body
    assert wrong.status == 400 and "code" in wrong.json(), wrong.body
    assert store.user_by_email(EMAIL) is not None
    # And with a right code it is erased
    right = api.request("DELETE", "/profile", {"password": PASSWORD, "code": _code(secret, clock)}, token=tokens["access"])
    assert right.status == 200, right.body
    assert store.user_by_email(EMAIL) is None


def test_changing_your_email_needs_a_code_when_totp_is_on_and_a_code_is_not_taken_twice(api, clock, outbox, settings_override):
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    tokens, secret, recovery = _enrolled(api, clock)
    body = {"password": PASSWORD, "new_email": "mira.new@example.com"}
    # When the change is asked for without a code
    missing = api.post("/change-email", body, token=tokens["access"])
    assert missing.status == 400 and "code" in missing.json(), missing.body
    # Then nothing goes to the new address
    assert outbox.to("mira.new@example.com") == []
    # And with a code it starts, once: the same code again is refused
    code = _code(secret, clock)
    assert api.post("/change-email", {**body, "code": code}, token=tokens["access"]).status == 200
    again = api.post("/change-email", {**body, "code": code}, token=tokens["access"])
    assert again.status == 400 and "code" in again.json(), again.body
    # And a recovery code serves once as well, and its owner hears of its use
    assert api.post("/change-email", {**body, "code": recovery[0]}, token=tokens["access"]).status == 200
    assert api.post("/change-email", {**body, "code": recovery[0]}, token=tokens["access"]).status == 400
    assert len(store.user_by_email(EMAIL).recovery_codes) == 9


def test_ten_parallel_deletions_with_one_code_erase_once_and_never_fail_open(api, clock):
    tokens, secret, _ = _enrolled(api, clock)
    code = _code(secret, clock)
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: api.request("DELETE", "/profile", {"password": PASSWORD, "code": code}, token=tokens["access"]), range(10)))
    assert sorted(r.status for r in answers).count(200) == 1, [(r.status, r.body) for r in answers]
    assert all(r.status in (200, 400, 401) for r in answers)
    assert store.user_by_email(EMAIL) is None


# ---- an operator's deactivation ends every way in --------------------------------------


def test_a_deactivated_account_gets_no_tokens_from_any_second_step_refresh_or_email_change(api, clock, outbox, settings_override, gateway):
    from tests.test_admin import Operator

    operator = Operator(gateway)
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    # Given a user with TOTP and a passkey, a second step waiting, and an email change waiting for its code
    tokens, secret, recovery = _enrolled(api, clock)
    key = _add_passkey(api, tokens["access"])
    challenge = _challenge(api)
    options = api.post("/webauthn/login/options", {"mfa_token": challenge["mfa_token"]}).json()
    code = _code(secret, clock)
    assert api.post("/change-email", {"password": PASSWORD, "new_email": "mira.new@example.com", "code": code}, token=tokens["access"]).status == 200
    change_code = api.latest_code("mira.new@example.com")
    clock.next_step()
    # When an operator deactivates the account
    assert operator.post(f"/admin/users/{tokens['user']['id']}/disable").status == 200
    # Then no route hands out tokens: not the second step with a code, a recovery code or the passkey
    assert api.post("/login/mfa", {"mfa_token": challenge["mfa_token"], "code": _code(secret, clock)}).status == 401
    assert api.post("/login/mfa", {"mfa_token": challenge["mfa_token"], "code": recovery[0]}).status == 401
    assert api.post("/webauthn/login/verify", {"credential": key.get(options), "mfa_token": challenge["mfa_token"]}).status == 401
    # nor the passkey alone, a refresh, or the email change's code
    loose = api.post("/webauthn/login/options", {}).json()
    assert api.post("/webauthn/login/verify", {"credential": key.get(loose)}).status == 401
    assert api.post("/token/refresh", {"refresh": tokens["refresh"]}).status == 401
    assert api.post("/change-email/verify", {"otp": change_code}, token=tokens["access"]).status == 401
    # and the account kept its address and its unused recovery code
    user = store.user_by_id(tokens["user"]["id"])
    assert user.email == EMAIL and len(user.recovery_codes) == 10


def test_ten_parallel_enrolment_confirmations_with_one_token_and_code_start_one_session(api, clock, settings_override):
    api.verified_user(EMAIL)
    settings_override(MFA_POLICY="required", MFA_MAX_ATTEMPTS="10")
    token = api.post("/login", {"email": EMAIL, "password": PASSWORD}).json()["mfa_token"]
    secret = api.post("/mfa/totp/setup", {"mfa_token": token}).json()["secret"]
    code = _code(secret, clock)
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: api.post("/mfa/totp/confirm", {"mfa_token": token, "code": code}), range(10)))
    assert [r.status for r in answers].count(200) == 1, [(r.status, r.body) for r in answers]
    assert all(r.status in (200, 400, 401) for r in answers)
    assert len(store.sessions_of(store.user_by_email(EMAIL).user_id)) == 1

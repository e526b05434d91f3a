"""POST /change-email and POST /change-email/verify: moving an account to a
new address with a code sent there."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from carekey import audit, otp, store
from pynamodb.connection.base import Connection

from local.gateway import Gateway
from tests.client import PASSWORD, ApiClient
from tests.conftest import STACK

OLD, NEW = "pat@example.com", "pat.new@example.com"


@pytest.fixture
def pat(api):
    api.verified_user(OLD)
    return api.login(OLD)


def _ask(api: ApiClient, access: str, new_email: str = NEW, password: str = PASSWORD, **extra):
    return api.post("/change-email", {"password": password, "new_email": new_email, **extra}, token=access)


def _verify(api: ApiClient, access: str, code: str):
    return api.post("/change-email/verify", {"otp": code}, token=access)


def _events(user_id: str) -> list[tuple[str, str]]:
    return [(r["event"], r["outcome"]) for r in audit.trail_of(user_id)]


def test_the_code_sent_to_the_new_address_moves_the_account_there(api, outbox, pat):
    # Given a signed-in user and a second session of theirs
    other = api.login(OLD)
    # When they ask to change their email (written loosely) and enter the code sent to the new address
    r = _ask(api, pat["access"], new_email="  Pat.New@Example.COM ")
    assert r.status == 200, r.body
    assert r.json() == {
        "message": "If this address can be used, a code has been sent to it. Enter it to finish the change.",
        "otp_sent": True,
        "otp_expires_in": 10,
    }
    code = api.latest_code(NEW)
    done = _verify(api, pat["access"], code)
    # Then the account has the new email, canonicalised as register does
    assert done.status == 200, done.body
    body = done.json()
    assert body["email"] == NEW and body["success"] is True
    user = store.user_by_id(pat["user"]["id"])
    assert user.email == NEW
    assert store.user_by_email(NEW).user_id == user.user_id and store.user_by_email(OLD) is None
    # and this session goes on with the new tokens, while the old pair of this session and the other session are dead
    assert api.get("/me", token=body["access"]).json()["email"] == NEW
    assert api.post("/token/refresh", {"refresh": body["refresh"]}).status == 200
    assert api.get("/me", token=other["access"]).status == 401
    assert api.post("/token/refresh", {"refresh": other["refresh"]}).status == 401
    assert api.post("/token/refresh", {"refresh": pat["refresh"]}).status == 401
    # and the old address is told, without the new one spelled out
    [notice] = [m for m in outbox.to(OLD) if "email" in m["subject"] and "changed" in m["subject"]]
    assert NEW not in notice["text"] and "p***@e***.com" in notice["text"]
    # and sign-in works with the new address only
    assert api.post("/login", {"email": NEW, "password": PASSWORD}).status == 200
    assert api.post("/login", {"email": OLD, "password": PASSWORD}).status == 401
    # and it is audited, with hashes only
    events = _events(user.user_id)
    assert ("email_change.requested", "sent") in events and ("email_change", "success") in events
    record = [r for r in audit.trail_of(user.user_id) if r["event"] == "email_change"][-1]
    assert NEW not in str(record) and OLD not in str(record)
    assert record["email_hash"] == otp.email_key(NEW)


def test_the_code_is_single_use(api, pat):
    assert _ask(api, pat["access"]).status == 200
    code = api.latest_code(NEW)
    first = _verify(api, pat["access"], code)
    second = _verify(api, first.json()["access"], code)
    assert first.status == 200 and second.status == 400
    assert second.json()["error"] == "Invalid or expired OTP"


def test_a_reset_code_sent_to_the_old_address_no_longer_acts_on_the_moved_account(api, outbox, pat):
    # Given a password reset code sent to the old address (whose mailbox someone else may read)
    assert api.post("/forgot-password", {"email": OLD}).status == 200
    old_code = api.latest_code(OLD)
    # When the owner moves the account to a new address
    assert _ask(api, pat["access"]).status == 200
    moved = _verify(api, pat["access"], api.latest_code(NEW))
    assert moved.status == 200, moved.body
    # Then the old address's code neither checks out nor sets the moved account's password
    new_password = "someone-elses-choice-91"
    assert api.post("/verify-password-reset-otp", {"email": OLD, "otp": old_code}).status == 400
    reset = api.post("/reset-password", {"email": OLD, "otp": old_code, "new_password": new_password, "confirm_password": new_password})
    assert reset.status == 400, reset.body
    assert api.post("/login", {"email": NEW, "password": new_password}).status == 401
    assert api.post("/login", {"email": NEW, "password": PASSWORD}).status == 200
    assert api.get("/me", token=moved.json()["access"]).status == 200


def test_the_old_address_can_then_register_as_a_new_person(api, pat):
    # Given the account moved away from the old address
    assert _ask(api, pat["access"]).status == 200
    assert _verify(api, pat["access"], api.latest_code(NEW)).status == 200
    # When someone registers the old address and verifies it
    api.verified_user(OLD, password="another-lantern-77")
    # Then it is a different account, and both sign in
    newcomer = api.login(OLD, password="another-lantern-77")
    assert newcomer["user"]["id"] != pat["user"]["id"]
    assert api.login(NEW)["user"]["id"] == pat["user"]["id"]


def test_a_taken_address_gets_the_same_answer_and_its_owner_a_notice_not_a_code(api, outbox, pat):
    # Given another account on the address asked for
    api.verified_user("sam@example.com")
    outbox.clear()
    free = _ask(api, pat["access"], new_email="free@example.com")
    taken = _ask(api, pat["access"], new_email="sam@example.com")
    # Then both answers are the same
    assert (free.status, free.json()) == (taken.status, taken.json())
    # and the owner of the taken address gets a notice without any code, and the account is unchanged
    [notice] = outbox.to("sam@example.com")
    assert "tried to move" in notice["subject"]
    import re

    assert not re.search(r"\b\d{6}\b", notice["text"])
    assert store.user_by_id(pat["user"]["id"]).email == OLD
    assert store.user_by_email("sam@example.com").email == "sam@example.com"


@pytest.fixture
def aws_calls(monkeypatch):
    """Every AWS call made, as (service, operation, table or queue)."""
    seen: list[tuple[str, ...]] = []
    real = Connection.dispatch

    def dispatch(self, operation_name, operation_kwargs):
        seen.append(("dynamodb", operation_name, operation_kwargs.get("TableName", "")))
        return real(self, operation_name, operation_kwargs)

    monkeypatch.setattr(Connection, "dispatch", dispatch)

    def before_parameter_build(params, model, **_):
        if model.service_model.service_name != "dynamodb":
            seen.append((model.service_model.service_name, model.name, params.get("QueueUrl", "")))

    boto3.DEFAULT_SESSION.events.register("before-parameter-build", before_parameter_build)
    yield seen
    boto3.DEFAULT_SESSION.events.unregister("before-parameter-build", before_parameter_build)


def test_taken_and_free_addresses_get_identical_answers_after_identical_aws_work(api, outbox, aws_calls, settings_override):
    # Given a user, another account, and nobody consuming the email queue (what happens before the answer)
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    api.verified_user(OLD)
    api.verified_user("sam@example.com")
    tokens = api.login(OLD)
    undrained = ApiClient(Gateway(STACK), outbox)
    _ask(undrained, tokens["access"], new_email="warm-up@example.com")
    work = {}
    # When the user asks for a taken and a free address, interleaved
    for address in ("sam@example.com", "free@example.com") * 3:
        aws_calls.clear()
        r = _ask(undrained, tokens["access"], new_email=address)
        work.setdefault(address, []).append((r.status, r.body, tuple(aws_calls)))
    # Then every request made the same AWS calls in the same order and got the same answer
    assert len({w for runs in work.values() for w in runs}) == 1, work
    [(status, _, calls)] = {w for runs in work.values() for w in runs}
    assert status == 200
    assert any(service == "sqs" and op == "SendMessage" for service, op, _ in calls)
    assert not any(service == "sesv2" for service, *_ in calls)


def test_five_wrong_codes_kill_the_code(api, pat):
    # Given a code sent to the new address
    assert _ask(api, pat["access"]).status == 200
    code = api.latest_code(NEW)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    # When five wrong codes are tried
    statuses = [_verify(api, pat["access"], wrong).status for _ in range(5)]
    # Then each is refused, and now even the right code is
    assert statuses == [400] * 5
    assert _verify(api, pat["access"], code).status == 400
    assert store.user_by_id(pat["user"]["id"]).email == OLD


def test_ten_parallel_right_codes_switch_the_email_exactly_once(api, outbox, pat, monkeypatch, settings_override):
    # Given a code, and a budget that lets all ten tries reach the switch
    settings_override(OTP_MAX_ATTEMPTS="20")
    assert _ask(api, pat["access"]).status == 200
    code = api.latest_code(NEW)
    barrier = threading.Barrier(10, timeout=30)
    reserve = store.reserve_otp_try

    def reserve_then_wait(key: str):
        record = reserve(key)
        barrier.wait()
        return record

    monkeypatch.setattr(store, "reserve_otp_try", reserve_then_wait)
    # When ten requests with the right code all spend their try before any switches
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: _verify(api, pat["access"], code), range(10)))
    # Then exactly one switches; the others get a clean 400
    assert sorted(a.status for a in answers) == [200] + [400] * 9
    user = store.user_by_id(pat["user"]["id"])
    assert user.email == NEW and int(user.token_version) == 1
    claims = [c for c in store.EmailClaim.scan() if c.pk.startswith("EMAIL#")]
    assert sorted(c.pk for c in claims) == [f"EMAIL#{NEW}"]
    assert len([m for m in outbox.to(OLD) if "was changed" in m["subject"]]) == 1


def test_the_new_addresss_daily_ceiling_of_wrong_guesses_holds_across_fresh_codes(api, pat, settings_override):
    # Given a ceiling of 12 wrong guesses a day, and a signed-in user who keeps asking for codes to an address
    settings_override(OTP_FAILURES_PER_DAY="12", OTP_RESEND_COOLDOWN_SECONDS="0", OTP_SENDS_PER_HOUR="100")
    statuses = []
    for _ in range(3):
        assert _ask(api, pat["access"]).status == 200
        code = api.latest_code(NEW)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        statuses += [_verify(api, pat["access"], wrong).status for _ in range(5)]
    assert statuses == [400] * 15
    # When a fresh code comes, and even the right one is tried
    assert _ask(api, pat["access"]).status == 200
    refused = _verify(api, pat["access"], api.latest_code(NEW))
    # Then the address has no guesses left today, as for its other codes: the account stays where it is
    assert refused.status == 400 and refused.json()["error"] == "Invalid or expired OTP"
    assert store.user_by_id(pat["user"]["id"]).email == OLD


def test_an_address_claimed_meanwhile_fails_cleanly(api, pat):
    # Given a code for a free address
    assert _ask(api, pat["access"]).status == 200
    code = api.latest_code(NEW)
    # When someone else's account claims the address before the code is entered
    api.verified_user(NEW, password="another-lantern-77")
    r = _verify(api, pat["access"], code)
    # Then nothing changes, with a generic answer
    assert r.status == 400
    assert r.json() == {"error": "Email not changed", "message": "The email could not be changed. Ask for a new code and try again."}
    assert store.user_by_id(pat["user"]["id"]).email == OLD
    assert store.user_by_email(OLD).user_id == pat["user"]["id"]
    assert store.user_by_email(NEW).user_id != pat["user"]["id"]
    assert api.get("/me", token=pat["access"]).status == 200


def test_a_wrong_password_is_a_field_error_and_sends_nothing(api, outbox, pat):
    outbox.clear()
    r = _ask(api, pat["access"], password="not-my-password-1")
    assert r.status == 400 and r.json() == {"password": ["The current password is incorrect."]}
    assert outbox.to(NEW) == []
    assert ("email_change", "failure") in _events(pat["user"]["id"])


def test_the_current_address_and_malformed_addresses_are_field_errors(api, pat):
    assert _ask(api, pat["access"], new_email=" PAT@example.com").json() == {"new_email": ["This is already your email."]}
    for bad in ("not-an-email", "a@b", "x" * 300 + "@example.com", "pat\n@example.com"):
        r = _ask(api, pat["access"], new_email=bad)
        assert r.status == 400 and "new_email" in r.json(), (bad, r.body)


def test_a_code_for_one_account_cannot_move_another(api, outbox, pat):
    # Given Sam signed in, and Pat's code
    api.verified_user("sam@example.com")
    sam = api.login("sam@example.com")
    assert _ask(api, pat["access"]).status == 200
    code = api.latest_code(NEW)
    # When Sam enters Pat's code
    r = _verify(api, sam["access"], code)
    # Then it is refused and nobody moves
    assert r.status == 400
    assert store.user_by_email(NEW) is None


def test_an_expired_code_is_refused(api, pat, monkeypatch):
    assert _ask(api, pat["access"]).status == 200
    code = api.latest_code(NEW)
    later = store.now() + 11 * 60
    monkeypatch.setattr(store, "now", lambda: later)
    assert _verify(api, pat["access"], code).status == 400


def test_a_later_request_replaces_the_earlier_code(api, pat, settings_override):
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    assert _ask(api, pat["access"]).status == 200
    first = api.latest_code(NEW)
    assert _ask(api, pat["access"], new_email="elsewhere@example.com").status == 200
    assert _verify(api, pat["access"], first).status == 400
    assert _verify(api, pat["access"], api.latest_code("elsewhere@example.com")).status == 200
    assert store.user_by_id(pat["user"]["id"]).email == "elsewhere@example.com"


@pytest.mark.parametrize("path", ["/change-email", "/change-email/verify"])
def test_huge_malformed_and_unauthenticated_requests_are_4xx(api, pat, path):
    access = pat["access"]
    assert api.post(path, raw=b"x" * 20000, token=access).status == 413
    for raw in (b"{", b"[]", b"null", b'{"otp": 123456, "password": 1, "new_email": []}', b"\xff\xfe"):
        r = api.post(path, raw=raw, token=access)
        assert 400 <= r.status < 500, (raw, r.status)
    assert api.post(path, {"otp": "123456", "password": PASSWORD, "new_email": NEW}).status == 401
    assert api.post(path, {"otp": "123456", "password": PASSWORD, "new_email": NEW}, token=pat["refresh"]).status == 401
    forged = access[:-4] + ("AAAA" if not access.endswith("AAAA") else "BBBB")
    assert api.post(path, {"otp": "123456", "password": PASSWORD, "new_email": NEW}, token=forged).status == 401
    assert api.get(path, token=access).status == 405


def test_nothing_secret_reaches_a_log_line(api, pat, capsys):
    assert _ask(api, pat["access"]).status == 200
    code = api.latest_code(NEW)
    assert _verify(api, pat["access"], code).status == 200
    logs = capsys.readouterr()
    for secret in (code, PASSWORD, pat["refresh"], NEW):
        assert secret not in logs.out and secret not in logs.err

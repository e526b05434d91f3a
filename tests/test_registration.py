"""Register, verify the email, resend the code."""

from __future__ import annotations

import boto3
from carekey import otp, store

from tests.client import PASSWORD


def test_register_keeps_a_pending_sign_up_and_emails_a_code(api, outbox):
    # When
    r = api.register("  New.Person@Example.COM ", phone_number="+15551234567")
    # Then
    assert r.status == 201
    body = r.json()
    assert set(body) >= {"user", "otp_sent", "otp_expires_in"}
    assert body["otp_sent"] is True and body["otp_expires_in"] == 10
    user = body["user"]
    assert set(user) == {"id", "email", "first_name", "last_name", "phone_number", "isVerified", "date_joined"}
    assert user["email"] == "new.person@example.com" and user["isVerified"] is False
    assert user["phone_number"] == "+15551234567"
    [mail] = outbox.to("new.person@example.com")
    assert mail["text"] and mail["html"] and "expires in 10 minutes" in mail["text"]
    assert store.user_by_email("new.person@example.com") is None  # no account until the code comes back
    pending = store.pending_signup(otp.email_key("new.person@example.com"))
    assert pending is not None and pending.signup_id == user["id"]
    assert PASSWORD not in pending.password_hash


def test_the_code_turns_the_sign_up_into_a_verified_account(api):
    # Given a sign-up
    signup = api.register("made@example.com", phone_number="+15551234567").json()["user"]
    # When its code comes back
    assert api.post("/verify-otp", {"email": "made@example.com", "otp": api.latest_code("made@example.com")}).status == 200
    # Then the account is the sign-up's, and the sign-up is gone
    user = store.user_by_email("made@example.com")
    assert user.is_verified and user.user_id == signup["id"] and user.first_name == "Ada" and user.phone_number == "+15551234567"
    assert store.pending_signup(otp.email_key("made@example.com")) is None
    assert api.login("made@example.com")["user"] == {**signup, "isVerified": True}


def test_register_stores_only_a_keyed_hash_of_the_code(api):
    api.register("hash@example.com")
    code = api.latest_code("hash@example.com")
    items = boto3.client("dynamodb").scan(TableName=store.OtpItem.Meta.table_name)["Items"]
    codes = [i for i in items if "code_hash" in i]
    assert len(codes) == 1
    assert code not in str(items)
    assert len(codes[0]["code_hash"]["S"]) == 64


def test_register_reports_each_invalid_field(api):
    r = api.post("/register", {"email": "not-an-email", "password": "short", "password2": "other"})
    assert r.status == 400
    errors = r.json()
    assert errors["email"] == ["Enter a valid email address."]

    r = api.post("/register", {"email": "ok@example.com", "password": "short", "password2": "other"})
    errors = r.json()
    assert errors["password2"] == ["Password fields didn't match."]
    assert any("too short" in m for m in errors["password"])

    r = api.post("/register", {})
    assert r.status == 400
    assert r.json() == {
        "email": ["This field is required."],
        "password": ["This field is required."],
        "password2": ["This field is required."],
    }


def test_register_refuses_common_numeric_and_personal_passwords_with_reasons(api):
    cases = {
        "password123": "too common",
        "12345678901": "entirely numeric",
        "ada.lovelace.rocks!": "similar to your email",
    }
    for password, reason in cases.items():
        r = api.post(
            "/register",
            {"email": "ada.lovelace@example.com", "first_name": "Ada", "password": password, "password2": password},
        )
        assert r.status == 400, password
        assert any(reason in m for m in r.json()["password"]), (password, r.json())


def test_a_taken_email_gets_the_same_answer_and_the_owner_a_notice(api, outbox, settings_override):
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    first = api.register("owner@example.com")
    api.post("/verify-otp", {"email": "owner@example.com", "otp": api.latest_code("owner@example.com")})
    original = store.user_by_email("owner@example.com")

    second = api.register("Owner@example.com", password="another-long-passphrase", first_name="Mallory")

    assert second.status == first.status == 201
    assert set(second.json()) == set(first.json())
    assert set(second.json()["user"]) == set(first.json()["user"])
    assert second.json()["otp_sent"] is True
    after = store.user_by_email("owner@example.com")
    assert after.password_hash == original.password_hash and after.first_name == "Ada"
    subjects = [m["subject"] for m in outbox.to("owner@example.com")]
    assert subjects[-1].startswith("Someone tried to register")


def test_verify_otp_marks_the_account_verified_and_uses_the_code_up(api):
    api.register("v@example.com")
    code = api.latest_code("v@example.com")

    r = api.post("/verify-otp", {"email": "v@example.com", "otp": code})

    assert r.status == 200
    assert r.json() == {"message": "Email verified successfully", "verified": True}
    assert store.user_by_email("v@example.com").is_verified
    again = api.post("/verify-otp", {"email": "v@example.com", "otp": code})
    assert again.status == 400 and again.json()["error"] == "Invalid or expired OTP"


def test_wrong_expired_unknown_and_already_verified_all_answer_alike(api, monkeypatch):
    api.register("wrong@example.com")
    code = api.latest_code("wrong@example.com")
    wrong = "000000" if code != "000000" else "111111"
    answers = [api.post("/verify-otp", {"email": "wrong@example.com", "otp": wrong})]
    answers.append(api.post("/verify-otp", {"email": "nobody@example.com", "otp": code}))

    api.register("late@example.com")
    late_code = api.latest_code("late@example.com")
    real_now = store.now()
    monkeypatch.setattr(store, "now", lambda: real_now + 10 * 60 + 1)
    answers.append(api.post("/verify-otp", {"email": "late@example.com", "otp": late_code}))
    monkeypatch.undo()
    assert store.user_by_email("late@example.com") is None

    api.post("/verify-otp", {"email": "wrong@example.com", "otp": code})
    answers.append(api.post("/verify-otp", {"email": "wrong@example.com", "otp": code}))

    assert {a.status for a in answers} == {400}
    assert len({a.body for a in answers}) == 1
    assert answers[0].json()["error"] == "Invalid or expired OTP"


def test_a_new_code_replaces_the_old_one(api, settings_override):
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    api.register("re@example.com")
    old = api.latest_code("re@example.com")

    r = api.post("/resend-otp", {"email": "re@example.com", "context": "registration"})
    new = api.latest_code("re@example.com")

    assert r.status == 200 and r.json()["otp_sent"] is True
    if old != new:
        assert api.post("/verify-otp", {"email": "re@example.com", "otp": old}).status == 400
    assert api.post("/verify-otp", {"email": "re@example.com", "otp": new}).status == 200


def test_resend_answers_the_same_for_every_kind_of_email(api, outbox, settings_override):
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    api.register("pending@example.com")
    api.verified_user("done@example.com")
    outbox.clear()

    bodies = {
        email: api.post("/resend-otp", {"email": email, "context": "registration"})
        for email in ("pending@example.com", "done@example.com", "stranger@example.com")
    }

    assert {r.status for r in bodies.values()} == {200}
    assert len({r.body for r in bodies.values()}) == 1
    assert [m["to"] for m in outbox.messages] == ["pending@example.com"]


def test_resend_refuses_an_unknown_context(api):
    r = api.post("/resend-otp", {"email": "x@example.com", "context": "admin"})
    assert r.status == 400 and "context" in r.json()


def test_email_failure_keeps_the_sign_up_and_a_later_resend_works(api, outbox, settings_override):
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    ses = boto3.client("ses")
    ses.delete_identity(Identity="no-reply@example.com")

    r = api.register("unlucky@example.com")

    assert r.status == 201  # the answer does not wait for the email
    assert store.pending_signup(otp.email_key("unlucky@example.com")) is not None

    ses.verify_email_identity(EmailAddress="no-reply@example.com")
    assert api.post("/resend-otp", {"email": "unlucky@example.com"}).status == 200
    code = api.latest_code("unlucky@example.com")
    assert api.post("/verify-otp", {"email": "unlucky@example.com", "otp": code}).status == 200


def test_a_reset_code_cannot_verify_an_email(api, settings_override):
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    api.verified_user("bound@example.com")
    api.post("/forgot-password", {"email": "bound@example.com"})
    reset_code = api.latest_code("bound@example.com")
    api.register("other@example.com")

    assert api.post("/verify-otp", {"email": "bound@example.com", "otp": reset_code}).status == 400
    assert api.post("/verify-otp", {"email": "other@example.com", "otp": reset_code}).status == 400

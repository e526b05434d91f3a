"""Forgot password -> verify the reset code -> reset password; resend the reset code."""

from __future__ import annotations

import pytest
from carekey import store

from tests.client import PASSWORD

NEW = "a-fresh-and-long-passphrase"


@pytest.fixture(autouse=True)
def no_cooldown(settings_override):
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")


def _reset_body(email: str, otp: str, new: str = NEW, confirm: str | None = None) -> dict:
    return {"email": email, "otp": otp, "new_password": new, "confirm_password": confirm or new}


def test_full_reset_sets_the_password_and_uses_the_code_up(api, outbox):
    api.verified_user("rita@example.com")
    session = api.login("rita@example.com")

    r = api.post("/forgot-password", {"email": "rita@example.com"})
    assert r.status == 200
    assert r.json()["otp_sent"] is True and r.json()["otp_expires_in"] == 10 and r.json()["email"] == "rita@example.com"
    code = api.latest_code("rita@example.com")

    check = api.post("/verify-password-reset-otp", {"email": "rita@example.com", "otp": code})
    assert check.status == 200
    assert check.json() == {"message": "OTP verified successfully", "verified": True, "email": "rita@example.com"}

    done = api.post("/reset-password", _reset_body("rita@example.com", code))
    assert done.status == 200
    assert done.json() == {"message": "Password reset successfully", "success": True}

    assert api.post("/reset-password", _reset_body("rita@example.com", code, "yet-another-passphrase")).status == 400
    assert api.post("/login", {"email": "rita@example.com", "password": PASSWORD}).status == 401
    assert api.login("rita@example.com", NEW)
    # every session that existed before the reset is over, access tokens included
    assert api.get("/profile", token=session["access"]).status == 401
    assert api.post("/token/refresh", {"refresh": session["refresh"]}).status == 401
    assert outbox.to("rita@example.com")[-1]["subject"].endswith("password was changed")


def test_forgot_password_answers_the_same_for_every_email(api, outbox):
    api.verified_user("known@example.com")
    api.register("unverified@example.com")
    outbox.clear()
    answers = {
        e: api.post("/forgot-password", {"email": e})
        for e in ("known@example.com", "unverified@example.com", "unknown@example.com")
    }
    assert {a.status for a in answers.values()} == {200}
    assert {tuple(sorted((k, v) for k, v in a.json().items() if k != "email")) for a in answers.values()}.__len__() == 1
    assert [m["to"] for m in outbox.messages] == ["known@example.com"]


def test_resend_password_reset_otp_answers_the_same_and_replaces_the_code(api, outbox):
    api.verified_user("known@example.com")
    api.post("/forgot-password", {"email": "known@example.com"})
    first = api.latest_code("known@example.com")
    known = api.post("/resend-password-reset-otp", {"email": "known@example.com"})
    unknown = api.post("/resend-password-reset-otp", {"email": "unknown@example.com"})
    assert known.status == unknown.status == 200 and known.body == unknown.body
    second = api.latest_code("known@example.com")
    if first != second:
        assert api.post("/verify-password-reset-otp", {"email": "known@example.com", "otp": first}).status == 400
    assert api.post("/verify-password-reset-otp", {"email": "known@example.com", "otp": second}).status == 200


def test_resend_otp_with_password_reset_context_sends_a_reset_code(api, outbox):
    api.verified_user("ctx@example.com")
    r = api.post("/resend-otp", {"email": "ctx@example.com", "context": "password_reset"})
    assert r.status == 200 and r.json()["context"] == "password_reset"
    assert "reset" in outbox.to("ctx@example.com")[-1]["subject"]
    code = api.latest_code("ctx@example.com")
    assert api.post("/reset-password", _reset_body("ctx@example.com", code)).status == 200


def test_wrong_unknown_and_malformed_codes_answer_alike(api):
    api.verified_user("known@example.com")
    api.post("/forgot-password", {"email": "known@example.com"})
    code = api.latest_code("known@example.com")
    wrong = "000000" if code != "000000" else "111111"
    answers = [
        api.post("/verify-password-reset-otp", {"email": "known@example.com", "otp": wrong}),
        api.post("/verify-password-reset-otp", {"email": "unknown@example.com", "otp": wrong}),
        api.post("/verify-password-reset-otp", {"email": "known@example.com", "otp": "12ab"}),
        api.post("/reset-password", _reset_body("unknown@example.com", wrong)),
    ]
    assert {a.status for a in answers} == {400}
    assert len({a.body for a in answers}) == 1


def test_reset_refuses_weak_or_mismatched_passwords_and_keeps_the_code(api):
    api.verified_user("weak@example.com")
    api.post("/forgot-password", {"email": "weak@example.com"})
    code = api.latest_code("weak@example.com")
    mismatch = api.post("/reset-password", _reset_body("weak@example.com", code, NEW, "something-else-entirely"))
    assert mismatch.status == 400 and mismatch.json()["confirm_password"] == ["Password fields didn't match."]
    common = api.post("/reset-password", _reset_body("weak@example.com", code, "iloveyou"))
    assert common.status == 400 and "new_password" in common.json()
    named = api.post("/reset-password", _reset_body("weak@example.com", code, "ByronByronByron"))
    assert named.status == 400 and "new_password" in named.json()
    assert api.post("/reset-password", _reset_body("weak@example.com", code)).status == 200
    assert store.user_by_email("weak@example.com") is not None

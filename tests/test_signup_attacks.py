"""Sign-ups that prove nothing and cannot be squatted; answers that do not
change with the address.  Each test replays an attack on the public API."""

from __future__ import annotations

from carekey import limits, otp, store

from tests.client import PASSWORD, ApiClient

ATTACKER = "mallory-chose-this-42"
VICTIM = "harbour-lantern-meadow-7"


def _without_email(r) -> dict:
    return {k: v for k, v in r.json().items() if k != "email"}


# ---- register, then log in ---------------------------------------------------------------


def test_registering_then_logging_in_answers_alike_for_an_account_and_a_stranger(api):
    # Given one address with an account and one without
    api.verified_user("owner@example.com")
    # When an attacker registers both with a password of their choice and logs in with it
    for email in ("owner@example.com", "stranger@example.com"):
        assert api.register(email, password=ATTACKER).status == 201
    owner = api.post("/login", {"email": "owner@example.com", "password": ATTACKER})
    stranger = api.post("/login", {"email": "stranger@example.com", "password": ATTACKER})
    # Then both answers are the legacy "Email not verified": nothing tells them apart
    assert owner.status == stranger.status == 403
    assert _without_email(owner) == _without_email(stranger)
    assert owner.json()["email"] == "owner@example.com" and stranger.json()["email"] == "stranger@example.com"
    # And the owner's own password still opens the account
    assert api.login("owner@example.com")["user"]["isVerified"] is True


def test_the_registrant_gets_email_not_verified_with_their_own_password_only(api):
    # Given a sign-up waiting for its code
    api.register("waiting@example.com")
    # When its registrant logs in with their password, and someone else with another
    own = api.post("/login", {"email": "waiting@example.com", "password": PASSWORD})
    other = api.post("/login", {"email": "waiting@example.com", "password": "some-other-passphrase"})
    # Then the legacy contract: 403 with can_resend_otp for the right password, 401 otherwise
    assert own.status == 403
    assert own.json() == {
        "error": "Email not verified",
        "message": "Please verify your email address before logging in.",
        "email": "waiting@example.com",
        "can_resend_otp": True,
    }
    assert other.status == 401 and other.json()["error"] == "Invalid credentials"


# ---- squatting -------------------------------------------------------------------------------


def test_a_squatters_sign_up_never_becomes_the_victims_account(api):
    # Given an attacker who signed up first with the victim's address
    api.register("victim@example.com", password=ATTACKER)
    squatters_code = api.latest_code("victim@example.com")  # lands in the victim's mailbox
    # When the victim signs up with their own password, asks for a code and verifies
    assert api.register("victim@example.com", password=VICTIM).status == 201
    api.post("/resend-otp", {"email": "victim@example.com", "context": "registration"})
    assert api.post("/verify-otp", {"email": "victim@example.com", "otp": api.latest_code("victim@example.com")}).status == 200
    # Then the account opens with the victim's password, never the attacker's
    assert api.post("/login", {"email": "victim@example.com", "password": VICTIM}).status == 200
    assert api.post("/login", {"email": "victim@example.com", "password": ATTACKER}).status == 401
    # And the code sent for the squatter's sign-up is dead
    assert api.post("/verify-otp", {"email": "victim@example.com", "otp": squatters_code}).status == 400


def test_the_code_of_a_replaced_sign_up_does_not_verify(api, settings_override):
    # Given a sign-up whose code arrived, then a later sign-up of the address
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    api.register("twice@example.com", password=ATTACKER)
    first_code = api.latest_code("twice@example.com")
    api.register("twice@example.com", password=VICTIM)
    second_code = api.latest_code("twice@example.com")
    # When the first code comes back
    if first_code != second_code:
        assert api.post("/verify-otp", {"email": "twice@example.com", "otp": first_code}).status == 400
    # Then only the later sign-up's code makes the account, with the later password
    assert api.post("/verify-otp", {"email": "twice@example.com", "otp": second_code}).status == 200
    assert api.post("/login", {"email": "twice@example.com", "password": VICTIM}).status == 200


def test_an_unverified_sign_up_expires_after_a_day(api, outbox, monkeypatch):
    # Given a sign-up
    real_now = store.now()
    monkeypatch.setattr(store, "now", lambda: real_now)
    api.register("late@example.com")
    outbox.clear()
    # When a day less a second has passed, it still waits for its code
    monkeypatch.setattr(store, "now", lambda: real_now + 24 * 3600 - 1)
    assert api.post("/login", {"email": "late@example.com", "password": PASSWORD}).status == 403
    # Then after a day it is gone: its password proves nothing, and no code is sent for it
    monkeypatch.setattr(store, "now", lambda: real_now + 24 * 3600 + 1)
    assert api.post("/login", {"email": "late@example.com", "password": PASSWORD}).status == 401
    assert api.post("/resend-otp", {"email": "late@example.com"}).status == 200
    assert outbox.to("late@example.com") == []
    # And a new sign-up of the address works as if it were the first
    api.register("late@example.com", password=VICTIM)
    assert api.post("/verify-otp", {"email": "late@example.com", "otp": api.latest_code("late@example.com")}).status == 200


def test_a_sign_up_of_a_taken_address_can_never_be_verified(api, outbox, settings_override):
    # Given an account, and a sign-up of its address with another password
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    api.verified_user("taken@example.com")
    api.register("taken@example.com", password=ATTACKER)
    # When a code is asked for that sign-up
    outbox.clear()
    api.post("/resend-otp", {"email": "taken@example.com", "context": "registration"})
    # Then none is sent, and the account keeps its password
    assert outbox.to("taken@example.com") == []
    assert api.post("/login", {"email": "taken@example.com", "password": PASSWORD}).status == 200


# ---- cooldowns and caps say nothing -------------------------------------------------------------


def test_the_cooldown_right_after_a_sign_up_answers_like_a_stranger(api):
    # Given an address that has just signed up
    api.register("fresh@example.com")
    # When an observer asks for a code for it and for a stranger
    fresh = api.post("/resend-otp", {"email": "fresh@example.com", "context": "registration"})
    stranger = api.post("/resend-otp", {"email": "stranger@example.com", "context": "registration"})
    # Then the answers are identical: status, headers that matter, body
    assert fresh.status == stranger.status == 200
    assert fresh.body == stranger.body
    assert "Retry-After" not in fresh.headers and "Retry-After" not in stranger.headers


def test_resends_for_a_verified_account_do_not_use_up_its_email_cap(api, outbox, settings_override):
    # Given a verified account (its sign-up code was one email this hour)
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    api.verified_user("owner@example.com")
    # When a stranger asks five times for a verification code for it (nothing is sent)
    for _ in range(5):
        assert api.post("/resend-otp", {"email": "owner@example.com", "context": "registration"}).status == 200
    # Then the owner's own reset request still answers 200 and its code arrives
    assert api.post("/forgot-password", {"email": "owner@example.com"}).status == 200
    assert outbox.to("owner@example.com")[-1]["subject"] == "Your CareKey password reset code"


def test_the_hourly_cap_counts_only_emails_sent(api, outbox, settings_override):
    # Given an address with a sign-up (one email sent) and a five-an-hour cap
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    api.register("capped@example.com")
    # When codes are asked for again and again
    for _ in range(8):
        assert api.post("/resend-otp", {"email": "capped@example.com"}).status == 200
    # Then exactly five emails went out this hour, and the answers never changed
    assert len(outbox.to("capped@example.com")) == 5
    assert store.counter_value(f"sendhour#{otp.email_key('capped@example.com')}", 3600) == 5


def test_a_slot_given_back_restores_the_cooldown_it_replaced(settings_override):
    # Given an address that was just sent a code (its cooldown runs), with 4 of its 5 hourly emails spent
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="60")
    first = limits.take_send_slot("slots@example.com", otp.VERIFY_EMAIL)
    assert first is not None
    for _ in range(3):
        store.count_hit(f"sendhour#{otp.email_key('slots@example.com')}", 3600)
    # When work held back by the cooldown asks, and a new sign-up's code (which
    # skips the cooldown) takes the fifth email but gives it back unsent
    assert limits.take_send_slot("slots@example.com", otp.VERIFY_EMAIL) is None
    skipped = limits.take_send_slot("slots@example.com", otp.VERIFY_EMAIL, cooldown=False)
    assert skipped is not None
    limits.email_not_sent(skipped)
    # Then the cooldown still holds, and the held-back work never touched the cap
    assert limits.take_send_slot("slots@example.com", otp.VERIFY_EMAIL) is None
    assert store.counter_value(f"sendhour#{otp.email_key('slots@example.com')}", 3600) == 4


# ---- per-IP limits: the only 429 of these endpoints ----------------------------------------------


def test_code_requests_are_limited_per_source_ip(gateway, outbox, settings_override):
    # Given a limit of three code requests an hour per source IP
    settings_override(IP_CODE_REQUESTS_PER_HOUR="3")
    attacker = ApiClient(gateway, outbox, ip="203.0.113.90")
    bystander = ApiClient(gateway, outbox, ip="198.51.100.21")
    # When one IP asks across endpoints and addresses
    statuses = [
        attacker.post("/forgot-password", {"email": "a@example.com"}).status,
        attacker.post("/resend-otp", {"email": "b@example.com"}).status,
        attacker.post("/resend-password-reset-otp", {"email": "c@example.com"}).status,
        attacker.post("/forgot-password", {"email": "d@example.com"}).status,
    ]
    # Then the fourth is refused with Retry-After, and other IPs are untouched
    assert statuses == [200, 200, 200, 429]
    refused = attacker.post("/resend-otp", {"email": "e@example.com"})
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert bystander.post("/forgot-password", {"email": "a@example.com"}).status == 200

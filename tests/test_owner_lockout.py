"""Nobody locks the owner out: each test replays what a stranger who knows
only the owner's address can do, and checks the owner still gets in."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from carekey import otp, store

from tests.client import PASSWORD

OWNER = "owner@example.com"
NEW_PASSWORD = "copper-orchard-window-58"
LOCK_SUBJECT = "Sign-in to your CareKey account is paused"


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


@pytest.fixture
def clock(monkeypatch):
    """The service's clock, moved by hand."""
    now = {"t": store.now()}
    monkeypatch.setattr(store, "now", lambda: now["t"])
    return now


def _lock(owner: str = OWNER) -> store.LimitItem | None:
    return store.lock_state(f"login#{otp.email_key(owner)}")


def _stranger_guesses(api, n: int = 1, email: str = OWNER) -> list[int]:
    return [api.post("/login", {"email": email, "password": "stranger-guess-0000"}).status for _ in range(n)]


def _reset(api, email: str = OWNER, password: str = NEW_PASSWORD) -> int:
    assert api.post("/forgot-password", {"email": email}).status == 200
    code = api.latest_code(email)
    return api.post("/reset-password", {"email": email, "otp": code, "new_password": password, "confirm_password": password}).status


def _lock_notices(outbox, email: str = OWNER) -> list[dict]:
    return [m for m in outbox.to(email) if m["subject"] == LOCK_SUBJECT]


# ---- a lock is not extended, and a reset lifts it ---------------------------------------------


def test_attempts_made_while_locked_neither_count_nor_extend_the_lock(api, clock):
    # Given an account a stranger just locked with five wrong passwords
    api.verified_user(OWNER)
    assert _stranger_guesses(api, 5) == [401] * 5
    locked = _lock()
    assert locked.locked_until == clock["t"] + 30
    # When the stranger keeps trying during the lock
    start = clock["t"]
    for second in (5, 15, 25, 29):
        clock["t"] = start + second
        assert _stranger_guesses(api) == [401]
    # Then the lock is exactly as it was: no attempt counted, no later end
    after = _lock()
    assert (after.attempts, after.locked_until, after.lock_level) == (locked.attempts, locked.locked_until, locked.lock_level)
    # And the owner gets in the moment it ends
    clock["t"] = start + 31
    assert api.post("/login", {"email": OWNER, "password": PASSWORD}).status == 200


def test_a_stranger_at_four_guesses_an_hour_cannot_keep_the_owner_out_past_a_reset(api, clock):
    # Given a stranger who has sent a wrong password every 15 minutes for three hours
    api.verified_user(OWNER)
    _stranger_guesses(api, 5)
    for _ in range(12):
        clock["t"] += 15 * 60
        _stranger_guesses(api)
    assert int(_lock().locked_until) > clock["t"]  # the account is locked right now
    assert api.post("/login", {"email": OWNER, "password": PASSWORD}).status == 401
    # When the owner resets the password by email
    assert _reset(api) == 200
    # Then the owner signs in at once with the new password
    assert api.post("/login", {"email": OWNER, "password": NEW_PASSWORD}).status == 200
    # And the stranger has to start again from the free tries before a new lock
    assert _stranger_guesses(api, 4) == [401] * 4
    assert _lock().locked_until is None


def test_a_reset_also_lifts_the_hourly_failure_cap(api, settings_override):
    # Given an account whose hourly failure cap a stranger filled
    settings_override(LOGIN_FAILURES_PER_HOUR="3", LOGIN_LOCKOUT_THRESHOLD="50")
    api.verified_user(OWNER)
    _stranger_guesses(api, 3)
    assert api.post("/login", {"email": OWNER, "password": PASSWORD}).status == 401
    # When the owner resets the password
    assert _reset(api) == 200
    # Then the owner signs in with it
    assert api.post("/login", {"email": OWNER, "password": NEW_PASSWORD}).status == 200


def test_a_reset_code_that_is_never_used_lifts_nothing(api, clock):
    # Given a locked account, and a reset code the stranger cannot read
    api.verified_user(OWNER)
    _stranger_guesses(api, 5)
    assert api.post("/forgot-password", {"email": OWNER}).status == 200
    # When the stranger guesses at the reset
    r = api.post("/reset-password", {"email": OWNER, "otp": "000000", "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    # Then nothing changes: still locked
    assert r.status == 400
    assert int(_lock().locked_until) > clock["t"]


# ---- the owner hears of a lock ------------------------------------------------------------------


def test_the_owner_is_emailed_once_per_lock_after_the_answer(api, outbox, clock):
    # Given an account and a stranger's address
    api.verified_user(OWNER)
    outbox.clear()
    # When both are locked by five wrong passwords, and tried again during the lock
    owner = _stranger_guesses(api, 7)
    stranger = _stranger_guesses(api, 7, email="nobody@example.com")
    # Then the answers are alike, and the owner got one notice (the stranger's address none)
    assert owner == stranger == [401] * 7
    [notice] = _lock_notices(outbox)
    assert "reset your password" in notice["text"] and PASSWORD not in notice["text"]
    assert outbox.to("nobody@example.com") == []
    # And the next lock, once this one is over, brings one more
    clock["t"] = int(_lock().locked_until) + 1
    _stranger_guesses(api, 3)
    assert len(_lock_notices(outbox)) == 2


def test_lock_notices_do_not_use_up_the_owners_email_cap(api, outbox, clock, settings_override):
    # Given a stranger who locked the account more times than the hourly email cap
    settings_override(OTP_SENDS_PER_HOUR="2")
    api.verified_user(OWNER)
    _stranger_guesses(api, 4)
    for _ in range(4):
        _stranger_guesses(api)
        clock["t"] = int(_lock().locked_until) + 1
    assert len(_lock_notices(outbox)) == 4
    # When the owner asks for a reset code
    # Then it arrives, and the reset lets them in
    assert _reset(api) == 200
    assert api.post("/login", {"email": OWNER, "password": NEW_PASSWORD}).status == 200


# ---- codes: a fresh budget per code, a daily ceiling per address --------------------------------


def test_five_wrong_guesses_then_a_fresh_reset_code_still_works(api, settings_override):
    # Given a reset code a stranger used up with five wrong guesses
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    api.verified_user(OWNER)
    api.post("/forgot-password", {"email": OWNER})
    first = api.latest_code(OWNER)
    for _ in range(5):
        assert api.post("/verify-password-reset-otp", {"email": OWNER, "otp": _wrong(first)}).status == 400
    # When the owner asks for a new one
    assert api.post("/resend-password-reset-otp", {"email": OWNER}).status == 200
    fresh = api.latest_code(OWNER)
    # Then it works: the guesses at the old code did not spend the new one's tries
    body = {"email": OWNER, "otp": fresh, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
    assert api.post("/reset-password", body).status == 200
    assert api.post("/login", {"email": OWNER, "password": NEW_PASSWORD}).status == 200


def test_the_daily_ceiling_of_wrong_guesses_holds_across_fresh_codes(api, clock, settings_override):
    # Given a ceiling of 12 wrong guesses a day and a stranger who keeps asking for codes
    settings_override(OTP_FAILURES_PER_DAY="12", OTP_RESEND_COOLDOWN_SECONDS="0", OTP_SENDS_PER_HOUR="100")
    api.verified_user(OWNER)
    statuses = []
    for _ in range(3):
        api.post("/forgot-password", {"email": OWNER})
        code = api.latest_code(OWNER)
        statuses += [api.post("/verify-password-reset-otp", {"email": OWNER, "otp": _wrong(code)}).status for _ in range(5)]
    assert statuses == [400] * 15
    # When a fresh code comes, and even the right one is tried
    api.post("/forgot-password", {"email": OWNER})
    code = api.latest_code(OWNER)
    # Then the address has no guesses left today: the right code is refused like a wrong one
    assert api.post("/verify-password-reset-otp", {"email": OWNER, "otp": code}).status == 400
    assert store.OtpItem.get(otp.item_key(otp.PASSWORD_RESET, OWNER)).attempts == 0  # refused before any try
    # And the next day the owner's fresh code works
    clock["t"] += 24 * 3600
    api.post("/forgot-password", {"email": OWNER})
    assert api.post("/verify-password-reset-otp", {"email": OWNER, "otp": api.latest_code(OWNER)}).status == 200


def test_a_parallel_burst_cannot_overshoot_the_daily_ceiling(api, settings_override):
    # Given a ceiling of 12 and a code with room for 20 tries
    settings_override(OTP_FAILURES_PER_DAY="12", OTP_MAX_ATTEMPTS="20")
    api.register("burst@example.com")
    code = api.latest_code("burst@example.com")
    # When 30 wrong guesses arrive at once
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda _: api.post("/verify-otp", {"email": "burst@example.com", "otp": _wrong(code)}).status, range(30)))
    # Then all are refused, and exactly 12 reached the code
    assert statuses == [400] * 30
    assert store.OtpItem.get(otp.item_key(otp.VERIFY_EMAIL, "burst@example.com")).attempts == 12
    assert api.post("/verify-otp", {"email": "burst@example.com", "otp": code}).status == 400


def test_a_right_guess_does_not_count_against_the_ceiling(api, settings_override):
    # Given a ceiling of 2
    settings_override(OTP_FAILURES_PER_DAY="2")
    api.verified_user(OWNER)
    # When the owner checks right codes many times
    for _ in range(4):
        api.post("/forgot-password", {"email": OWNER})
        assert api.post("/verify-password-reset-otp", {"email": OWNER, "otp": api.latest_code(OWNER)}).status == 200
    # Then nothing was spent
    assert store.counter_value(f"otpfail#{otp.email_key(OWNER)}", 24 * 3600) == 0

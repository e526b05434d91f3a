"""Rate limits and lockouts, over the atomic counters in `carekey.store`.

Every key is derived from the normalised email or the source IP through a
keyed hash, whether or not an account exists, so limits behave the same for
strangers and customers and reveal nothing.  Defaults (all configurable):

- codes: 5 tries per code, and a fresh 5 for each new code; at most 50 wrong
  guesses per address a day, across its codes; 60 s between two emails of one
  kind to one address; 5 emails actually sent an hour to one address (silent:
  nothing is sent, the answer does not change; each email takes its unit by a
  conditional increment before it is sent, so parallel senders cannot pass it).
- login: lockout from the 5th failure with waits that double from 30 s to
  15 minutes; attempts refused during a lock are not counted and do not
  extend it; a completed password reset lifts the lock; at most 100 failures
  per account per hour.
- per source IP: 100 failed logins or code checks an hour; 20 sign-ups an hour;
  30 requests for a code (forgot-password, resends) an hour.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from carekey import errors, store
from carekey.api import Client
from carekey.config import settings
from carekey.keys import keyed_hash
from carekey.otp import email_key

HOUR = 3600
DAY = 24 * HOUR


def _ip_key(client: Client) -> str:
    return keyed_hash("ip", client.ip)


def _seconds_left_in_hour() -> int:
    return HOUR - store.now() % HOUR


def ip_guard(client: Client) -> str:
    """Admit one attempt that may fail (a login, a code check) from this source
    IP, or refuse it with 429 once the IP has failed IP_FAILURES_PER_HOUR times
    this hour.

    The attempt is counted as a failure before it runs, by a conditional
    increment, so a parallel burst cannot get more than the limit through;
    `ip_passed` gives the unit back when the attempt succeeds."""
    admitted = store.count_under_limit(f"ipfail#{_ip_key(client)}", HOUR, settings().ip_failures_per_hour)
    if admitted is None:
        raise errors.RateLimited(_seconds_left_in_hour())
    return admitted


def ip_passed(admission: str) -> None:
    """The attempt admitted by `ip_guard` succeeded: it is not a failure."""
    store.uncount(admission)


def ip_failed(client: Client) -> None:
    """Count a failure from this IP that went through no `ip_guard` (a wrong
    current password on a signed-in session)."""
    store.count_hit(f"ipfail#{_ip_key(client)}", HOUR)


def registration_allowed(client: Client) -> None:
    if store.count_hit(f"register#{_ip_key(client)}", HOUR) > settings().ip_registrations_per_hour:
        raise errors.RateLimited(_seconds_left_in_hour())


def code_requests_allowed(client: Client) -> None:
    """forgot-password and both resends: a cap per source IP an hour (429), the
    only refusal those endpoints give, since it says nothing about an address."""
    if store.count_hit(f"coderequest#{_ip_key(client)}", HOUR) > settings().ip_code_requests_per_hour:
        raise errors.RateLimited(_seconds_left_in_hour())


@dataclass(frozen=True)
class SendSlot:
    """The right to send one email to an address now: its cooldown
    (`cooldown_key`, as claimed) and a unit of its hourly cap (`cap_key`)."""

    cooldown_key: str
    claim: store.SendClaim
    cap_key: str


def take_send_slot(email: str, purpose: str, cooldown: bool = True) -> SendSlot | None:
    """None when the address has had an email of this kind within the
    cooldown, or is at its hourly cap; callers then send nothing and say
    nothing.  With `cooldown=False` (the code of a new sign-up) the cooldown
    does not hold the email back, but it starts again for the emails after it.

    Both are taken by conditional writes before sending, the cooldown first (so
    work held back by it never touches the cap): senders running in parallel
    (Lambda runs a standard queue's batches concurrently) cannot pass the cap
    between them.  Use it through `sending`, which gives both back when
    nothing goes out."""
    cfg = settings()
    key = email_key(email)
    cooldown_key = f"send#{purpose}#{key}"
    claim = store.claim_send_slot(cooldown_key, cfg.otp_resend_cooldown_seconds if cooldown else 0)
    if claim is None:
        return None
    cap_key = store.count_under_limit(f"sendhour#{key}", HOUR, cfg.otp_sends_per_hour)
    if cap_key is None:
        store.release_send_slot(cooldown_key, claim)
        return None
    return SendSlot(cooldown_key, claim, cap_key)


def email_not_sent(slot: SendSlot) -> None:
    """Nothing was sent: give back the cap's unit and the cooldown, so a retry of the same work can send."""
    store.uncount(slot.cap_key)
    store.release_send_slot(slot.cooldown_key, slot.claim)


@contextmanager
def sending(email: str, purpose: str, cooldown: bool = True) -> Iterator[SendSlot | None]:
    """`take_send_slot` for the block inside, which sends with the slot (or
    does nothing with None).  Any exception in it gives the slot back before
    it propagates (the queue retries the job, and the retry must find the
    cooldown and the cap as they were); a block that decides not to send
    without raising calls `email_not_sent` itself."""
    slot = take_send_slot(email, purpose, cooldown)
    try:
        yield slot
    except BaseException:
        if slot is not None:
            email_not_sent(slot)
        raise


def otp_guard(email: str) -> str:
    """Admit one guess at a code of this address, or raise InvalidOtp (the
    answer of a wrong code) once the address has had OTP_FAILURES_PER_DAY wrong
    guesses today, across all its codes.  Counted before the guess is checked,
    by a conditional increment, so parallel guesses cannot overshoot;
    `otp_passed` gives the unit back when the guess was right."""
    admitted = store.count_under_limit(f"otpfail#{email_key(email)}", DAY, settings().otp_failures_per_day)
    if admitted is None:
        raise errors.InvalidOtp()
    return admitted


def otp_passed(admission: str) -> None:
    store.uncount(admission)


@dataclass(frozen=True)
class LoginGate:
    """An admitted login attempt: `locks` when this attempt set a lock, which
    holds unless the attempt succeeds; `hour` the hour whose failures it counts in."""

    key: str
    locks: bool
    hour: int


def _login_key(email: str) -> str:
    return f"login#{email_key(email)}"


def _login_ttl() -> int:
    return max(settings().login_lockout_max_seconds * 4, HOUR)


def login_gate(email: str) -> LoginGate:
    """Admit one login attempt for this email or raise InvalidCredentials (the
    same answer as a wrong password, so a lock reveals nothing).  An attempt
    refused during a lock, or once the hour's failures are at the cap, writes
    nothing: it neither counts nor extends the lock.

    The admission counts the attempt as a failure, in the lock item's own
    compare-and-set (one read, one conditional write), so neither the lockout
    nor the hourly cap can be outrun by parallel attempts.  An attempt that
    turns out right gives it back: `login_succeeded`, or `login_not_failed`
    when the lockout must hold on (a second step still to come)."""
    cfg = settings()
    key = _login_key(email)
    for _ in range(3):
        seen = store.lock_state(key)
        # This hour, or the item's own when another function's clock has already moved it on.
        hour = max(store.now() // HOUR, int(seen.hour) if seen is not None and seen.hour is not None else 0)
        if store.hour_failures(seen, hour) >= cfg.login_failures_per_hour:
            raise errors.InvalidCredentials()
        if seen is not None and seen.locked_until is not None and int(seen.locked_until) > store.now():
            raise errors.InvalidCredentials()
        attempts = int(seen.attempts or 0) if seen is not None else 0
        if store.admit_attempt(
            key,
            seen,
            threshold=cfg.login_lockout_threshold,
            base_lock=cfg.login_lockout_base_seconds,
            max_lock=cfg.login_lockout_max_seconds,
            ttl_seconds=_login_ttl(),
            hour=hour,
            hourly_cap=cfg.login_failures_per_hour,
        ):
            return LoginGate(key, locks=attempts + 1 >= cfg.login_lockout_threshold, hour=hour)
    raise errors.InvalidCredentials()


def login_failure_without_gate(email: str) -> None:
    """Count a failure among the hour's failures of this address where no
    `login_gate` admitted the attempt (an admitted one is counted already)."""
    store.count_login_failure(_login_key(email), store.now() // HOUR, _login_ttl())


def login_succeeded(gate: LoginGate) -> None:
    """The admitted attempt was right: the failures before it, and any lock, no
    longer hold, and the attempt is no failure of this hour.

    One UpdateItem, never a read first: the gate's admission has just written
    this item (every attempt counts itself before the password is checked, so
    no burst can outrun the lockout or the hourly cap), so there is always
    something to clear, at least this attempt's own count.

    A wrong guess admitted after this attempt (the compare-and-set orders them)
    may have counted itself, and even set a lock, before this write: the write
    lifts that lock too, and that is right.  The guess was admitted, so it got
    no more than the lockout allows; a success clears every attempt admitted
    before it, whatever their outcome; and keeping the lock would shut out the
    owner who has just proved the password, while an attacker gains nothing
    from the owner's success (their next guesses start a fresh count, as after
    any success, and every one of them stays counted in the hourly cap).  A
    lock set after this write holds as usual."""
    store.settle_attempt(gate.key, gate.hour)


def login_not_failed(gate: LoginGate) -> None:
    """The admitted attempt was no failure, but its lockout holds on (the right
    password of an account with a second step to come, or of a sign-up not yet
    verified): its unit of the hour's failures goes back."""
    store.give_back_attempt(gate.key, gate.hour)


def password_reset_done(email: str) -> None:
    """The owner proved their mailbox and chose a new password: the failures
    counted against the old one (its lock, its hourly cap) no longer hold."""
    store.clear_lock(_login_key(email))


def clear_for(email: str) -> None:
    """An operator's unlock: the login lockout and hourly failure count, the
    email cooldowns and hourly send cap of this address, and the tries of its
    pending codes, all back to a fresh start."""
    from carekey.otp import PASSWORD_RESET, VERIFY_EMAIL, item_key

    ek = email_key(email)
    windows = (store.now() // HOUR, store.now() // HOUR - 1)
    keys = [f"login#{ek}"]  # its lock and its hourly failure count
    keys += [f"sendhour#{ek}#{window}" for window in windows]
    keys.append(f"otpfail#{ek}#{store.now() // DAY}")
    keys += [f"send#{purpose}#{ek}" for purpose in (VERIFY_EMAIL, PASSWORD_RESET, "account_exists")]
    store.clear_limit_items(keys)
    for purpose in (VERIFY_EMAIL, PASSWORD_RESET):
        store.reset_code_tries(item_key(purpose, email))


def locked(email: str) -> bool:
    """Whether logins of this address are refused now (lockout or hourly failure cap)."""
    seen = store.lock_state(_login_key(email))
    if store.hour_failures(seen, store.now() // HOUR) >= settings().login_failures_per_hour:
        return True
    return seen is not None and seen.locked_until is not None and int(seen.locked_until) > store.now()


def clear_login_lock(email: str) -> None:
    """A full sign-in succeeded another way (a passkey as the second step):
    the lock and the attempts before it no longer hold.  The password step
    gave its hourly unit back already (`login_not_failed`), so nothing more is."""
    store.settle_attempt(_login_key(email), hour=None)

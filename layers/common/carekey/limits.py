"""Rate limits and lockouts, over the atomic counters in `carekey.store`.

Every key is derived from the normalised email or the source IP through a
keyed hash, whether or not an account exists, so limits behave the same for
strangers and customers and reveal nothing.  Defaults (all configurable):

- codes: 5 tries per code; 60 s between two codes of one kind to one address;
  5 emails an hour to one address.
- login: lockout from the 5th failure with waits that double from 30 s to
  15 minutes; at most 100 failures per account per hour.
- per source IP: 100 failed logins or code checks an hour; 20 sign-ups an hour.
"""

from __future__ import annotations

from carekey import errors, store
from carekey.api import Client
from carekey.config import settings
from carekey.keys import keyed_hash
from carekey.otp import email_key

HOUR = 3600


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


def claim_email_send(email: str, purpose: str) -> None:
    """Take a send slot for this address or raise RateLimited: one email per
    purpose per cooldown, and an hourly cap across purposes."""
    cfg = settings()
    key = email_key(email)
    wait = store.claim_send_slot(f"send#{purpose}#{key}", cfg.otp_resend_cooldown_seconds)
    if wait:
        raise errors.RateLimited(wait, "Please wait before requesting another code.")
    if store.count_hit(f"sendhour#{key}", HOUR) > cfg.otp_sends_per_hour:
        raise errors.RateLimited(_seconds_left_in_hour(), "Too many codes requested for this address. Try again later.")


def login_gate(email: str) -> str:
    """Admit one login attempt for this email or raise InvalidCredentials (the
    same answer as a wrong password, so a lock reveals nothing)."""
    cfg = settings()
    ek = email_key(email)
    key = f"login#{ek}"
    if store.counter_value(f"loginhour#{ek}", HOUR) >= cfg.login_failures_per_hour:
        raise errors.InvalidCredentials()
    for _ in range(3):
        seen = store.lock_state(key)
        if seen is not None and seen.locked_until is not None and int(seen.locked_until) > store.now():
            raise errors.InvalidCredentials()
        if store.admit_attempt(
            key,
            seen,
            threshold=cfg.login_lockout_threshold,
            base_lock=cfg.login_lockout_base_seconds,
            max_lock=cfg.login_lockout_max_seconds,
            ttl_seconds=max(cfg.login_lockout_max_seconds * 4, HOUR),
        ):
            return key
    raise errors.InvalidCredentials()


def login_failed(email: str) -> None:
    store.count_hit(f"loginhour#{email_key(email)}", HOUR)


def login_succeeded(gate_key: str) -> None:
    store.clear_lock(gate_key)

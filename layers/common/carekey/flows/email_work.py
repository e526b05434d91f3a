"""The email work that follows an answer.

`register`, `resend-otp`, `forgot-password` and `resend-password-reset-otp`
answer after the same synchronous work for every address: they record what was
asked as an `EmailJob` and hand it on.  Everything that depends on whether the
address has an account (looking it up, issuing a code, sending the email,
applying the cooldown and the hourly cap) happens here, after the answer, so
neither the answer nor its timing says anything about the address.

A cooldown or a cap is silent: nothing is sent and nobody is told.  The hourly
cap counts only emails actually sent.  Each job writes one audit record, with
the source of the request it came from.
"""

from __future__ import annotations

from typing import Literal

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict

from carekey import audit, limits, mailer, otp, store
from carekey.api import Client
from carekey.config import settings
from carekey.observability import metrics

SIGNUP = "signup"
VERIFICATION_CODE = "verification_code"
RESET_CODE = "reset_code"
ACCOUNT_EXISTS = "account_exists"  # the notice's own cooldown, apart from the codes'


class EmailJob(BaseModel):
    """One request's email work.  Holds the address, never a password or a code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["signup", "verification_code", "reset_code"]
    email: str
    event: str
    signup_id: str | None = None
    ip: str = "unknown"
    user_agent: str = ""
    request_id: str = ""

    @classmethod
    def of(cls, kind: str, email: str, event: str, client: Client, signup_id: str | None = None) -> EmailJob:
        return cls.model_validate({
            "kind": kind,
            "email": email,
            "event": event,
            "signup_id": signup_id,
            "ip": client.ip,
            "user_agent": client.user_agent,
            "request_id": client.request_id,
        })

    @property
    def client(self) -> Client:
        return Client(ip=self.ip, user_agent=self.user_agent, request_id=self.request_id)


def submit(job: EmailJob) -> None:
    """Hand the job on; the caller answers without waiting for its outcome."""
    perform(job)


def perform(job: EmailJob) -> None:
    {SIGNUP: _signup, VERIFICATION_CODE: _verification_code, RESET_CODE: _reset_code}[job.kind](job)


def _signup(job: EmailJob) -> None:
    email_hash = otp.email_key(job.email)
    if store.user_by_email(job.email) is not None:
        # The owner hears of it; the account is untouched and the sign-up can never be verified.
        _send(mailer.account_exists_notice(job.email), ACCOUNT_EXISTS)
        audit.record(job.event, "duplicate_email", job.client, email_hash=email_hash)
        return
    signup = store.pending_signup(email_hash)
    if signup is None or signup.signup_id != job.signup_id:
        audit.record(job.event, "superseded", job.client, email_hash=email_hash)
        return
    # A new sign-up always gets its code (no cooldown: the code of any earlier
    # sign-up is dead); the hourly cap still applies.
    sent = _issue(job.email, otp.VERIFY_EMAIL, signup.signup_id, signup=signup, cooldown=False)
    audit.record(job.event, "success" if sent else "not_sent", job.client, user_id=signup.signup_id, email_hash=email_hash)
    metrics.add_metric(name="SignUps", unit=MetricUnit.Count, value=1)


def _verification_code(job: EmailJob) -> None:
    email_hash = otp.email_key(job.email)
    user = store.user_by_email(job.email)
    outcome = "not_applicable"
    if user is None:
        signup = store.pending_signup(email_hash)
        if signup is not None:
            outcome = "sent" if _issue(job.email, otp.VERIFY_EMAIL, signup.signup_id, signup=signup) else "not_sent"
    elif not user.is_verified and user.is_active:  # an account created unverified, before sign-ups were kept apart
        outcome = "sent" if _issue(job.email, otp.VERIFY_EMAIL, user.user_id) else "not_sent"
    audit.record(job.event, outcome, job.client, user_id=user.user_id if user else None, email_hash=email_hash)


def _reset_code(job: EmailJob) -> None:
    user = store.user_by_email(job.email)
    outcome = "not_applicable"
    if user is not None and user.is_verified and user.is_active:
        outcome = "sent" if _issue(job.email, otp.PASSWORD_RESET, user.user_id) else "not_sent"
    audit.record(job.event, outcome, job.client, user_id=user.user_id if user else None, email_hash=otp.email_key(job.email))


_MESSAGES = {otp.VERIFY_EMAIL: mailer.verification_code, otp.PASSWORD_RESET: mailer.reset_code}


def _issue(email: str, purpose: str, subject_id: str, signup: store.SignupItem | None = None, cooldown: bool = True) -> bool:
    """Issue a code bound to `subject_id` (an account, or `signup`), replacing
    any older code of this purpose for the address, and email it; unless the
    address is in its cooldown or at its cap (then the older code stays)."""
    slot = limits.take_send_slot(email, purpose, cooldown=cooldown)
    if slot is None:
        return False
    code = otp.new_code()
    key, digest, ttl = otp.item_key(purpose, email), otp.digest(purpose, subject_id, code), settings().otp_ttl_seconds
    if signup is None:
        store.put_otp(key, subject_id, digest, ttl)
    elif not store.put_signup_code(key, signup, digest, ttl):
        limits.email_not_sent(slot)  # a later sign-up replaced this one; its own work sends its code
        return False
    return _sent(_MESSAGES[purpose](email, code), slot)


def _send(message: mailer.Email, purpose: str) -> bool:
    slot = limits.take_send_slot(message.to, purpose)
    return slot is not None and _sent(message, slot)


def _sent(message: mailer.Email, slot: limits.SendSlot) -> bool:
    if mailer.send(message):
        limits.email_sent(slot)
        return True
    limits.email_not_sent(slot)
    return False

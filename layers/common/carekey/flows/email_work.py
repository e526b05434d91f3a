"""The email work that follows an answer.

`register`, `resend-otp`, `forgot-password`, `resend-password-reset-otp` and
`change-email` answer after the same synchronous work for every address: they put what was
asked (an `EmailJob`) on the email queue and answer.  The email sender
function consumes the queue: everything that depends on whether the address
has an account (looking it up, issuing a code, sending the email, applying the
cooldown, the hourly cap and the suppression list) happens there, after the
answer, so neither the answer nor its timing says anything about the address.

A cooldown, a cap or a suppressed address is silent: nothing is sent and
nobody is told.  The hourly cap counts only emails actually sent: a job that
sends nothing, or fails before its email went out, gives its unit back.  A job whose
email SES did not take fails; the queue retries it with growing waits, then
moves it to the dead-letter queue (which raises an alarm).  Each completed job
writes one audit record, with the source of the request it came from.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from carekey import audit, limits, mailer, otp, store
from carekey.api import Client
from carekey.aws import client
from carekey.config import settings
from carekey.observability import logger, metrics

SIGNUP = "signup"
VERIFICATION_CODE = "verification_code"
RESET_CODE = "reset_code"
EMAIL_CHANGE_CODE = "email_change_code"
ACCOUNT_EXISTS = "account_exists"  # the notice's own cooldown, apart from the codes'
ACCOUNT_LOCKED = "account_locked"


class EmailJob(BaseModel):
    """One request's email work.  Holds the address, never a password or a code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["signup", "verification_code", "reset_code", "email_change_code", "account_locked"]
    email: str
    event: str
    signup_id: str | None = None
    user_id: str | None = None  # an email change: the account moving to `email`
    ip: str = "unknown"
    user_agent: str = ""
    request_id: str = ""

    @classmethod
    def of(cls, kind: str, email: str, event: str, client: Client, signup_id: str | None = None, user_id: str | None = None) -> EmailJob:
        return cls.model_validate({
            "kind": kind,
            "email": email,
            "event": event,
            "signup_id": signup_id,
            "user_id": user_id,
            "ip": client.ip,
            "user_agent": client.user_agent,
            "request_id": client.request_id,
        })

    @property
    def client(self) -> Client:
        return Client(ip=self.ip, user_agent=self.user_agent, request_id=self.request_id)


class EmailNotSent(Exception):
    """SES did not take an email; the queue retries the job."""


def submit(job: EmailJob) -> None:
    """Put the job on the email queue; the caller answers without waiting for it."""
    client("sqs").send_message(QueueUrl=settings().email_queue_url, MessageBody=job.model_dump_json())


def handle_batch(event: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """The email sender: perform each job of an SQS batch.  A failed job is
    reported (ReportBatchItemFailures) and comes back after a wait that doubles
    with each receive; the queue's redrive policy ends its retries."""
    failures = []
    for record in event.get("Records") or []:
        try:
            perform(EmailJob.model_validate_json(record["body"]))
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then dead-lettered
            logger.warning("email job failed", extra={"error": type(exc).__name__, "message_id": record.get("messageId")})
            metrics.add_metric(name="EmailJobFailures", unit=MetricUnit.Count, value=1)
            _back_off(record)
            failures.append({"itemIdentifier": str(record.get("messageId", ""))})
    return {"batchItemFailures": failures}


def _back_off(record: dict[str, Any]) -> None:
    receives = int((record.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
    wait = min(900, 15 * 2 ** min(receives - 1, 6)) + secrets.randbelow(10)
    try:
        client("sqs").change_message_visibility(
            QueueUrl=settings().email_queue_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=wait
        )
    except (ClientError, BotoCoreError, KeyError):
        pass  # the queue's own visibility timeout applies instead


def perform(job: EmailJob) -> None:
    if store.is_suppressed(otp.email_key(job.email)):
        # The address bounced or complained: nothing more is sent to it.
        audit.record(job.event, "suppressed", job.client, email_hash=otp.email_key(job.email))
        return
    handlers = {
        SIGNUP: _signup,
        VERIFICATION_CODE: _verification_code,
        RESET_CODE: _reset_code,
        EMAIL_CHANGE_CODE: _email_change_code,
        ACCOUNT_LOCKED: _account_locked,
    }
    handlers[job.kind](job)


def login_locked(email: str, client: Client) -> None:
    """A failed login attempt just set a lock on this address: tell the owner,
    after the answer.  Submitted for every address alike (a lock reveals
    nothing); only an account's mailbox gets the notice."""
    submit(EmailJob.of(ACCOUNT_LOCKED, email, "login.locked", client))


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


def _email_change_code(job: EmailJob) -> None:
    """The code that moves an account to `job.email`, sent there; unless the
    address has an account already, whose owner then hears of the attempt."""
    email_hash = otp.email_key(job.email)
    user = store.user_by_id(job.user_id or "")
    if user is None or not user.is_active or user.email == job.email:
        audit.record(job.event, "not_applicable", job.client, user_id=job.user_id, email_hash=email_hash)
        return
    if store.user_by_email(job.email) is not None:
        _send(mailer.email_taken_notice(job.email), ACCOUNT_EXISTS)
        audit.record(job.event, "address_taken", job.client, user_id=user.user_id, email_hash=email_hash)
        return
    sent = False
    with limits.sending(job.email, otp.CHANGE_EMAIL) as slot:
        if slot is not None:
            code = otp.new_code()
            digest = otp.digest(otp.CHANGE_EMAIL, otp.change_email_subject(user.user_id, job.email), code)
            store.put_email_change_code(otp.change_email_key(user.user_id), user.user_id, job.email, digest, settings().otp_ttl_seconds)
            sent = _sent(mailer.email_change_code(job.email, code))
    audit.record(job.event, "sent" if sent else "not_sent", job.client, user_id=user.user_id, email_hash=email_hash)


def _account_locked(job: EmailJob) -> None:
    """One notice per lock (one job is submitted when a lock is set).  It is
    not held back by, nor counted against, the address's hourly cap, so the
    locks a stranger causes can never use up the emails the owner needs to get
    back in (a reset code); the lock schedule itself bounds how often it goes."""
    user = store.user_by_email(job.email)
    outcome = "not_applicable"
    if user is not None and user.is_verified and user.is_active:
        if not mailer.send(mailer.account_locked_notice(user.email)):
            raise EmailNotSent()
        outcome = "sent"
    audit.record(job.event, outcome, job.client, user_id=user.user_id if user else None, email_hash=otp.email_key(job.email))


_MESSAGES = {otp.VERIFY_EMAIL: mailer.verification_code, otp.PASSWORD_RESET: mailer.reset_code}


def _issue(email: str, purpose: str, subject_id: str, signup: store.SignupItem | None = None, cooldown: bool = True) -> bool:
    """Issue a code bound to `subject_id` (an account, or `signup`), replacing
    any older code of this purpose for the address, and email it; unless the
    address is in its cooldown or at its cap (then the older code stays)."""
    with limits.sending(email, purpose, cooldown=cooldown) as slot:
        if slot is None:
            return False
        code = otp.new_code()
        key, digest, ttl = otp.item_key(purpose, email), otp.digest(purpose, subject_id, code), settings().otp_ttl_seconds
        if signup is None:
            store.put_otp(key, subject_id, digest, ttl)
        elif not store.put_signup_code(key, signup, digest, ttl):
            limits.email_not_sent(slot)  # a later sign-up replaced this one; its own work sends its code
            return False
        return _sent(_MESSAGES[purpose](email, code))


def _send(message: mailer.Email, purpose: str) -> bool:
    with limits.sending(message.to, purpose) as slot:
        return slot is not None and _sent(message)


def _sent(message: mailer.Email) -> bool:
    """Send, within `limits.sending` (the slot's unit of the hourly cap stays
    spent); when SES does not take it, fail the job, which gives the slot back,
    so that the queue's retry can send."""
    if mailer.send(message):
        return True
    raise EmailNotSent()

"""Sign-up, email verification and resending a code."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from carekey import audit, errors, limits, otp, passwords, store
from carekey.api import Call, Reply
from carekey.config import settings
from carekey.flows import email_work
from carekey.flows.email_work import EmailJob
from carekey.observability import metrics
from carekey.schemas import (
    RegisterRequest,
    RegisterResponse,
    ResendOtpRequest,
    ResendOtpResponse,
    VerifiedResponse,
    VerifyOtpRequest,
)


def register(call: Call[RegisterRequest]) -> Reply:
    """POST /register: keep the sign-up and answer; the same work and the same
    answer whether or not the email has an account.  The sign-up replaces any
    earlier one for the address and claims nothing: only its code makes it an
    account (see `verify_email`)."""
    body, cfg = call.body, settings()
    passwords.check_new_password(body.password, body.password2, ("password", "password2"), body.email, body.first_name, body.last_name)
    limits.registration_allowed(call.client)
    signup = store.put_signup(
        otp.email_key(body.email),
        body.email,
        passwords.hash_password(body.password),
        body.first_name,
        body.last_name,
        body.phone_number,
        cfg.signup_ttl_seconds,
    )
    email_work.submit(EmailJob.of(email_work.SIGNUP, body.email, "register", call.client, signup_id=signup.signup_id))
    return Reply(
        201,
        RegisterResponse(
            user=signup.public(),
            otp_sent=True,
            otp_expires_in=cfg.otp_ttl_minutes,
            message="Account created. Check your email for the verification code.",
        ),
    )


def verify_email(call: Call[VerifyOtpRequest]) -> Reply:
    """POST /verify-otp: the code turns the sign-up it was sent for (and only
    that one, if no later sign-up replaced it) into a verified account."""
    body, cfg = call.body, settings()
    admission = limits.ip_guard(call.client)
    guess = limits.otp_guard(body.email)
    email_hash = otp.email_key(body.email)
    key = otp.item_key(otp.VERIFY_EMAIL, body.email)
    attempt = store.reserve_otp_try(key)
    right = (
        attempt is not None
        and attempt.attempts <= cfg.otp_max_attempts
        and attempt.expires_at > store.now()
        and otp.well_formed(body.otp)
        and otp.matches(otp.VERIFY_EMAIL, attempt.user_id, body.otp, attempt.code_hash)
    )
    verified = False
    if right:
        assert attempt is not None
        signup = store.pending_signup(email_hash)
        if signup is not None and signup.signup_id == attempt.user_id:
            verified = store.activate_signup(key, attempt.code_hash, signup) is not None
        else:  # an account created unverified, before sign-ups were kept apart
            verified = store.verify_email(key, attempt.code_hash, attempt.user_id)
    if not verified:
        audit.record("verify_email", "failure", call.client, email_hash=email_hash)
        metrics.add_metric(name="OtpFailures", unit=MetricUnit.Count, value=1)
        raise errors.InvalidOtp()
    assert attempt is not None
    limits.ip_passed(admission)
    limits.otp_passed(guess)
    audit.record("verify_email", "success", call.client, user_id=attempt.user_id, email_hash=email_hash)
    metrics.add_metric(name="EmailsVerified", unit=MetricUnit.Count, value=1)
    return Reply(200, VerifiedResponse(message="Email verified successfully", verified=True))


def resend(call: Call[ResendOtpRequest]) -> Reply:
    """POST /resend-otp: the same answer, after the same work, for every email."""
    body = call.body
    limits.code_requests_allowed(call.client)
    kind = email_work.RESET_CODE if body.context == "password_reset" else email_work.VERIFICATION_CODE
    email_work.submit(EmailJob.of(kind, body.email, f"resend_code.{body.context}", call.client))
    return Reply(
        200,
        ResendOtpResponse(
            message="If this email has an account waiting for a code, a new one has been sent.",
            otp_sent=True,
            otp_expires_in=settings().otp_ttl_minutes,
            context=body.context,
        ),
    )

"""Sign-up, email verification and resending a code."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from carekey import audit, errors, limits, mailer, otp, passwords, store
from carekey.api import Call, Reply
from carekey.config import settings
from carekey.flows.codes import issue_code, send_limited
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
    body = call.body
    passwords.check_new_password(body.password, body.password2, ("password", "password2"), body.email, body.first_name, body.last_name)
    limits.registration_allowed(call.client)

    # Hash before knowing whether the email is taken: both answers take as long.
    user = store.new_user(body.email, passwords.hash_password(body.password), body.first_name, body.last_name, body.phone_number)
    email_hash = otp.email_key(body.email)
    try:
        store.create_user(user)
    except store.EmailTaken:
        # Same answer as a new sign-up; the owner hears of it, the account is untouched.
        sent = send_limited(mailer.account_exists_notice(body.email), otp.VERIFY_EMAIL)
        audit.record("register", "duplicate_email", call.client, email_hash=email_hash)
        return Reply(201, _registered(user, sent))

    sent = issue_code(user, otp.VERIFY_EMAIL, respect_limits=True)
    audit.record("register", "success", call.client, user_id=user.user_id, email_hash=email_hash)
    metrics.add_metric(name="SignUps", unit=MetricUnit.Count, value=1)
    return Reply(201, _registered(user, sent))


def _registered(user: store.UserItem, sent: bool) -> RegisterResponse:
    message = (
        "Account created. Check your email for the verification code."
        if sent
        else "Account created, but the verification email could not be sent now. Request a new code with POST /resend-otp."
    )
    return RegisterResponse(user=user.public(), otp_sent=sent, otp_expires_in=settings().otp_ttl_minutes, message=message)


def verify_email(call: Call[VerifyOtpRequest]) -> Reply:
    body, cfg = call.body, settings()
    admission = limits.ip_guard(call.client)
    key = otp.item_key(otp.VERIFY_EMAIL, body.email)
    attempt = store.reserve_otp_try(key)
    verified = (
        attempt is not None
        and attempt.attempts <= cfg.otp_max_attempts
        and attempt.expires_at > store.now()
        and otp.well_formed(body.otp)
        and otp.matches(otp.VERIFY_EMAIL, attempt.user_id, body.otp, attempt.code_hash)
        and store.verify_email(key, attempt.code_hash, attempt.user_id)
    )
    if not verified:
        audit.record("verify_email", "failure", call.client, email_hash=otp.email_key(body.email))
        metrics.add_metric(name="OtpFailures", unit=MetricUnit.Count, value=1)
        raise errors.InvalidOtp()
    assert attempt is not None
    limits.ip_passed(admission)
    audit.record("verify_email", "success", call.client, user_id=attempt.user_id, email_hash=otp.email_key(body.email))
    metrics.add_metric(name="EmailsVerified", unit=MetricUnit.Count, value=1)
    return Reply(200, VerifiedResponse(message="Email verified successfully", verified=True))


def resend(call: Call[ResendOtpRequest]) -> Reply:
    """POST /resend-otp: the same answer whether or not the email has an account."""
    body = call.body
    limits.claim_email_send(body.email, otp.PASSWORD_RESET if body.context == "password_reset" else otp.VERIFY_EMAIL)
    user = store.user_by_email(body.email)
    if body.context == "password_reset":
        eligible = user is not None and user.is_verified and user.is_active
        if eligible:
            issue_code(user, otp.PASSWORD_RESET)
    else:
        eligible = user is not None and not user.is_verified and user.is_active
        if eligible:
            issue_code(user, otp.VERIFY_EMAIL)
    audit.record(
        f"resend_code.{body.context}",
        "sent" if eligible else "not_applicable",
        call.client,
        user_id=user.user_id if user else None,
        email_hash=otp.email_key(body.email),
    )
    return Reply(
        200,
        ResendOtpResponse(
            message="If this email has an account waiting for a code, a new one has been sent.",
            otp_sent=True,
            otp_expires_in=settings().otp_ttl_minutes,
            context=body.context,
        ),
    )

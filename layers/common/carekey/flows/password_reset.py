"""Forgot password -> verify the reset code -> set a new password."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from carekey import audit, errors, limits, mailer, otp, passwords, store
from carekey.api import Call, Reply
from carekey.config import settings
from carekey.flows import email_work
from carekey.flows.email_work import EmailJob
from carekey.observability import metrics
from carekey.schemas import (
    EmailOnlyRequest,
    ForgotPasswordResponse,
    ResendResetResponse,
    ResetPasswordRequest,
    SuccessResponse,
    VerifyResetOtpRequest,
    VerifyResetResponse,
)


def _request_code(call: Call[EmailOnlyRequest], event: str) -> None:
    """Ask for a reset code, after the same work for every address; the code
    goes out (after the answer) only to a verified, active account."""
    limits.code_requests_allowed(call.client)
    email_work.submit(EmailJob.of(email_work.RESET_CODE, call.body.email, event, call.client))


def forgot_password(call: Call[EmailOnlyRequest]) -> Reply:
    _request_code(call, "password_reset.requested")
    return Reply(
        200,
        ForgotPasswordResponse(
            message="If this email has an account, a password reset code has been sent to it.",
            otp_sent=True,
            otp_expires_in=settings().otp_ttl_minutes,
            email=call.body.email,
        ),
    )


def resend_reset_code(call: Call[EmailOnlyRequest]) -> Reply:
    _request_code(call, "password_reset.resent")
    return Reply(
        200,
        ResendResetResponse(
            message="If this email has an account, a new password reset code has been sent to it.",
            otp_sent=True,
            otp_expires_in=settings().otp_ttl_minutes,
        ),
    )


def _checked_code(call: Call, email: str, code: str) -> store.OtpRecord:
    """Spend one try on the reset code and check it; InvalidOtp if it does not hold."""
    cfg = settings()
    admission = limits.ip_guard(call.client)
    guess = limits.otp_guard(email)
    attempt = store.reserve_otp_try(otp.item_key(otp.PASSWORD_RESET, email))
    if (
        attempt is None
        or attempt.attempts > cfg.otp_max_attempts
        or attempt.expires_at <= store.now()
        or not otp.well_formed(code)
        or not otp.matches(otp.PASSWORD_RESET, attempt.user_id, code, attempt.code_hash)
    ):
        audit.record("password_reset.code_check", "failure", call.client, email_hash=otp.email_key(email))
        metrics.add_metric(name="OtpFailures", unit=MetricUnit.Count, value=1)
        raise errors.InvalidOtp()
    limits.ip_passed(admission)
    limits.otp_passed(guess)
    return attempt


def verify_reset_code(call: Call[VerifyResetOtpRequest]) -> Reply:
    body = call.body
    attempt = _checked_code(call, body.email, body.otp)
    audit.record("password_reset.code_check", "success", call.client, user_id=attempt.user_id, email_hash=otp.email_key(body.email))
    return Reply(200, VerifyResetResponse(message="OTP verified successfully", verified=True, email=body.email))


def reset_password(call: Call[ResetPasswordRequest]) -> Reply:
    body = call.body
    passwords.check_new_password(body.new_password, body.confirm_password, ("new_password", "confirm_password"), body.email)

    attempt = _checked_code(call, body.email, body.otp)
    user = store.user_by_id(attempt.user_id)
    if user is None or not user.is_active or user.email != body.email:  # the account moved to another address since
        raise errors.InvalidOtp()
    refused = passwords.policy_errors(body.new_password, user.email, user.first_name, user.last_name)
    if refused:
        raise errors.FieldErrors({"new_password": refused})
    if passwords.verify_password(body.new_password, user.password_hash):
        raise errors.FieldErrors({"new_password": [passwords.SAME_AS_CURRENT]})
    if not store.reset_password(
        otp.item_key(otp.PASSWORD_RESET, body.email),
        attempt.code_hash,
        attempt.user_id,
        passwords.hash_password(body.new_password),
    ):
        raise errors.InvalidOtp()  # used up by a concurrent request, expired, or out of tries
    limits.password_reset_done(user.email)  # the new password is not locked by guesses at the old one
    mailer.send(mailer.password_changed_notice(user.email))
    audit.record("password_reset.done", "success", call.client, user_id=user.user_id, email_hash=otp.email_key(user.email))
    metrics.add_metric(name="PasswordResets", unit=MetricUnit.Count, value=1)
    return Reply(200, SuccessResponse(message="Password reset successfully", success=True))

"""Changing the signed-in user's email: the current password, then a code sent
to the new address, which moves the account there.

POST /change-email answers alike, after the same synchronous work, whether or
not the new address has an account: the password check, then one email job on
the queue.  The email sender decides, after the answer, whether a code goes to
the new address (it has no account) or a notice to its owner (it has one).

POST /change-email/verify spends one try on the code (few tries, expiry
checked in code, and the new address's daily ceiling of wrong guesses) and then, in one transaction, uses it up, frees the old
address, claims the new one (failing cleanly if someone claimed it
meanwhile), sets the account's email, ends every session and deletes the
old address's pending codes (a reset code sent there no longer acts on the
account).  The calling
session carries on with fresh tokens; the old address is told.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from carekey import audit, errors, limits, mailer, otp, store
from carekey.api import Call, Reply
from carekey.config import settings
from carekey.flows import email_work
from carekey.flows.account import _me as signed_in_user
from carekey.flows.account import _renew as renew_this_session
from carekey.flows.account import confirm_password_and_second_factor
from carekey.flows.email_work import EmailJob
from carekey.observability import metrics
from carekey.schemas import ChangeEmailRequest, ChangeEmailResponse, ChangeEmailVerifiedResponse, ChangeEmailVerifyRequest

ALREADY_YOURS = "This is already your email."


def request_change(call: Call[ChangeEmailRequest]) -> Reply:
    body = call.body
    user = signed_in_user(call)
    if body.new_email == user.email:
        raise errors.FieldErrors({"new_email": [ALREADY_YOURS]})
    confirm_password_and_second_factor(user, body.password, body.code, call, field="password", event="email_change")
    limits.code_requests_allowed(call.client)
    email_work.submit(EmailJob.of(email_work.EMAIL_CHANGE_CODE, body.new_email, "email_change.requested", call.client, user_id=user.user_id))
    return Reply(
        200,
        ChangeEmailResponse(
            message="If this address can be used, a code has been sent to it. Enter it to finish the change.",
            otp_sent=True,
            otp_expires_in=settings().otp_ttl_minutes,
        ),
    )


def verify_change(call: Call[ChangeEmailVerifyRequest]) -> Reply:
    cfg = settings()
    user = signed_in_user(call)
    admission = limits.ip_guard(call.client)
    key = otp.change_email_key(user.user_id)
    attempt = store.reserve_otp_try(key)
    new_email = attempt.new_email if attempt is not None else None
    # The code was sent to the new address: its guesses count toward that address's
    # daily ceiling, across all its codes, as for its sign-up and reset codes.
    guess = limits.otp_guard(new_email) if new_email is not None else None
    if (
        attempt is None
        or new_email is None
        or attempt.user_id != user.user_id
        or attempt.attempts > cfg.otp_max_attempts
        or attempt.expires_at <= store.now()
        or not otp.well_formed(call.body.otp)
        or not otp.matches(otp.CHANGE_EMAIL, otp.change_email_subject(user.user_id, new_email), call.body.otp, attempt.code_hash)
    ):
        audit.record("email_change.code_check", "failure", call.client, user_id=user.user_id)
        metrics.add_metric(name="OtpFailures", unit=MetricUnit.Count, value=1)
        raise errors.InvalidOtp()
    assert new_email is not None and guess is not None
    limits.ip_passed(admission)
    limits.otp_passed(guess)
    old_codes = [otp.item_key(otp.PASSWORD_RESET, user.email), otp.item_key(otp.VERIFY_EMAIL, user.email)]
    version = store.switch_email(key, attempt.code_hash, user, new_email, old_codes)
    if version is None:
        # The code was used by a parallel request, or the address was claimed,
        # or the account changed meanwhile: nothing changed.
        audit.record("email_change", "failure", call.client, user_id=user.user_id, email_hash=otp.email_key(new_email))
        raise errors.EmailChangeFailed()
    access, refresh = renew_this_session(call, user.user_id, version)
    mailer.send(mailer.email_changed_notice(user.email, new_email))
    audit.record(
        "email_change",
        "success",
        call.client,
        user_id=user.user_id,
        email_hash=otp.email_key(new_email),
        detail={"previous_email_hash": otp.email_key(user.email)},
    )
    metrics.add_metric(name="EmailChanges", unit=MetricUnit.Count, value=1)
    return Reply(
        200,
        ChangeEmailVerifiedResponse(
            message="Email changed. Other sessions have been signed out.", success=True, email=new_email, access=access, refresh=refresh
        ),
    )

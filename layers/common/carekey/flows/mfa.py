"""Two-step sign-in: set up an authenticator app, the second step of a login,
recovery codes, and turning it off.  The mechanics (codes, secrets, tokens)
are in `carekey.mfa`; every use of a code is a conditional write in `carekey.store`.

setup and confirm answer to a bearer token, checked here as the authorizer
would check it (`sessions.admit`), or, under MFA_POLICY=required, to the
enrolment token of a login that may not go on without a second factor: that
token is good for nothing else, and confirm then starts the session.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from carekey import audit, errors, limits, mailer, mfa, otp, store
from carekey.api import Call, Reply
from carekey.config import settings
from carekey.flows import email_work
from carekey.flows.account import confirm_password, confirm_password_and_code
from carekey.flows.sessions import start_session
from carekey.observability import metrics
from carekey.schemas import (
    LoginMfaRequest,
    LoginResponse,
    MfaChangeRequest,
    MfaConfirmRequest,
    MfaConfirmResponse,
    MfaDisabledResponse,
    MfaSetupRequest,
    MfaSetupResponse,
    MfaStatus,
    RecoveryCodesResponse,
)

_ALREADY_ON = "Two-step sign-in is already on. Turn it off first to set up another authenticator."


def _active(user_id: str) -> store.UserItem:
    user = store.user_by_id(user_id)
    if user is None or not user.is_active:
        raise errors.Unauthorized()
    return user


def _enrolment(call: Call, token: str, *, spend_try: bool) -> tuple[str, store.MfaTokenItem, store.UserItem]:
    """The enrolment token's item and account, or 401: unknown, used, expired,
    out of tries, of a login token, or from before a password change."""
    cfg = settings()
    key = mfa.token_key(token)
    item = None
    if key is not None:
        item = store.try_mfa_token(key, mfa.ENROLL, cfg.mfa_max_attempts) if spend_try else store.peek_mfa_token(key, mfa.ENROLL, cfg.mfa_max_attempts)
    user = store.user_by_id(item.user_id) if item is not None else None
    if key is None or item is None or user is None or not user.is_active or int(user.token_version) != int(item.token_version):
        audit.record("mfa.enroll", "invalid_token", call.client, user_id=item.user_id if item else None)
        raise errors.InvalidToken()  # the documented 401 of these routes: a token refused
    return key, item, user


# ---- setting up an authenticator app -----------------------------------------------


def setup(call: Call[MfaSetupRequest]) -> Reply:
    body = call.body
    if call.principal is not None:
        user = _active(call.principal.user_id)
        if body.password is None:
            raise errors.FieldErrors({"password": ["This field is required."]})
        confirm_password(user, body.password, call, field="password", event="mfa.setup")
    elif body.mfa_token is not None:
        _, _, user = _enrolment(call, body.mfa_token, spend_try=False)
    else:
        raise errors.Unauthorized()
    if user.mfa_enabled:
        raise errors.MfaUnavailable(_ALREADY_ON)
    secret = mfa.new_secret()
    if not store.set_pending_totp(user.user_id, mfa.seal(secret, user.user_id)):
        raise errors.MfaUnavailable(_ALREADY_ON)
    uri = mfa.otpauth_uri(secret, user.email)
    audit.record("mfa.setup", "started", call.client, user_id=user.user_id, email_hash=otp.email_key(user.email))
    return Reply(200, MfaSetupResponse(secret=secret, otpauth_uri=uri, qr_svg=mfa.qr_svg(uri)))


def confirm(call: Call[MfaConfirmRequest]) -> Reply:
    body = call.body
    if call.principal is not None:
        return _confirm_signed_in(call, _active(call.principal.user_id))
    if body.mfa_token is not None:
        return _confirm_enrolment(call, body.mfa_token)
    raise errors.Unauthorized()


def _pending_step(user: store.UserItem, code: str) -> int | None:
    if user.mfa_enabled or not user.totp_pending:
        return None
    return mfa.matching_step(mfa.unseal(user.totp_pending, user.user_id), code)


def _enabled(call: Call, user: store.UserItem) -> None:
    mailer.send(mailer.mfa_enabled_notice(user.email))
    audit.record("mfa.enable", "success", call.client, user_id=user.user_id, email_hash=otp.email_key(user.email))
    metrics.add_metric(name="MfaEnabled", unit=MetricUnit.Count, value=1)


def _confirm_signed_in(call: Call[MfaConfirmRequest], user: store.UserItem) -> Reply:
    if user.mfa_enabled:
        raise errors.MfaUnavailable(_ALREADY_ON)
    step = _pending_step(user, call.body.code)
    codes, hashes = mfa.new_recovery_codes(user.user_id)
    # The write holds only while this pending secret is still the one and TOTP still off: of parallel confirmations one wins.
    if step is None or not store.enable_totp(user.user_id, user.totp_pending or "", step, hashes):
        limits.ip_failed(call.client)
        audit.record("mfa.enable", "failure", call.client, user_id=user.user_id)
        raise errors.InvalidMfaCode()
    _enabled(call, user)
    return Reply(200, MfaConfirmResponse(enabled=True, recovery_codes=codes).model_dump(mode="json", exclude_none=True))


def _confirm_enrolment(call: Call[MfaConfirmRequest], token: str) -> Reply:
    admission = limits.ip_guard(call.client)
    key, _, user = _enrolment(call, token, spend_try=True)
    step = _pending_step(user, call.body.code)
    codes, hashes = mfa.new_recovery_codes(user.user_id)
    if step is None or not store.complete_enrollment(key, user.user_id, user.totp_pending or "", step, hashes):
        audit.record("mfa.enable", "failure", call.client, user_id=user.user_id)
        raise errors.InvalidMfaCode()
    limits.ip_passed(admission)
    _enabled(call, user)
    pair = start_session(user, call.issuer, call.client)
    audit.record("login", "success", call.client, user_id=user.user_id, email_hash=otp.email_key(user.email), detail={"method": "mfa_enrolment"})
    metrics.add_metric(name="Logins", unit=MetricUnit.Count, value=1)
    answer = MfaConfirmResponse(
        enabled=True, recovery_codes=codes, user=user.public(), access=pair.access, refresh=pair.refresh, message="Login successful"
    )
    return Reply(200, answer.model_dump(mode="json", exclude_none=True))


# ---- the signed-in user's second factor ------------------------------------------


def status(call: Call) -> Reply:
    assert call.principal is not None
    user = _active(call.principal.user_id)
    left = len(user.recovery_codes or ()) if user.mfa_enabled else 0
    return Reply(200, MfaStatus(totp_enabled=user.mfa_enabled, recovery_codes_left=left, policy=settings().mfa_policy))


def disable(call: Call[MfaChangeRequest]) -> Reply:
    assert call.principal is not None
    user = _active(call.principal.user_id)
    if settings().mfa_policy == "required":
        raise errors.MfaUnavailable("This service requires two-step sign-in: it cannot be turned off.")
    if not user.mfa_enabled:
        raise errors.MfaUnavailable("Two-step sign-in is not on.")
    checked, gate = confirm_password_and_code(user, call.body.password, call.body.code, call, event="mfa.disable")
    if not store.disable_totp(user.user_id, checked.proof):
        raise errors.InvalidMfaCode()
    limits.login_succeeded(gate)
    if checked.method == "recovery_code":
        recovery_code_used(call, user)
    mailer.send(mailer.mfa_disabled_notice(user.email))
    audit.record("mfa.disable", "success", call.client, user_id=user.user_id, email_hash=otp.email_key(user.email), detail={"method": checked.method})
    metrics.add_metric(name="MfaDisabled", unit=MetricUnit.Count, value=1)
    return Reply(200, MfaDisabledResponse(enabled=False))


def regenerate_recovery_codes(call: Call[MfaChangeRequest]) -> Reply:
    assert call.principal is not None
    user = _active(call.principal.user_id)
    if not user.mfa_enabled:
        raise errors.MfaUnavailable("Two-step sign-in is not on.")
    checked, gate = confirm_password_and_code(user, call.body.password, call.body.code, call, event="mfa.recovery_codes")
    codes, hashes = mfa.new_recovery_codes(user.user_id)
    if not store.replace_recovery_codes(user.user_id, checked.proof, hashes):
        raise errors.InvalidMfaCode()
    limits.login_succeeded(gate)
    if checked.method == "recovery_code":
        recovery_code_used(call, user)
    mailer.send(mailer.recovery_codes_replaced_notice(user.email))
    audit.record("mfa.recovery_codes", "replaced", call.client, user_id=user.user_id, email_hash=otp.email_key(user.email))
    return Reply(200, RecoveryCodesResponse(recovery_codes=codes))


# ---- the second step of a login ---------------------------------------------------


def login_mfa(call: Call[LoginMfaRequest]) -> Reply:
    cfg = settings()
    admission = limits.ip_guard(call.client)  # a wrong code is a failure from this IP, like a wrong password
    key = mfa.token_key(call.body.mfa_token)
    item = store.try_mfa_token(key, mfa.LOGIN, cfg.mfa_max_attempts) if key else None
    if key is None or item is None:
        audit.record("login.mfa", "invalid_token", call.client)
        metrics.add_metric(name="MfaFailures", unit=MetricUnit.Count, value=1)
        raise errors.MfaCodeRefused()
    user = store.user_by_id(item.user_id)
    if user is None or not user.is_active or int(user.token_version) != int(item.token_version) or not user.mfa_enabled:
        store.drop_mfa_token(key)
        audit.record("login.mfa", "invalid_token", call.client, user_id=item.user_id)
        raise errors.MfaCodeRefused()
    email_hash = otp.email_key(user.email)
    try:
        gate = limits.login_gate(user.email)  # the account's lockout counts second-step failures too
    except errors.InvalidCredentials:
        audit.record("login.mfa", "locked_out", call.client, user_id=user.user_id, email_hash=email_hash)
        raise errors.MfaCodeRefused() from None
    checked = mfa.check_code(user, call.body.code)
    if checked is None or not store.complete_mfa_login(key, mfa.LOGIN, user.user_id, checked.proof):
        if gate.locks:
            email_work.login_locked(user.email, call.client)
        if int(item.attempts) >= cfg.mfa_max_attempts:
            store.drop_mfa_token(key)
        audit.record("login.mfa", "failure", call.client, user_id=user.user_id, email_hash=email_hash)
        metrics.add_metric(name="MfaFailures", unit=MetricUnit.Count, value=1)
        raise errors.MfaCodeRefused()
    limits.ip_passed(admission)
    limits.login_succeeded(gate)
    if checked.method == "recovery_code":
        recovery_code_used(call, user)
    pair = start_session(user, call.issuer, call.client)
    audit.record("login", "success", call.client, user_id=user.user_id, email_hash=email_hash, detail={"method": f"password+{checked.method}"})
    metrics.add_metric(name="Logins", unit=MetricUnit.Count, value=1)
    return Reply(200, LoginResponse(user=user.public(), access=pair.access, refresh=pair.refresh, message="Login successful"))


def recovery_code_used(call: Call, user: store.UserItem) -> None:
    left = max(0, len(user.recovery_codes or ()) - 1)
    mailer.send(mailer.recovery_code_used_notice(user.email, left))
    audit.record("mfa.recovery_code", "used", call.client, user_id=user.user_id, email_hash=otp.email_key(user.email), detail={"left": str(left)})

"""The signed-in user's own account: profile, password change and deletion."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from carekey import audit, errors, limits, mailer, mfa, otp, passwords, store, tokens
from carekey.api import Call, Reply
from carekey.config import settings
from carekey.flows import email_work
from carekey.observability import metrics
from carekey.schemas import (
    ChangePasswordRequest,
    ChangePasswordResponse,
    DeleteAccountRequest,
    ProfileUpdateRequest,
    SuccessResponse,
)


def _me(call: Call) -> store.UserItem:
    assert call.principal is not None
    user = store.user_by_id(call.principal.user_id)
    if user is None or not user.is_active:
        raise errors.Unauthorized()
    return user


def confirm_password(user: store.UserItem, password: str, call: Call, *, field: str, event: str) -> None:
    """Check the signed-in user's current password before a sensitive change.

    Guarded like a login (same lockout), so a stolen access token cannot
    brute-force it; a wrong password is a field error on `field`.
    """
    refusal = {field: ["The current password is incorrect."]}
    try:
        gate = limits.login_gate(user.email)
    except errors.InvalidCredentials:
        raise errors.FieldErrors(refusal) from None
    if not passwords.verify_password(password, user.password_hash):
        if gate.locks:
            email_work.login_locked(user.email, call.client)
        limits.ip_failed(call.client)
        audit.record(event, "failure", call.client, user_id=user.user_id)
        raise errors.FieldErrors(refusal)
    limits.login_succeeded(gate)


def confirm_password_and_code(
    user: store.UserItem, password: str, code: str, call: Call, *, event: str, field: str = "password", code_field: str | None = None
) -> tuple[mfa.Checked, limits.LoginGate]:
    """Check the current password and a second-factor code, as one attempt
    under the login lockout: either wrong counts as a failure (account and IP),
    and the lock clears only when the caller's write with the code succeeded
    (`limits.login_succeeded(gate)`).  A wrong code is InvalidMfaCode, or a field
    error on `code_field` when given."""
    refusal = {field: ["The current password is incorrect."]}
    try:
        gate = limits.login_gate(user.email)
    except errors.InvalidCredentials:
        raise errors.FieldErrors(refusal) from None
    right = passwords.verify_password(password, user.password_hash)
    checked = mfa.check_code(user, code) if right else None
    if checked is None:
        if gate.locks:
            email_work.login_locked(user.email, call.client)
        limits.ip_failed(call.client)
        audit.record(event, "failure", call.client, user_id=user.user_id, detail={"factor": "password" if not right else "code"})
        if not right:
            raise errors.FieldErrors(refusal)
        if code_field:
            raise errors.FieldErrors({code_field: ["The code is wrong, expired or already used."]})
        raise errors.InvalidMfaCode()
    return checked, gate


def get_profile(call: Call) -> Reply:
    return Reply(200, _me(call).public())


def update_profile(call: Call[ProfileUpdateRequest]) -> Reply:
    assert call.principal is not None
    changes = {name: getattr(call.body, name) for name in call.body.model_fields_set}
    user = store.update_profile(call.principal.user_id, changes)
    if user is None:
        raise errors.Unauthorized()
    if changes:
        audit.record("profile.update", "success", call.client, user_id=call.principal.user_id, detail={"fields": ",".join(sorted(changes))})
    return Reply(200, user.public())


def _renew(call: Call, user_id: str, version: int) -> tuple[str, str]:
    """The next token pair of the caller's session, under the new token version."""
    assert call.principal is not None
    cfg = settings()
    for _ in range(3):  # a refresh of this session may rotate it meanwhile; take the newest
        session = store.session_by_id(call.principal.session_id)
        if session is None or session.revoked or session.user_id != user_id:
            break
        following = tokens.RefreshToken(user_id, session.session_id, int(session.generation) + 1)
        if store.renew_session(session, version, following.digest, cfg.refresh_token_hours * 3600):
            return tokens.issue_access(user_id, session.session_id, version, call.issuer), str(following)
    raise errors.Unauthorized()


def change_password(call: Call[ChangePasswordRequest]) -> Reply:
    body = call.body
    assert call.principal is not None
    user = _me(call)
    passwords.check_new_password(
        body.new_password, body.confirm_password, ("new_password", "confirm_password"), user.email, user.first_name, user.last_name
    )
    if passwords.normalise(body.new_password) == passwords.normalise(body.current_password):
        raise errors.FieldErrors({"new_password": [passwords.SAME_AS_CURRENT]})

    checked = None
    if user.mfa_enabled:
        # Two-step sign-in on: the password alone (a stolen session plus a phished password) is not enough.
        if not body.code:
            raise errors.FieldErrors({"code": ["This field is required: a code from your authenticator app, or a recovery code."]})
        checked, gate = confirm_password_and_code(
            user, body.current_password, body.code, call, event="password_change", field="current_password", code_field="code"
        )
    else:
        confirm_password(user, body.current_password, call, field="current_password", event="password_change")
    version = store.change_password(user, passwords.hash_password(body.new_password), proof=checked.proof if checked else None)
    if version is None:
        if checked is not None:
            raise errors.FieldErrors({"code": ["The code is wrong, expired or already used."]})
        raise errors.FieldErrors({"current_password": ["The password changed meanwhile; sign in again."]})
    if checked is not None:
        limits.login_succeeded(gate)
        if checked.method == "recovery_code":
            from carekey.flows.mfa import recovery_code_used

            recovery_code_used(call, user)

    # Every other session ends (token version bumped); this one carries on with fresh tokens.
    access, refresh = _renew(call, user.user_id, version)
    mailer.send(mailer.password_changed_notice(user.email))
    audit.record("password_change", "success", call.client, user_id=user.user_id, email_hash=otp.email_key(user.email))
    metrics.add_metric(name="PasswordChanges", unit=MetricUnit.Count, value=1)
    return Reply(
        200,
        ChangePasswordResponse(message="Password changed. Other sessions have been signed out.", success=True, access=access, refresh=refresh),
    )


def confirm_password_and_second_factor(user: store.UserItem, password: str, code: str | None, call: Call, *, field: str, event: str) -> None:
    """The checks of a sensitive change: the current password and, where two-step
    sign-in is on, a code as well, used up at once (the same code cannot serve
    twice, also when two requests race).  A missing or refused code is a field
    error on `code`."""
    if not user.mfa_enabled:
        confirm_password(user, password, call, field=field, event=event)
        return
    if not code:
        raise errors.FieldErrors({"code": ["This field is required: a code from your authenticator app, or a recovery code."]})
    checked, gate = confirm_password_and_code(user, password, code, call, event=event, field=field, code_field="code")
    if not store.use_mfa_proof(user.user_id, checked.proof):
        raise errors.FieldErrors({"code": ["The code is wrong, expired or already used."]})
    limits.login_succeeded(gate)
    if checked.method == "recovery_code":
        from carekey.flows.mfa import recovery_code_used

        recovery_code_used(call, user)


def delete_account(call: Call[DeleteAccountRequest]) -> Reply:
    """The person erases their own account (as an operator's erasure does),
    with their password (and second-factor code); the address is told."""
    from carekey.flows import erasure

    user = _me(call)
    confirm_password_and_second_factor(user, call.body.password, call.body.code, call, field="password", event="account.erase")
    if not erasure.erase(user, call.client, event="account.erase", detail={"by": "self"}):
        raise errors.Unauthorized()  # erased meanwhile by a parallel request
    mailer.send(mailer.account_deleted_notice(user.email))
    return Reply(200, SuccessResponse(message="Your account has been deleted.", success=True))

"""Login, token refresh, logout, and the authorizer that guards protected routes.

A session is a refresh-token family: each refresh replaces the family's
current token; presenting any older one (a replay) revokes the whole family.
Sessions end after SESSION_IDLE_MINUTES without a refresh and
SESSION_MAX_HOURS after login, whatever happens (HIPAA automatic logoff).
"""

from __future__ import annotations

import uuid
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from carekey import audit, errors, limits, otp, passwords, store, tokens
from carekey.api import Call, Reply
from carekey.config import settings
from carekey.observability import logger, metrics
from carekey.schemas import LoginRequest, LoginResponse, LogoutRequest, LogoutResponse, RefreshRequest, TokenPair


def start_session(user: store.UserItem) -> TokenPair:
    cfg = settings()
    refresh_jti = uuid.uuid4().hex
    session_id = store.create_session(user.user_id, refresh_jti, cfg.session_max_hours * 3600)
    version = int(user.token_version)
    access, _ = tokens.issue(tokens.ACCESS, user.user_id, session_id, version)
    refresh, _ = tokens.issue(tokens.REFRESH, user.user_id, session_id, version, jti=refresh_jti)
    return TokenPair(access=access, refresh=refresh)


def login(call: Call[LoginRequest]) -> Reply:
    body = call.body
    admission = limits.ip_guard(call.client)
    email_hash = otp.email_key(body.email)
    try:
        gate = limits.login_gate(body.email)
    except errors.InvalidCredentials:
        audit.record("login", "locked_out", call.client, email_hash=email_hash)
        metrics.add_metric(name="LoginLockouts", unit=MetricUnit.Count, value=1)
        raise
    user = store.user_by_email(body.email)
    if user is None:
        passwords.burn_equal_time(body.password)
        right = False
    else:
        right = passwords.verify_password(body.password, user.password_hash)
    if not right:
        limits.login_failed(body.email)
        audit.record("login", "failure", call.client, user_id=user.user_id if user else None, email_hash=email_hash)
        metrics.add_metric(name="LoginFailures", unit=MetricUnit.Count, value=1)
        raise errors.InvalidCredentials()
    assert user is not None
    limits.ip_passed(admission)
    limits.login_succeeded(gate)
    if not user.is_verified:
        audit.record("login", "email_not_verified", call.client, user_id=user.user_id, email_hash=email_hash)
        raise errors.EmailNotVerified(email=user.email, can_resend_otp=True)
    if not user.is_active:
        audit.record("login", "deactivated", call.client, user_id=user.user_id, email_hash=email_hash)
        raise errors.AccountDeactivated()
    if passwords.needs_rehash(user.password_hash):
        store.replace_password_hash(user, passwords.hash_password(body.password))
    pair = start_session(user)
    audit.record("login", "success", call.client, user_id=user.user_id, email_hash=email_hash)
    metrics.add_metric(name="Logins", unit=MetricUnit.Count, value=1)
    return Reply(200, LoginResponse(user=user.public(), access=pair.access, refresh=pair.refresh, message="Login successful"))


def refresh(call: Call[RefreshRequest]) -> Reply:
    cfg = settings()
    claims = tokens.verify(call.body.refresh, tokens.REFRESH)
    user, family = store.user_and_session(claims.user_id, claims.session_id)
    if (
        family is None
        or family.revoked
        or family.user_id != claims.user_id
        or user is None
        or not user.is_active
        or int(user.token_version) != claims.version
    ):
        raise errors.InvalidToken()
    now = store.now()
    new_jti = uuid.uuid4().hex
    if not store.rotate_session(
        claims.session_id,
        claims.jti,
        new_jti,
        idle_cutoff=now - cfg.session_idle_minutes * 60,
        created_after=now - cfg.session_max_hours * 3600,
    ):
        # A replayed (already rotated) token, or an idle or expired session: end the family.
        store.revoke_session(claims.session_id)
        reused = family.current_jti != claims.jti
        audit.record("refresh", "reuse_detected" if reused else "session_expired", call.client, user_id=claims.user_id)
        if reused:
            metrics.add_metric(name="RefreshReuse", unit=MetricUnit.Count, value=1)
        raise errors.InvalidToken()
    access, _ = tokens.issue(tokens.ACCESS, claims.user_id, claims.session_id, claims.version)
    new_refresh, _ = tokens.issue(tokens.REFRESH, claims.user_id, claims.session_id, claims.version, jti=new_jti)
    audit.record("refresh", "success", call.client, user_id=claims.user_id)
    return Reply(200, TokenPair(access=access, refresh=new_refresh))


def logout(call: Call[LogoutRequest]) -> Reply:
    principal = call.principal
    assert principal is not None
    store.revoke_session(principal.session_id)
    if call.body.all:
        store.end_all_sessions(principal.user_id)
    audit.record("logout", "all_sessions" if call.body.all else "this_session", call.client, user_id=principal.user_id)
    return Reply(200, LogoutResponse(message="Logged out", success=True, all=call.body.all))


class Denied(Exception):
    """Raised as "Unauthorized": API Gateway then answers 401 with the template's gateway response."""


def authorize(token_header: str, method_arn: str) -> dict[str, Any]:
    """The Lambda TOKEN authorizer: a valid, unrevoked access token of a live session."""
    cfg = settings()
    scheme, _, token = (token_header or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Denied("Unauthorized")
    try:
        claims = tokens.verify(token.strip(), tokens.ACCESS)
    except errors.InvalidToken:
        raise Denied("Unauthorized") from None
    user, family = store.user_and_session(claims.user_id, claims.session_id)
    if (
        user is None
        or not user.is_active
        or int(user.token_version) != claims.version
        or family is None
        or family.revoked
        or family.user_id != claims.user_id
        or family.created_at < store.now() - cfg.session_max_hours * 3600
    ):
        logger.info("authorizer refused the request", extra={"reason": "revoked_or_inactive"})
        raise Denied("Unauthorized")
    return {
        "principalId": claims.user_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": method_arn}],
        },
        "context": {"user_id": claims.user_id, "session_id": claims.session_id},
    }

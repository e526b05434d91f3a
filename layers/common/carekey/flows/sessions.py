"""Login, token refresh, logout, and the authorizer that guards protected routes.

A session is a chain of refresh tokens: each refresh replaces the current
token with the next.  The token just replaced still answers for
REFRESH_REUSE_SECONDS, with the session's current pair (two tabs refreshing
at once, a client retrying after a lost response); after that, or for any
older token, presenting it is a replay: the session ends and its owner is
told.  Sessions end after SESSION_IDLE_MINUTES without a refresh and
SESSION_MAX_HOURS after login, whatever happens (HIPAA automatic logoff).
A routine refresh reads the account and the session eventually consistent
(half the read units) and stands only if its conditional write finds the
session as read; any other refresh, and every refusal, replay verdict and
audit event, is decided from a strongly consistent read.

What a refresh leaves in the audit trail: a rotation from the address and
agent the session last saw is routine; the session counts it, and one
`refresh` event at most every REFRESH_AUDIT_MINUTES records how many there
were since the session's last audited event (its login or the last such
summary).  A rotation from another source address or agent is recorded at
once, as are a replay and an expiry; a logout or an ended session records
the rotations not yet recorded.  The API access log still has every
request's time and address (docs/audit.md).
"""

from __future__ import annotations

import hmac
import re
import time
from datetime import datetime, timezone
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from carekey import audit, errors, limits, mailer, mfa, otp, passwords, store, tokens
from carekey.api import Call, Client, Reply
from carekey.config import settings, token_issuer
from carekey.flows import email_work
from carekey.observability import logger, metrics
from carekey.schemas import (
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    MfaChallengeResponse,
    MfaEnrollmentResponse,
    RefreshRequest,
    SessionInfo,
    SessionList,
    SuccessResponse,
    TokenPair,
)


def start_session(user: store.UserItem, issuer: str, client: Client) -> TokenPair:
    cfg = settings()
    session_id = store.new_session_id()
    first = tokens.RefreshToken(user.user_id, session_id, 0)
    version = int(user.token_version)
    store.create_session(
        session_id,
        user.user_id,
        version,
        first.digest,
        cfg.session_max_hours * 3600,
        cfg.refresh_token_hours * 3600,
        ip=client.ip,
        user_agent=client.user_agent,
    )
    return TokenPair(access=tokens.issue_access(user.user_id, session_id, version, issuer), refresh=str(first))


def login(call: Call[LoginRequest]) -> Reply:
    started = time.perf_counter()  # a failure answers at a fixed time after this
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
    passwords.prepare_dummy_check()  # an environment's one-off work, before either path's checks
    check = passwords.dummy_check(body.password) if user is None else passwords.check(body.password, user.password_hash)
    if not check.right:
        # The password of a sign-up still waiting for its code: "Email not verified",
        # whether or not the address has an account, so registering and then logging
        # in proves nothing.  Every wrong password pays for this second check too.
        signup = store.pending_signup(email_hash)
        signup_right = False
        if signup is None:
            passwords.dummy_check(body.password)
        else:
            signup_right = passwords.verify_password(body.password, signup.password_hash)
        if signup_right:
            assert signup is not None
            limits.ip_passed(admission)
            limits.login_not_failed(gate)
            audit.record("login", "email_not_verified", call.client, user_id=signup.signup_id, email_hash=email_hash)
            passwords.settle_failure(started)
            raise errors.EmailNotVerified(email=body.email, can_resend_otp=True)
        if gate.locks:
            email_work.login_locked(body.email, call.client)
        audit.record("login", "failure", call.client, user_id=user.user_id if user else None, email_hash=email_hash)
        metrics.add_metric(name="LoginFailures", unit=MetricUnit.Count, value=1)
        # Whatever the account's hash (or none), and whatever the look-up and the failure's
        # own writes cost, the answer leaves at the same time after the request began.
        passwords.settle_failure(started)
        raise errors.InvalidCredentials()
    assert user is not None
    limits.ip_passed(admission)
    if not user.mfa_enabled:
        limits.login_succeeded(gate)
    else:
        # With a second factor, the lockout clears only when that step succeeds (POST /login/mfa);
        # the right password is no failure of the hour all the same.
        limits.login_not_failed(gate)
    if not user.is_verified:  # an account created unverified, before sign-ups were kept apart
        audit.record("login", "email_not_verified", call.client, user_id=user.user_id, email_hash=email_hash)
        raise errors.EmailNotVerified(email=user.email, can_resend_otp=True)
    if not user.is_active:
        audit.record("login", "deactivated", call.client, user_id=user.user_id, email_hash=email_hash)
        raise errors.AccountDeactivated()
    detail = None
    if passwords.needs_rehash(user.password_hash):
        # Conditional on the hash just checked: of parallel first logins one upgrades, the rest find it done.
        upgraded = store.replace_password_hash(user, passwords.hash_password(body.password))
        if upgraded and check.legacy is not None:
            # The migration guide's upgrade counter: imported accounts now on the service's own hash.
            detail = {"legacy_hash_upgraded": check.legacy}
            metrics.add_metric(name="LegacyHashUpgrades", unit=MetricUnit.Count, value=1)
            logger.info("legacy password hash upgraded", extra={"legacy_hash_upgrade": check.legacy})
    if user.mfa_enabled:
        methods = ["totp", "recovery_code"] + (["webauthn"] if int(user.passkey_count or 0) > 0 else [])
        token = mfa.issue_token(user, mfa.LOGIN)
        audit.record("login", "mfa_required", call.client, user_id=user.user_id, email_hash=email_hash)
        return Reply(
            200,
            MfaChallengeResponse(
                mfa_required=True, mfa_token=token, methods=methods, message="Enter the code from your authenticator app, or a recovery code."
            ),
        )
    if settings().mfa_policy == "required":
        token = mfa.issue_token(user, mfa.ENROLL)
        audit.record("login", "mfa_enrollment_required", call.client, user_id=user.user_id, email_hash=email_hash)
        return Reply(
            200,
            MfaEnrollmentResponse(
                mfa_enrollment_required=True, mfa_token=token, message="This service requires two-step sign-in: set up an authenticator app."
            ),
        )
    pair = start_session(user, call.issuer, call.client)
    audit.record("login", "success", call.client, user_id=user.user_id, email_hash=email_hash, detail=detail)
    metrics.add_metric(name="Logins", unit=MetricUnit.Count, value=1)
    return Reply(200, LoginResponse(user=user.public(), access=pair.access, refresh=pair.refresh, message="Login successful"))


def refresh(call: Call[RefreshRequest]) -> Reply:
    presented = tokens.read_refresh(call.body.refresh)
    routine = _routine_rotation(call, presented)
    if routine is not None:
        return routine
    user, session = store.user_and_session(presented.user_id, presented.session_id)
    return _refresh_from(call, presented, user, session)


def _routine_rotation(call: Call[RefreshRequest], presented: tokens.RefreshToken) -> Reply | None:
    """The common refresh for half the read units: the current token of a live
    session, from the address and agent it last saw, with no summary due, read
    eventually consistent and rotated by the same conditional write as always.
    None when anything is not routine or the write's condition fails: then the
    refresh is decided from a strongly consistent read, so a stale read never
    refuses, revokes, reports a replay or audits anything.  The write checks
    the session as it is (generation, digest, revoked, idle, lifetime, and the
    last audited event the routine verdict came from); the account it cannot
    check, so a deactivation or password change less than about a second old
    may be missed here: the tokens minted then are refused by the authorizer
    and by the first refresh that reads the account as it is (README,
    "A routine refresh")."""
    cfg = settings()
    user, session = store.user_and_session(presented.user_id, presented.session_id, consistent=False)
    now = store.now()
    idle, lifetime = cfg.session_idle_minutes * 60, cfg.session_max_hours * 3600
    if (
        session is None
        or session.user_id != presented.user_id
        or session.revoked
        or user is None
        or not user.is_active
        or int(user.token_version) != int(session.token_version)
        or presented.generation != int(session.generation)
        or presented.generation < int(session.floor_generation)
        or not hmac.compare_digest(presented.digest, session.token_hash)
        or not session.live(now, idle, lifetime)
        or _why_audit_rotation(session, call.client, now, cfg.refresh_audit_minutes * 60) is not None
    ):
        return None
    following = presented.next()
    if not _rotate(call, presented, following, now, audited=False, as_read=session):
        return None
    return _pair(following, int(session.token_version), call.issuer)


def _rotate(
    call: Call[RefreshRequest], presented: tokens.RefreshToken, following: tokens.RefreshToken, now: int,
    audited: bool, as_read: store.SessionItem | None = None,
) -> bool:
    """Move the presented token's session on to `following`, by the one conditional write."""
    cfg = settings()
    return store.rotate_session(
        presented.session_id,
        presented.generation,
        presented.digest,
        following.digest,
        cfg.refresh_token_hours * 3600,
        idle_cutoff=now - cfg.session_idle_minutes * 60,
        created_after=now - cfg.session_max_hours * 3600,
        ip=call.client.ip,
        user_agent=call.client.user_agent,
        audited=audited,
        as_read=as_read,
    )


def _refresh_from(
    call: Call[RefreshRequest], presented: tokens.RefreshToken, user: store.UserItem | None, session: store.SessionItem | None
) -> Reply:
    """Every refresh the routine one did not settle, from a strongly consistent
    read of the account and the session."""
    cfg = settings()
    if (
        session is None
        or session.user_id != presented.user_id
        or session.revoked
        or user is None
        or not user.is_active
        or int(user.token_version) != int(session.token_version)
        or presented.generation < int(session.floor_generation)
    ):
        raise errors.InvalidToken()
    now = store.now()
    idle, lifetime = cfg.session_idle_minutes * 60, cfg.session_max_hours * 3600
    if presented.generation == int(session.generation):
        following = presented.next()
        why = _why_audit_rotation(session, call.client, now, cfg.refresh_audit_minutes * 60)
        if _rotate(call, presented, following, now, audited=why is not None):
            if why is not None:
                try:
                    audit.record("refresh", "success", call.client, user_id=user.user_id, detail={**_unaudited(session, 1), "why": why})
                except errors.AuditUnavailable:
                    # The rotation stands (the client's retry gets this pair), its summary does not: count it all again.
                    store.restore_unaudited(session.session_id, int(session.unaudited or 0) + 1, session.audited_at)
                    raise
            return _pair(following, int(session.token_version), call.issuer)
        # Another request rotated this token first, or the session is over: look again.
        session = store.session_by_id(presented.session_id)
        if session is None or session.revoked:
            raise errors.InvalidToken()
    if not session.live(now, idle, lifetime):
        store.revoke_session(session.session_id)
        audit.record("refresh", "session_expired", call.client, user_id=user.user_id, detail=_unaudited(session))
        raise errors.InvalidToken()
    current = tokens.RefreshToken(presented.user_id, presented.session_id, int(session.generation))
    just_replaced = (
        presented.generation == current.generation - 1
        and session.previous_hash == presented.digest
        and now - int(session.rotated_at or 0) < cfg.refresh_reuse_seconds
    )
    if just_replaced and current.digest == session.token_hash:
        # The session goes on: its rotations stay counted for its next summary, so they are named as pending.
        audit.record("refresh", "reused_within_interval", call.client, user_id=user.user_id, detail=_unaudited(session, pending=True))
        return _pair(current, int(session.token_version), call.issuer)
    # A genuine but superseded token: someone holds a copy.  End the session and tell its owner.
    store.revoke_session(session.session_id)
    audit.record("refresh", "reuse_detected", call.client, user_id=user.user_id, detail=_unaudited(session))
    metrics.add_metric(name="RefreshReuse", unit=MetricUnit.Count, value=1)
    mailer.send(mailer.session_ended_notice(user.email))
    raise errors.InvalidToken()


def _why_audit_rotation(session: store.SessionItem, client: Client, now: int, every_seconds: int) -> str | None:
    """Why this rotation goes to the audit trail now, or None when it is routine
    (the session counts it for its next summary)."""
    if store.seen_from(client.ip, client.user_agent) != (session.ip, session.user_agent):
        return "new_address"
    if session.audited_at is None or now - int(session.audited_at) >= every_seconds:
        return "interval"
    return None


def _unaudited(session: store.SessionItem, this_one: int = 0, pending: bool = False) -> dict[str, str]:
    """The session's rotations not yet in the trail (plus `this_one`), and since
    when: `rotations` when this event accounts for them (a summary, or the
    session's end), `pending_rotations` when they stay counted for a later one.
    A session from before rotations were counted had each audited: its count
    starts at its last rotation."""
    since = session.audited_at if session.audited_at is not None else (session.rotated_at or session.created_at)
    return {"pending_rotations" if pending else "rotations": str(int(session.unaudited or 0) + this_one), "since": _iso(int(since))}


def _pair(token: tokens.RefreshToken, version: int, issuer: str) -> Reply:
    access = tokens.issue_access(token.user_id, token.session_id, version, issuer)
    return Reply(200, TokenPair(access=access, refresh=str(token)))


def logout(call: Call[LogoutRequest]) -> Reply:
    principal = call.principal
    assert principal is not None
    ended = store.revoke_session(principal.session_id)
    if call.body.all:
        store.end_all_sessions(principal.user_id)
    audit.record(
        "logout", "all_sessions" if call.body.all else "this_session", call.client, user_id=principal.user_id,
        detail=_unaudited(ended) if ended is not None else None,
    )
    return Reply(200, LogoutResponse(message="Logged out", success=True, all=call.body.all))


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(int(timestamp), tz=timezone.utc).isoformat().replace("+00:00", "Z")


def list_sessions(call: Call) -> Reply:
    """GET /sessions: the caller's live sessions, newest first; `current` marks
    the one the calling access token belongs to."""
    principal = call.principal
    assert principal is not None
    cfg = settings()
    user = store.user_by_id(principal.user_id)
    if user is None or not user.is_active:
        raise errors.Unauthorized()
    now, version = store.now(), int(user.token_version)
    idle, lifetime = cfg.session_idle_minutes * 60, cfg.session_max_hours * 3600
    listed = [
        SessionInfo(
            id=item.session_id,
            created_at=_iso(item.created_at),
            last_used_at=_iso(item.last_used),
            ip=item.ip or None,
            user_agent=item.user_agent or None,
            current=item.session_id == principal.session_id,
        )
        for item in store.sessions_of(user.user_id)
        if int(item.token_version) == version and item.live(now, idle, lifetime)
    ]
    return Reply(200, SessionList(sessions=listed))


# A session id as this service makes them (a UUID); anything else is unknown without a lookup.
_SESSION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NO_SUCH_SESSION = "There is no such session on your account."


def end_session(call: Call) -> Reply:
    """DELETE /sessions/{id}: end one of the caller's own sessions (its refresh
    token and its access tokens stop working at once).  Someone else's session,
    an unknown id and an ended session get the same 404."""
    principal = call.principal
    assert principal is not None
    user = store.user_by_id(principal.user_id)
    if user is None or not user.is_active:
        raise errors.Unauthorized()
    session_id = call.path_params.get("id", "")
    ended = store.end_session(user.user_id, session_id, int(user.token_version)) if _SESSION_ID.match(session_id) else None
    if ended is None:
        raise errors.NotFound(NO_SUCH_SESSION)
    this_one = session_id == principal.session_id
    audit.record("session.end", "this_session" if this_one else "other_session", call.client, user_id=user.user_id, detail=_unaudited(ended))
    return Reply(200, SuccessResponse(message="Session ended.", success=True))


def admit(token_header: str, issuer: str) -> tokens.Claims:
    """A valid, unrevoked access token of a live session, or a refusal:
    Unauthorized when the header holds no bearer token, InvalidToken when the
    token, its session or its account is not good (any more)."""
    cfg = settings()
    scheme, _, token = (token_header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthorized()
    try:
        claims = tokens.verify_access(token.strip(), issuer)
    except errors.InvalidToken:
        logger.info("access refused", extra={"reason": "invalid_token"})
        raise
    user, session = store.user_and_session(claims.user_id, claims.session_id)
    if (
        user is None
        or not user.is_active
        or int(user.token_version) != claims.version
        or session is None
        or session.revoked
        or session.user_id != claims.user_id
        or int(session.created_at) < store.now() - cfg.session_max_hours * 3600
    ):
        logger.info("access refused", extra={"reason": "revoked_or_inactive"})
        raise errors.InvalidToken()
    return claims


def authorize(token_header: str, method_arn: str) -> dict[str, Any]:
    """The Lambda TOKEN authorizer.

    A header that is not a bearer token raises "Unauthorized" (API Gateway's
    UNAUTHORIZED response, as for no header at all); a bearer token that is not
    valid gets a Deny policy (the ACCESS_DENIED response, also a 401, which
    tells clients `invalid_token` / `token_not_valid` so they refresh)."""
    try:
        claims = admit(token_header, _issuer_of(method_arn))
    except errors.Unauthorized:
        raise Denied("Unauthorized") from None
    except errors.InvalidToken:
        return _policy("anonymous", "Deny", method_arn)
    return {**_policy(claims.user_id, "Allow", method_arn), "context": {"user_id": claims.user_id, "session_id": claims.session_id}}


class Denied(Exception):
    """Raised as "Unauthorized": API Gateway then answers 401 with the template's gateway response."""


def _policy(principal: str, effect: str, method_arn: str) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn}],
        },
    }


def _issuer_of(method_arn: str) -> str:
    # arn:aws:execute-api:<region>:<account>:<api id>/<stage>/<method>/<path>
    parts = method_arn.split(":", 5)
    if len(parts) < 6:
        return token_issuer("local", "")
    api_id, _, rest = parts[5].partition("/")
    return token_issuer(api_id, rest.split("/", 1)[0], parts[3])

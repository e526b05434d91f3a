"""The operators' API: look a person up, deactivate and reactivate, unlock,
sign out everywhere, force a password reset, erase, and read one person's
audit trail.

Every route is AWS_IAM-authorized: API Gateway admits only requests signed
(SigV4) by an IAM principal allowed `execute-api:Invoke` on /admin/* (the
stack's AdminPolicy).  Every call, reads included, is audited with that
principal's ARN.  Ending sessions is immediate: the authorizer reads the
account on every request (no cache), so a bumped token version or an
inactive account refuses each access token issued before, at once.
"""

from __future__ import annotations

import re
import secrets

from pydantic import ValidationError

from carekey import audit, errors, limits, otp, passwords, store
from carekey.api import Call, Reply, field_errors
from carekey.config import settings
from carekey.flows import email_work, erasure
from carekey.flows.email_work import EmailJob
from carekey.schemas import AdminActionResponse, AdminUser, AuditEntry, AuditTrailResponse, Email, Request

# Account ids are UUIDs; anything else names nobody (404, before any read).
_USER_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class FindUserQuery(Request):
    email: Email


def _operator(call: Call) -> dict[str, str]:
    assert call.operator is not None  # the API layer refuses operators' routes without one
    return {"operator": call.operator.arn}


def _target(call: Call, event: str) -> store.UserItem:
    """The account the path names, or 404 (audited) for an unknown or malformed id."""
    user_id = call.path_params.get("id", "")
    user = store.user_by_id(user_id) if _USER_ID.match(user_id) else None
    if user is None:
        audit.record(event, "not_found", call.client, detail=_operator(call))
        raise errors.NotFound("There is no user with this id.")
    return user


def mfa_enabled(user: store.UserItem) -> bool:
    """Whether two-step sign-in is on: the account item's own `mfa_enabled`
    (provided by the two-step sign-in model), false where accounts have none."""
    return bool(getattr(user, "mfa_enabled", False))


def _view(user: store.UserItem) -> AdminUser:
    cfg = settings()
    return AdminUser(
        **user.public().model_dump(),
        is_active=bool(user.is_active),
        locked=limits.locked(user.email),
        mfa_enabled=mfa_enabled(user),
        session_count=store.live_session_count(
            user.user_id, int(user.token_version), cfg.session_idle_minutes * 60, cfg.session_max_hours * 3600
        ),
        legacy_id=getattr(user, "legacy_id", None),
    )


def find_user(call: Call) -> Reply:
    try:
        query = FindUserQuery.model_validate({"email": call.query["email"]} if "email" in call.query else {})
    except ValidationError as exc:
        raise field_errors(exc) from None
    email_hash = otp.email_key(query.email)
    user = store.user_by_email(query.email)
    if user is None:
        audit.record("admin.find", "not_found", call.client, email_hash=email_hash, detail=_operator(call))
        raise errors.NotFound("There is no user with this email.")
    audit.record("admin.find", "success", call.client, user_id=user.user_id, email_hash=email_hash, detail=_operator(call))
    return Reply(200, _view(user))


def get_user(call: Call) -> Reply:
    user = _target(call, "admin.view")
    audit.record("admin.view", "success", call.client, user_id=user.user_id, detail=_operator(call))
    return Reply(200, _view(user))


def _done(call: Call, event: str, user_id: str, message: str) -> Reply:
    audit.record(event, "success", call.client, user_id=user_id, detail=_operator(call))
    return Reply(200, AdminActionResponse(message=message, success=True, user_id=user_id))


def _changed(call: Call, event: str, changed: store.UserItem | None, message: str) -> Reply:
    if changed is None:  # erased between the read and the write
        audit.record(event, "not_found", call.client, detail=_operator(call))
        raise errors.NotFound("There is no user with this id.")
    return _done(call, event, changed.user_id, message)


def disable_user(call: Call) -> Reply:
    user = _target(call, "admin.disable")
    return _changed(call, "admin.disable", store.set_active(user.user_id, False), "Account deactivated; every session has ended.")


def enable_user(call: Call) -> Reply:
    user = _target(call, "admin.enable")
    return _changed(call, "admin.enable", store.set_active(user.user_id, True), "Account reactivated.")


def unlock_user(call: Call) -> Reply:
    user = _target(call, "admin.unlock")
    limits.clear_for(user.email)
    return _done(call, "admin.unlock", user.user_id, "Login lockout and code limits cleared.")


def sign_out_user(call: Call) -> Reply:
    user = _target(call, "admin.sign_out")
    return _changed(call, "admin.sign_out", store.end_sessions_of(user.user_id), "Every session has ended.")


def force_password_reset(call: Call) -> Reply:
    """The password stops working (replaced by the hash of a secret nobody
    keeps), every session ends, and a reset code goes out through the usual
    email work (so the person's cooldown, cap and suppression apply)."""
    user = _target(call, "admin.force_password_reset")
    changed = store.retire_password(user.user_id, passwords.hash_password(secrets.token_urlsafe(32)))
    reply = _changed(call, "admin.force_password_reset", changed, "The password no longer works; a reset code was sent.")
    email_work.submit(EmailJob.of(email_work.RESET_CODE, user.email, "admin.force_password_reset.code", call.client))
    return reply


def erase_user(call: Call) -> Reply:
    user = _target(call, "admin.erase")
    if not erasure.erase(user, call.client, event="admin.erase", detail=_operator(call)):
        audit.record("admin.erase", "not_found", call.client, user_id=user.user_id, detail=_operator(call))
        raise errors.NotFound("There is no user with this id.")
    return Reply(200, AdminActionResponse(message="The person was erased.", success=True, user_id=user.user_id))


def audit_trail(call: Call) -> Reply:
    """The person's records of the audit table's hot window (AUDIT_HOT_DAYS):
    those naming their id and, while the account exists, those naming only the
    keyed hash of their address.  An erased person's id still has its trail;
    older records are in the locked archive only (`make audit-export`)."""
    user_id = call.path_params.get("id", "")
    if not _USER_ID.match(user_id):
        audit.record("admin.audit_read", "not_found", call.client, detail=_operator(call))
        raise errors.NotFound("There is no user with this id.")
    user = store.user_by_id(user_id)
    hot_days, since = audit.hot_window()
    records = audit.trail_of(user_id, since) + (audit.trail_of(otp.email_key(user.email), since) if user else [])
    ordered = sorted({int(r["seq"]): r for r in records}.values(), key=lambda r: int(r["seq"]))
    if not ordered and user is None:
        audit.record("admin.audit_read", "not_found", call.client, detail=_operator(call))
        raise errors.NotFound(f"There is no user with this id, and no audit record about it in the last {hot_days} days.")
    audit.record("admin.audit_read", "success", call.client, user_id=user_id, detail=_operator(call))
    entries = [AuditEntry.model_validate(r) for r in ordered]
    return Reply(200, AuditTrailResponse(user_id=user_id, records=entries, hot_days=hot_days, since=since))

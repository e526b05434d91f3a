"""A person's passkeys: listing and removing them (GET /webauthn/credentials,
DELETE /webauthn/credentials/{id}).  Nothing here verifies a ceremony, so this
module and its function never load the WebAuthn library (carekey/flows/passkeys.py
adds passkeys and signs in with them)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from carekey import audit, errors, mailer, otp, store
from carekey.api import Call, Reply
from carekey.schemas import Passkey, PasskeyList, SuccessResponse


def credential_key(credential_id: str) -> str:
    return hashlib.sha256(credential_id.encode("ascii", "replace")).hexdigest()


def _iso(epoch: int | float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc).isoformat().replace("+00:00", "Z")


def public_view(item: store.PasskeyItem) -> Passkey:
    return Passkey(
        id=item.credential_id,
        name=item.name,
        created_at=_iso(item.created_at) or "",
        last_used_at=_iso(item.last_used_at),
        transports=list(item.transports or []),
        backed_up=bool(item.backed_up),
    )


def signed_in_user(call: Call) -> store.UserItem:
    assert call.principal is not None
    user = store.user_by_id(call.principal.user_id)
    if user is None or not user.is_active:
        raise errors.Unauthorized()
    return user


# ---- the signed-in user's passkeys -------------------------------------------------


def list_passkeys(call: Call) -> Reply:
    user = signed_in_user(call)
    items = sorted(store.passkeys_of(user.user_id), key=lambda p: int(p.created_at))
    return Reply(200, PasskeyList(credentials=[public_view(p) for p in items]))


def delete_passkey(call: Call) -> Reply:
    user = signed_in_user(call)
    credential_id = call.path_params.get("id", "")
    if not credential_id or len(credential_id) > 2048 or not credential_id.isascii():
        raise errors.NotFound("There is no such passkey on your account.")
    key = credential_key(credential_id)
    if not store.remove_passkey(user.user_id, key):
        raise errors.NotFound("There is no such passkey on your account.")
    mailer.send(mailer.passkey_removed_notice(user.email))
    audit.record("passkey.remove", "success", call.client, user_id=user.user_id, email_hash=otp.email_key(user.email), detail={"credential": key[:16]})
    return Reply(200, SuccessResponse(message="Passkey removed.", success=True))

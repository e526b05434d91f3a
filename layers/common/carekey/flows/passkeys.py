"""Passkeys (WebAuthn): add one to an account, sign in with one, list and remove them.

The ceremonies are checked by the `webauthn` library (py_webauthn); this module
holds what the library leaves to the relying party:

- Challenges: 32 bytes from `secrets`, stored (as their SHA-256) with the
  ceremony they belong to, used up by one conditional delete, dead after
  WEBAUTHN_CHALLENGE_SECONDS (5 minutes).  The challenge is read back from the
  signed clientDataJSON, so a client sends nothing but the credential.
- Adding a passkey needs the current password: a stolen access token alone
  must not plant a lasting way in.  The owner is emailed, the trail records it.
- Signing in wants user verification (PIN or biometrics), so a passkey alone
  is two factors.  Sign counters must move forward; a counter that goes back
  means a cloned authenticator: refused and audited.
- login/options never looks at accounts: its answer is the same for every
  email, known or not.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import parse_authentication_credential_json, parse_registration_credential_json
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from carekey import audit, errors, limits, mailer, mfa, otp, store
from carekey.api import Call, Reply
from carekey.config import settings
from carekey.flows.account import confirm_password
from carekey.flows.passkey_list import credential_key, public_view, signed_in_user
from carekey.flows.sessions import start_session
from carekey.observability import metrics
from carekey.schemas import (
    LoginResponse,
    PasskeyAdded,
    PasskeyLoginOptionsRequest,
    PasskeyLoginVerifyRequest,
    PasskeyRegisterOptionsRequest,
    PasskeyRegisterVerifyRequest,
)

REGISTER = "webauthn.register"
LOGIN = "webauthn.login"
ALGORITHMS = [COSEAlgorithmIdentifier.ECDSA_SHA_256, COSEAlgorithmIdentifier.EDDSA, COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256]
_MAX_CREDENTIAL_ID_BYTES = 1023  # WebAuthn's own bound


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _challenge_key(challenge: bytes) -> str:
    return f"webauthn#{hashlib.sha256(challenge).hexdigest()}"


def _new_challenge(purpose: str, *, user_id: str | None = None, email_hash: str | None = None) -> bytes:
    challenge = secrets.token_bytes(32)
    store.put_challenge(_challenge_key(challenge), purpose, settings().webauthn_challenge_seconds, user_id=user_id, email_hash=email_hash)
    return challenge


def _signed_challenge(credential: dict[str, Any]) -> bytes:
    """The challenge the authenticator signed over, from clientDataJSON."""
    try:
        client_data = json.loads(_unb64url(credential["response"]["clientDataJSON"]))
        challenge = _unb64url(client_data["challenge"])
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError, binascii.Error) as exc:
        raise errors.PasskeyRejected() from exc
    if not challenge:
        raise errors.PasskeyRejected()
    return challenge


# ---- adding a passkey ------------------------------------------------------------


def register_options(call: Call[PasskeyRegisterOptionsRequest]) -> Reply:
    cfg = settings()
    user = signed_in_user(call)
    confirm_password(user, call.body.password, call, field="password", event="passkey.register")
    existing = store.passkeys_of(user.user_id)
    if len(existing) >= cfg.webauthn_max_passkeys:
        raise errors.PasskeyRejected(f"An account can have at most {cfg.webauthn_max_passkeys} passkeys. Remove one first.")
    challenge = _new_challenge(REGISTER, user_id=user.user_id)
    display = f"{user.first_name} {user.last_name}".strip() or user.email
    options = generate_registration_options(
        rp_id=cfg.webauthn_rp_id,
        rp_name=cfg.service_name,
        user_name=user.email,
        user_id=user.user_id.encode("ascii"),
        user_display_name=display,
        challenge=challenge,
        timeout=cfg.webauthn_challenge_seconds * 1000,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            require_resident_key=True,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=_unb64url(p.credential_id)) for p in existing],
        supported_pub_key_algs=ALGORITHMS,
    )
    return Reply(200, json.loads(options_to_json(options)))


def register_verify(call: Call[PasskeyRegisterVerifyRequest]) -> Reply:
    cfg = settings()
    assert call.principal is not None
    user_id = call.principal.user_id
    credential = call.body.credential
    challenge = _signed_challenge(credential)
    ticket = store.take_challenge(_challenge_key(challenge), REGISTER)
    if ticket is None or ticket.user_id != user_id:
        audit.record("passkey.register", "stale_challenge", call.client, user_id=user_id)
        raise errors.PasskeyRejected("This passkey request has expired or was already used. Start again.")
    try:
        parsed = parse_registration_credential_json(credential)
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=cfg.webauthn_rp_id,
            expected_origin=cfg.allowed_origins,
            require_user_verification=True,
            supported_pub_key_algs=ALGORITHMS,
        )
    except Exception as exc:  # any refusal or parse failure of the library: the client's input
        audit.record("passkey.register", "invalid_response", call.client, user_id=user_id, detail={"reason": type(exc).__name__})
        raise errors.PasskeyRejected() from None
    if len(verified.credential_id) > _MAX_CREDENTIAL_ID_BYTES:
        raise errors.PasskeyRejected()
    user = signed_in_user(call)
    credential_id = _b64url(verified.credential_id)
    item = store.PasskeyItem(
        user_id,
        credential_key(credential_id),
        credential_id=credential_id,
        public_key=_b64url(verified.credential_public_key),
        sign_count=verified.sign_count,
        name=call.body.name or "Passkey",
        transports=[t.value for t in (parsed.response.transports or [])] or None,
        aaguid=verified.aaguid,
        backed_up=verified.credential_backed_up,
        created_at=store.now(),
    )
    try:
        store.add_passkey(item, cfg.webauthn_max_passkeys)
    except store.PasskeyRefused as refused:
        if refused.reason == "duplicate":
            raise errors.PasskeyRejected("This passkey is already on your account.") from None
        raise errors.PasskeyRejected(f"An account can have at most {cfg.webauthn_max_passkeys} passkeys. Remove one first.") from None
    mailer.send(mailer.passkey_added_notice(user.email))
    audit.record(
        "passkey.register", "success", call.client, user_id=user_id, email_hash=otp.email_key(user.email), detail={"credential": item.key[:16]}
    )
    metrics.add_metric(name="PasskeysAdded", unit=MetricUnit.Count, value=1)
    return Reply(201, PasskeyAdded(message="Passkey added.", credential=public_view(item)))


# ---- signing in with a passkey -----------------------------------------------------


def login_options(call: Call[PasskeyLoginOptionsRequest]) -> Reply:
    cfg = settings()
    allowed: list[PublicKeyCredentialDescriptor] | None = None
    if call.body.mfa_token is not None:
        # The second step of a password login: a challenge bound to that account, offering its passkeys.
        key = mfa.token_key(call.body.mfa_token)
        item = store.peek_mfa_token(key, mfa.LOGIN, cfg.mfa_max_attempts) if key else None
        if item is None:
            raise errors.MfaCodeRefused()
        challenge = _new_challenge(LOGIN, user_id=item.user_id)
        allowed = [PublicKeyCredentialDescriptor(id=_unb64url(p.credential_id)) for p in store.passkeys_of(item.user_id)]
    else:
        # No account is read here: the answer cannot depend on whether the email has one.
        email_hash = otp.email_key(call.body.email) if call.body.email else None
        challenge = _new_challenge(LOGIN, email_hash=email_hash)
    options = generate_authentication_options(
        rp_id=cfg.webauthn_rp_id,
        challenge=challenge,
        timeout=cfg.webauthn_challenge_seconds * 1000,
        allow_credentials=allowed,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return Reply(200, json.loads(options_to_json(options)))


def _refuse_login(call: Call, outcome: str, user_id: str | None = None, **detail: str) -> errors.InvalidCredentials:
    # The source IP's failure was counted when `limits.ip_guard` admitted the attempt.
    audit.record("passkey.login", outcome, call.client, user_id=user_id, detail=detail or None)
    metrics.add_metric(name="PasskeyLoginFailures", unit=MetricUnit.Count, value=1)
    return errors.InvalidCredentials("The passkey could not sign you in.")


def login_verify(call: Call[PasskeyLoginVerifyRequest]) -> Reply:
    cfg = settings()
    admission = limits.ip_guard(call.client)
    mfa_key = mfa_item = None
    if call.body.mfa_token is not None:
        # The passkey as the second step of a password login: spend one of the token's tries first.
        mfa_key = mfa.token_key(call.body.mfa_token)
        mfa_item = store.try_mfa_token(mfa_key, mfa.LOGIN, cfg.mfa_max_attempts) if mfa_key else None
        if mfa_item is None:
            raise _refuse_login(call, "invalid_mfa_token")
    credential = call.body.credential
    challenge = _signed_challenge(credential)
    ticket = store.take_challenge(_challenge_key(challenge), LOGIN)
    if ticket is None:
        raise _refuse_login(call, "stale_challenge")
    try:
        parsed = parse_authentication_credential_json(credential)
        user_id = (parsed.response.user_handle or b"").decode("ascii")
    except Exception:  # the library's parse refusals, or a user handle that is not ours
        raise _refuse_login(call, "invalid_response") from None
    passkey = store.passkey(user_id, credential_key(parsed.id)) if user_id else None
    if passkey is None:
        raise _refuse_login(call, "unknown_passkey")
    try:
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=cfg.webauthn_rp_id,
            expected_origin=cfg.allowed_origins,
            credential_public_key=_unb64url(passkey.public_key),
            credential_current_sign_count=0,  # compared below, after the signature holds
            require_user_verification=True,
        )
    except Exception as exc:
        raise _refuse_login(call, "invalid_response", user_id, reason=type(exc).__name__) from None
    stored = int(passkey.sign_count)
    if (verified.new_sign_count or stored) and verified.new_sign_count <= stored:
        # A genuine signature with an old counter: the authenticator was probably cloned.
        metrics.add_metric(name="PasskeySignCountRegressions", unit=MetricUnit.Count, value=1)
        raise _refuse_login(
            call, "sign_count_regression", user_id, credential=passkey.key[:16], stored=str(stored), received=str(verified.new_sign_count)
        )
    if not store.record_passkey_use(passkey, verified.new_sign_count):
        raise _refuse_login(call, "sign_count_race", user_id, credential=passkey.key[:16])
    user = store.user_by_id(user_id)
    if user is None or not user.is_active:
        raise _refuse_login(call, "deactivated", user_id)
    if ticket.email_hash is not None and ticket.email_hash != otp.email_key(user.email):
        raise _refuse_login(call, "other_account", user_id)
    if mfa_item is not None:
        assert mfa_key is not None
        if (
            mfa_item.user_id != user.user_id
            or ticket.user_id != user.user_id
            or int(mfa_item.token_version) != int(user.token_version)
            or not store.take_mfa_token(mfa_key, mfa.LOGIN)
        ):
            limits.login_failure_without_gate(user.email)
            raise _refuse_login(call, "mfa_token_mismatch", user_id)
        limits.clear_login_lock(user.email)
    limits.ip_passed(admission)
    pair = start_session(user, call.issuer, call.client)
    audit.record(
        "login",
        "success",
        call.client,
        user_id=user.user_id,
        email_hash=otp.email_key(user.email),
        detail={"method": "password+passkey" if mfa_item is not None else "passkey"},
    )
    metrics.add_metric(name="Logins", unit=MetricUnit.Count, value=1)
    return Reply(200, LoginResponse(user=user.public(), access=pair.access, refresh=pair.refresh, message="Login successful"))

"""What the API offers, described once: the self-documenting root (GET /) is
built from this list and the request models it names.  Paths and methods must
match template.yaml; a test checks that they do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from carekey import schemas

BODY_ERRORS = (400, 413)


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    description: str
    model: type[BaseModel] | None = None
    auth: bool = False
    operator: bool = False  # AWS_IAM: a SigV4-signed request of an IAM principal holding AdminPolicy
    example: dict[str, Any] = field(default_factory=dict)
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    media_type: str = "application/json"
    tag: str = "auth"
    bearer_optional: bool = False  # a bearer token, or another credential in the body (no gateway authorizer)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("documentation", "GET", "/", "This API documentation", response=schemas.ApiDocumentation, tag="documentation"),
    Endpoint(
        "register", "POST", "/register", "Register a new user and send a verification code", schemas.RegisterRequest,
        example={"email": "user@example.com", "first_name": "John", "last_name": "Doe", "phone_number": "+1234567890",
                 "password": "correct horse battery", "password2": "correct horse battery"},
        response=schemas.RegisterResponse, status=201, errors=(*BODY_ERRORS, 429, 503),
    ),
    Endpoint("verify_otp", "POST", "/verify-otp", "Verify an email address with its code", schemas.VerifyOtpRequest,
             example={"email": "user@example.com", "otp": "123456"}, response=schemas.VerifiedResponse, errors=(*BODY_ERRORS, 429, 503)),
    Endpoint("resend_otp", "POST", "/resend-otp", "Send a new code for email verification or password reset",
             schemas.ResendOtpRequest, example={"email": "user@example.com", "context": "registration"},
             response=schemas.ResendOtpResponse, errors=(*BODY_ERRORS, 429)),
    Endpoint("login", "POST", "/login", "Authenticate and receive JWT access and refresh tokens", schemas.LoginRequest,
             example={"email": "user@example.com", "password": "correct horse battery"},
             response=schemas.LoginAnswer, errors=(*BODY_ERRORS, 401, 403, 429)),
    Endpoint("login_mfa", "POST", "/login/mfa", "The second step of a login: an authenticator code or a recovery code",
             schemas.LoginMfaRequest, example={"mfa_token": "mfa_...", "code": "123456"},
             response=schemas.LoginResponse, errors=(*BODY_ERRORS, 401, 429, 503), tag="two-step sign-in"),
    Endpoint("mfa_status", "GET", "/mfa", "Whether two-step sign-in is on, and how many recovery codes are left",
             auth=True, response=schemas.MfaStatus, errors=(401,), tag="two-step sign-in"),
    Endpoint("mfa_totp_setup", "POST", "/mfa/totp/setup",
             "Start setting up an authenticator app: a new secret, its otpauth URI and QR code (needs the current password)",
             schemas.MfaSetupRequest, bearer_optional=True, example={"password": "correct horse battery"},
             response=schemas.MfaSetupResponse, errors=(*BODY_ERRORS, 401), tag="two-step sign-in"),
    Endpoint("mfa_totp_confirm", "POST", "/mfa/totp/confirm",
             "Turn two-step sign-in on with a first code from the app: 10 recovery codes, shown once",
             schemas.MfaConfirmRequest, bearer_optional=True, example={"code": "123456"},
             response=schemas.MfaConfirmResponse, errors=(*BODY_ERRORS, 401, 429, 503), tag="two-step sign-in"),
    Endpoint("mfa_totp_disable", "POST", "/mfa/totp/disable", "Turn two-step sign-in off (password and a code); the owner is emailed",
             schemas.MfaChangeRequest, auth=True, example={"password": "correct horse battery", "code": "123456"},
             response=schemas.MfaDisabledResponse, errors=(*BODY_ERRORS, 401), tag="two-step sign-in"),
    Endpoint("mfa_recovery_codes", "POST", "/mfa/recovery-codes",
             "Make 10 new recovery codes (password and a code); the old ones stop working",
             schemas.MfaChangeRequest, auth=True, example={"password": "correct horse battery", "code": "123456"},
             response=schemas.RecoveryCodesResponse, errors=(*BODY_ERRORS, 401), tag="two-step sign-in"),
    Endpoint("forgot_password", "POST", "/forgot-password", "Start a password reset: a code is emailed",
             schemas.EmailOnlyRequest, example={"email": "user@example.com"},
             response=schemas.ForgotPasswordResponse, errors=(*BODY_ERRORS, 429)),
    Endpoint("verify_password_reset_otp", "POST", "/verify-password-reset-otp", "Check a password reset code",
             schemas.VerifyResetOtpRequest, example={"email": "user@example.com", "otp": "123456"},
             response=schemas.VerifyResetResponse, errors=(*BODY_ERRORS, 429)),
    Endpoint("reset_password", "POST", "/reset-password", "Set a new password with the reset code (uses the code up)",
             schemas.ResetPasswordRequest,
             example={"email": "user@example.com", "otp": "123456", "new_password": "a new long passphrase",
                      "confirm_password": "a new long passphrase"},
             response=schemas.SuccessResponse, errors=(*BODY_ERRORS, 429, 503)),
    Endpoint("resend_password_reset_otp", "POST", "/resend-password-reset-otp", "Send a new password reset code",
             schemas.EmailOnlyRequest, example={"email": "user@example.com"},
             response=schemas.ResendResetResponse, errors=(*BODY_ERRORS, 429)),
    Endpoint("token_refresh", "POST", "/token/refresh", "Exchange a refresh token for a new access and refresh token",
             schemas.RefreshRequest, example={"refresh": "your_refresh_token_here"},
             response=schemas.TokenPair, errors=(*BODY_ERRORS, 401)),
    Endpoint("profile", "GET", "/profile", "The signed-in user's profile", auth=True, response=schemas.User, errors=(401,)),
    Endpoint("update_profile", "PUT", "/profile", "Update first_name, last_name or phone_number",
             schemas.ProfileUpdateRequest, auth=True, example={"first_name": "Jane"},
             response=schemas.User, errors=(*BODY_ERRORS, 401)),
    Endpoint("me", "GET", "/me", "The signed-in user", auth=True, response=schemas.User, errors=(401,)),
    Endpoint("logout", "POST", "/logout", "End this session, or every session with {\"all\": true}",
             schemas.LogoutRequest, auth=True, example={"all": False}, response=schemas.LogoutResponse, errors=(*BODY_ERRORS, 401)),
    Endpoint("change_password", "POST", "/change-password", "Change the password; other sessions end",
             schemas.ChangePasswordRequest, auth=True,
             example={"current_password": "correct horse battery", "new_password": "a new long passphrase",
                      "confirm_password": "a new long passphrase"},
             response=schemas.ChangePasswordResponse, errors=(*BODY_ERRORS, 401)),
    Endpoint("delete_account", "DELETE", "/profile", "Delete your own account (password, and the second-factor code when it is on)",
             schemas.DeleteAccountRequest, auth=True, example={"password": "correct horse battery"},
             response=schemas.SuccessResponse, errors=(*BODY_ERRORS, 401, 503)),
    Endpoint("sessions", "GET", "/sessions", "The signed-in user's live sessions; `current` marks this one", auth=True,
             response=schemas.SessionList, errors=(401,)),
    Endpoint("session_delete", "DELETE", "/sessions/{id}", "End one of your sessions (its tokens stop working)",
             auth=True, response=schemas.SuccessResponse, errors=(401, 404)),
    Endpoint("change_email", "POST", "/change-email", "Start an email change: a code is sent to the new address",
             schemas.ChangeEmailRequest, auth=True, example={"password": "correct horse battery", "new_email": "new@example.com"},
             response=schemas.ChangeEmailResponse, errors=(*BODY_ERRORS, 401, 429, 503)),
    Endpoint("change_email_verify", "POST", "/change-email/verify", "Finish an email change with the code; other sessions end",
             schemas.ChangeEmailVerifyRequest, auth=True, example={"otp": "123456"},
             response=schemas.ChangeEmailVerifiedResponse, errors=(*BODY_ERRORS, 401, 429, 503)),
    Endpoint("webauthn_register_options", "POST", "/webauthn/register/options",
             "Start adding a passkey: creation options for navigator.credentials.create() (needs the current password)",
             schemas.PasskeyRegisterOptionsRequest, auth=True, example={"password": "correct horse battery"},
             response=schemas.PasskeyCreationOptions, errors=(*BODY_ERRORS, 401), tag="passkeys"),
    Endpoint("webauthn_register_verify", "POST", "/webauthn/register/verify",
             "Finish adding a passkey with the browser's credential; the owner is emailed",
             schemas.PasskeyRegisterVerifyRequest, auth=True,
             example={"name": "Laptop", "credential": {"id": "...", "rawId": "...", "type": "public-key",
                                                       "response": {"clientDataJSON": "...", "attestationObject": "..."}}},
             response=schemas.PasskeyAdded, status=201, errors=(*BODY_ERRORS, 401), tag="passkeys"),
    Endpoint("webauthn_login_options", "POST", "/webauthn/login/options",
             "Start signing in with a passkey: request options for navigator.credentials.get() (the same for every email)",
             schemas.PasskeyLoginOptionsRequest, example={"email": "user@example.com"},
             response=schemas.PasskeyRequestOptions, errors=(*BODY_ERRORS, 401), tag="passkeys"),
    Endpoint("webauthn_login_verify", "POST", "/webauthn/login/verify",
             "Sign in with the browser's passkey assertion: access and refresh tokens",
             schemas.PasskeyLoginVerifyRequest,
             example={"credential": {"id": "...", "rawId": "...", "type": "public-key",
                                     "response": {"clientDataJSON": "...", "authenticatorData": "...", "signature": "...",
                                                  "userHandle": "..."}}},
             response=schemas.LoginResponse, errors=(*BODY_ERRORS, 401, 429), tag="passkeys"),
    Endpoint("webauthn_credentials", "GET", "/webauthn/credentials", "The signed-in user's passkeys", auth=True,
             response=schemas.PasskeyList, errors=(401,), tag="passkeys"),
    Endpoint("webauthn_credential_delete", "DELETE", "/webauthn/credentials/{id}", "Remove one of your passkeys; the owner is emailed",
             auth=True, response=schemas.SuccessResponse, errors=(401, 404), tag="passkeys"),
    Endpoint("admin_find_user", "GET", "/admin/users", "Operators: find a person by email (?email=)", operator=True,
             response=schemas.AdminUser, errors=(400, 403, 404), tag="operators"),
    Endpoint("admin_get_user", "GET", "/admin/users/{id}", "Operators: a person and their account's state", operator=True,
             response=schemas.AdminUser, errors=(403, 404), tag="operators"),
    Endpoint("admin_erase_user", "DELETE", "/admin/users/{id}", "Operators: erase a person", operator=True,
             response=schemas.AdminActionResponse, errors=(403, 404, 503), tag="operators"),
    Endpoint("admin_disable_user", "POST", "/admin/users/{id}/disable", "Operators: deactivate an account and end every session",
             operator=True, response=schemas.AdminActionResponse, errors=(403, 404), tag="operators"),
    Endpoint("admin_enable_user", "POST", "/admin/users/{id}/enable", "Operators: reactivate an account", operator=True,
             response=schemas.AdminActionResponse, errors=(403, 404), tag="operators"),
    Endpoint("admin_unlock_user", "POST", "/admin/users/{id}/unlock", "Operators: clear the login lockout and code limits",
             operator=True, response=schemas.AdminActionResponse, errors=(403, 404), tag="operators"),
    Endpoint("admin_sign_out_user", "POST", "/admin/users/{id}/sign-out", "Operators: end every session of an account",
             operator=True, response=schemas.AdminActionResponse, errors=(403, 404), tag="operators"),
    Endpoint("admin_force_password_reset", "POST", "/admin/users/{id}/force-password-reset",
             "Operators: void the password, end every session, email a reset code", operator=True,
             response=schemas.AdminActionResponse, errors=(403, 404), tag="operators"),
    Endpoint("admin_audit_trail", "GET", "/admin/users/{id}/audit", "Operators: one person's audit trail", operator=True,
             response=schemas.AuditTrailResponse, errors=(403, 404), tag="operators"),
    Endpoint("ui", "GET", "/ui", "The hosted sign-in page: sign-up, codes, sign-in with a password or a passkey, profile, passkeys",
             media_type="text/html", tag="sign-in page"),
    Endpoint("ui_asset", "GET", "/ui/{asset}", "The sign-in page's script and stylesheet (served here, no CDN)",
             errors=(404,), media_type="application/javascript,text/css", tag="sign-in page"),
    Endpoint("jwks", "GET", "/.well-known/jwks.json", "Public keys that verify this service's tokens (ES256)",
             response=schemas.Jwks, tag="documentation"),
    Endpoint("openid_configuration", "GET", "/.well-known/openid-configuration",
             "Discovery: the issuer, the JWKS URL and the token endpoint", response=schemas.ServerMetadata, tag="documentation"),
    Endpoint("openapi", "GET", "/openapi.json", "This API as an OpenAPI 3.1 document", tag="documentation"),
    Endpoint("docs", "GET", "/docs", "The API documentation page", media_type="text/html", tag="documentation"),
    Endpoint("docs_asset", "GET", "/docs/{asset}", "Scripts and styles of the documentation page (served here, no CDN)",
             errors=(404,), media_type="application/javascript,text/css", tag="documentation"),
)


# The longer story of each operation, for the OpenAPI document (its `description`).
DETAILS: dict[str, str] = {
    "documentation": "The legacy self-documenting root: every endpoint with its fields and an example, the flows, "
    "the limits in force and the error formats.",
    "register": "Creates an unverified account and emails a 6-digit code. An address that already has an account "
    "gets the same answer (and its owner a notice), so the response never reveals who is registered. "
    "Field errors name the field; weak, common or breached passwords are refused with the reason.",
    "verify_otp": "Marks the email verified and uses the code up. A wrong, expired, unknown or already used code all "
    "get the same 400; after a few wrong tries the code is dead.",
    "resend_otp": "Sends a fresh code (the previous one stops working), subject to a cooldown and an hourly cap per "
    "address. The answer is the same whether or not the address has an account.",
    "login": "Checks the password and starts a session: an RFC 9068 access token (ES256, typ at+jwt) and an opaque "
    "refresh token. Repeated failures lock the account for a growing time; a locked account gets the same 401 as a "
    "wrong password. 403 only after the right password (unverified or deactivated account). With two-step sign-in "
    "on, the right password answers {mfa_required, mfa_token, methods} and no tokens: POST /login/mfa (or a passkey) "
    "finishes the login. Under MFA_POLICY=required an account without a second factor answers "
    "{mfa_enrollment_required, mfa_token}, a token good only for /mfa/totp/setup and /mfa/totp/confirm.",
    "login_mfa": "Finishes a login that answered mfa_required: the mfa_token (5 minutes, single use, 5 tries, never "
    "a bearer token) and a 6-digit TOTP code (RFC 6238, SHA-1, 30 s, one step of drift) or a recovery code. A code "
    "works once: the same code, or one of an earlier time step, is refused, also under parallel requests. Failures "
    "count toward the account lockout and the per-IP limit; every refusal is the same 401. A recovery code used "
    "here emails the owner.",
    "mfa_status": "Whether an authenticator app is set up, how many recovery codes are left and the policy. Never the secret.",
    "mfa_totp_setup": "With a bearer token and the current password, or with the enrolment token of a login under "
    "MFA_POLICY=required: a new pending TOTP secret (encrypted under the KMS key at rest, shown only here), its "
    "otpauth:// URI with issuer and account, and the URI as an SVG QR code. Calling again replaces the pending "
    "secret. 400 when the password is wrong or two-step sign-in is already on.",
    "mfa_totp_confirm": "The first code from the app turns two-step sign-in on and answers 10 recovery codes (60 bits "
    "each, stored as keyed hashes, single use), shown only here. With an enrolment token, the session starts too: the "
    "answer adds user, access and refresh. 400 Invalid or expired code otherwise.",
    "mfa_totp_disable": "Needs the current password and a code (TOTP or recovery code); both count toward the lockout. "
    "Refused under MFA_POLICY=required. The owner is emailed and the trail records it.",
    "mfa_recovery_codes": "Needs the current password and a code. The 10 new codes replace the old ones at once; the "
    "owner is emailed and the trail records it.",
    "forgot_password": "Emails a password reset code if the address has an account; the answer is the same either way.",
    "verify_password_reset_otp": "Checks a reset code without using it up, so an app can ask for the new password "
    "only once the code is known to be right.",
    "reset_password": "Sets the new password with the reset code, uses the code up and ends every session of the account.",
    "resend_password_reset_otp": "Sends a fresh reset code, subject to the same cooldown and cap as the first one.",
    "token_refresh": "Rotates the refresh token: the answer holds a new access token and a new refresh token. The token "
    "just replaced still returns the session's current pair for REFRESH_REUSE_SECONDS (parallel tabs, a retried "
    "request); presenting it later, or any older token, ends the session and emails its owner.",
    "profile": "The signed-in user, from a valid access token of a live session.",
    "update_profile": "Changes only the fields sent; first_name and last_name may not be null, an empty phone_number "
    "removes it.",
    "me": "The signed-in user (the same body as GET /profile).",
    "logout": "Ends this session at once (its access and refresh tokens stop working), or every session of the "
    "account with {\"all\": true}.",
    "change_password": "Needs the current password (guarded like a login), and with two-step sign-in on a `code` "
    "too (TOTP or recovery code). Every other session ends; this one goes on "
    "with the new token pair in the answer, and the owner is emailed.",
    "delete_account": "Erases the signed-in person's account as an operator's erasure does: the account, its address "
    "(free to register again, as a new person), every session and token, passkeys, second-factor secrets and pending "
    "codes. Needs the current password (guarded like a login) and, when two-step sign-in is on, its code. The "
    "address is emailed a notice. The audit trail keeps only ids and keyed hashes.",
    "admin_find_user": "AWS_IAM: sign the request (SigV4, service execute-api) with credentials holding the stack's "
    "AdminPolicy. The person with this email: public fields, is_active, locked, mfa_enabled, session_count, "
    "legacy_id. 404 when no account has it. Audited with the caller's IAM ARN, as every operators' call is.",
    "admin_get_user": "AWS_IAM. The person with this id (a UUID; anything else is a 404).",
    "admin_erase_user": "AWS_IAM. Erases the person: the account (email, names, phone, password, second-factor "
    "secrets), the claim on the address (which can then register again, as a new person), every session and token, "
    "passkeys and pending codes. The audit trail keeps only ids and keyed hashes. Of parallel erasures one "
    "succeeds; the others get 404.",
    "admin_disable_user": "AWS_IAM. Deactivates the account; every session and every access token stops working at "
    "once (the token version moves on), and a login with the right password answers 403 Account deactivated.",
    "admin_enable_user": "AWS_IAM. Reactivates the account. Sessions ended by the deactivation stay ended.",
    "admin_unlock_user": "AWS_IAM. Clears the login lockout and the hourly failure count, the email cooldowns and "
    "hourly cap of the address, and gives pending codes their tries back.",
    "admin_sign_out_user": "AWS_IAM. Ends every session and access token of the account at once.",
    "admin_force_password_reset": "AWS_IAM. The password stops working (replaced by a hash of a secret nobody "
    "keeps), every session ends, and a password reset code is emailed through the usual email queue (its cooldown, "
    "hourly cap and suppression list apply; a deactivated account gets none).",
    "admin_audit_trail": "AWS_IAM. Every audit record about the person (their id, and the keyed hash of their "
    "address while the account exists) of the last AuditHotDays (default 90; `hot_days` and `since` say which), "
    "oldest first: the audit table keeps that window, the locked archive every record for six years (`make "
    "audit-export`). An id with no account and no record in the window is 404. The one function allowed to read "
    "the audit table.",
    "sessions": "The signed-in user's live sessions, newest first: when each signed in, when it was last used (its "
    "latest sign-in or token refresh), from which address and user agent, and which one is asking. Ids are opaque; "
    "never a token.",
    "session_delete": "Ends one of the signed-in user's sessions at once: its refresh token and its access tokens stop "
    "working. Another user's session, an unknown id and an ended session all get the same 404.",
    "change_email": "Needs the current password (guarded like a login). The new address gets a 6-digit code; the "
    "answer is the same, after the same work, whether or not the new address has an account (if it has, its owner "
    "gets a notice instead of a code). A later request replaces the code.",
    "change_email_verify": "Uses the code up and, in one transaction, frees the old address, claims the new one and "
    "ends every other session; this one goes on with the new token pair in the answer, and the old address is told. "
    "A wrong, expired or used code is a 400; after a few wrong tries the code is dead. If the new address was "
    "claimed meanwhile, nothing changes (400 `Email not changed`).",
    "webauthn_register_options": "Needs a signed-in session and the current password. Answers the options for "
    "navigator.credentials.create(): a single-use challenge that dies after WEBAUTHN_CHALLENGE_SECONDS, a discoverable "
    "credential with user verification required, and the account's passkeys to exclude.",
    "webauthn_register_verify": "Checks the browser's attestation against the challenge, the origin and the relying "
    "party, stores the new passkey under the given name, and emails the owner.",
    "webauthn_login_options": "Answers the options for navigator.credentials.get(). It reads no account, so the answer "
    "is the same for every email (or none): it reveals nothing about who is registered. With the mfa_token of a "
    "password login whose methods include webauthn, the challenge is bound to that account and lists its passkeys.",
    "webauthn_login_verify": "Checks the assertion (signature, challenge, origin, user verification, sign counter) and "
    "starts a session like POST /login. A sign counter that goes backwards is refused and audited. With the mfa_token "
    "of a password login, the passkey is that login's second step: it must be the account's, and the token is used up.",
    "webauthn_credentials": "The signed-in user's passkeys: name, when added, when last used. Never a key.",
    "webauthn_credential_delete": "Removes one of the signed-in user's passkeys; another user's passkey id is a 404. "
    "The owner is emailed.",
    "ui": "A page for people, served by the service: sign-up with the emailed code, sign-in with a password or a "
    "passkey, profile, sessions, email change, passkeys, password change and reset, sign-out. Tokens stay in the page's memory; its "
    "Content-Security-Policy allows only its own script and style. See docs/ui.md.",
    "ui_asset": "The sign-in page's script and stylesheet, shipped with the service (no CDN, no build step).",
    "jwks": "The public keys (JWKS) that verify access tokens: the current signing key and, while a key rotates, the "
    "previous one. Cacheable for five minutes.",
    "openid_configuration": "Discovery for resource servers: `issuer` (exactly the tokens' `iss`), `jwks_uri`, the "
    "token endpoint and the signing algorithm. See docs/resource-servers.md.",
    "openapi": "This document, generated from the same models the service validates requests with.",
    "docs": "An interactive page over this document, served by the service itself with a strict Content-Security-Policy.",
    "docs_asset": "The documentation page's script and stylesheet, shipped with the service (no CDN).",
}


def details_of(endpoint: Endpoint) -> str:
    return DETAILS.get(endpoint.name) or endpoint.description


def fields_of(model: type[BaseModel] | None) -> tuple[list[str], list[str]]:
    if model is None:
        return [], []
    required = [n for n, f in model.model_fields.items() if f.is_required()]
    optional = [n for n, f in model.model_fields.items() if not f.is_required()]
    return required, optional

"""Request models: the typed shape of every body the API accepts.

Strings are strict (a number is not a string), free of control characters and
bounded in length; emails are validated and canonicalised (`normalise_email`:
NFKC, trimmed, IDNA for the domain, lower-cased), or refused with a 400.
Unknown fields are ignored, as the legacy API did.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, StrictBool, StrictStr, field_validator


def _no_control_chars(value: str) -> str:
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError("Control characters are not allowed.")
    return value


def normalise_email(value: str) -> str:
    """The one canonical spelling of a mailbox, which is stored and from which
    every key (account, sign-up, codes, limits, audit) is derived: NFKC (so
    full-width and other compatibility forms become the plain characters),
    trimmed, the domain in its IDNA ASCII form (punycode, UTS #46 mapping),
    all lower-case.  ValueError when the domain has no IDNA form.

    An address already canonical (every stored one: lower-case ASCII) comes
    back unchanged; an ASCII domain is only lower-cased."""
    value = unicodedata.normalize("NFKC", value).strip()
    local, at, domain = value.rpartition("@")
    if not at:
        return value.lower()  # not an address: validation (or a failed login) answers it
    if not domain.isascii():
        import idna  # only a Unicode domain pays for the import

        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise ValueError("Enter a valid email address.") from exc
    return f"{local.lower()}@{domain.lower()}"


def _valid_email(value: str) -> str:
    # Imported here: only the functions that take a new email pay for it at cold start.
    from email_validator import EmailNotValidError, validate_email

    value = normalise_email(value)
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError("Enter a valid email address.") from exc
    return value


def _trimmed(value: str) -> str:
    return value.strip()


# Documents the control-character rule in the OpenAPI schema; _no_control_chars enforces it.
_PRINTABLE = {"pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"}

Email = Annotated[
    StrictStr,
    Field(max_length=254, json_schema_extra={"format": "email", **_PRINTABLE}),
    AfterValidator(_no_control_chars),
    AfterValidator(_valid_email),
]
# Login accepts anything email-like: a malformed address simply does not match an account.
# Only a domain without an IDNA form is refused (400), as it has no canonical spelling.
LoginEmail = Annotated[
    StrictStr, Field(max_length=320, json_schema_extra=_PRINTABLE), AfterValidator(_no_control_chars), AfterValidator(normalise_email)
]
Name = Annotated[
    StrictStr, Field(max_length=150, json_schema_extra=_PRINTABLE), AfterValidator(_no_control_chars), AfterValidator(_trimmed)
]
Phone = Annotated[
    StrictStr,
    AfterValidator(_trimmed),
    Field(max_length=20, pattern=r"^$|^\+?[0-9]{7,15}$"),
]
# Length rules for passwords live in carekey.passwords (configurable); this bound only
# keeps absurd inputs out before any work is done.
Password = Annotated[StrictStr, Field(max_length=4096, json_schema_extra=_PRINTABLE), AfterValidator(_no_control_chars)]
Otp = Annotated[
    StrictStr, Field(max_length=64, json_schema_extra=_PRINTABLE), AfterValidator(_no_control_chars), AfterValidator(_trimmed)
]
Token = Annotated[StrictStr, Field(max_length=4096, json_schema_extra=_PRINTABLE), AfterValidator(_no_control_chars)]


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False, defer_build=True)


class RegisterRequest(Request):
    email: Email
    first_name: Name = ""
    last_name: Name = ""
    phone_number: Phone | None = None
    password: Password
    password2: Password


class VerifyOtpRequest(Request):
    email: Email
    otp: Otp


class ResendOtpRequest(Request):
    email: Email
    context: Literal["registration", "password_reset"] = "registration"


class LoginRequest(Request):
    email: LoginEmail
    password: Password


class EmailOnlyRequest(Request):
    email: Email


class VerifyResetOtpRequest(Request):
    email: Email
    otp: Otp


class ResetPasswordRequest(Request):
    email: Email
    otp: Otp
    new_password: Password
    confirm_password: Password


class RefreshRequest(Request):
    refresh: Token


class LogoutRequest(Request):
    refresh: Token | None = None
    all: StrictBool = False


class ChangePasswordRequest(Request):
    current_password: Password
    new_password: Password
    confirm_password: Password
    code: Otp | None = Field(None, description="With two-step sign-in on: a code from the authenticator app, or a recovery code")


# ---- two-step sign-in (TOTP and recovery codes) ----

MfaToken = Annotated[
    StrictStr,
    Field(max_length=4096, json_schema_extra=_PRINTABLE, description="The mfa_token a login answered with (5 minutes, single use)"),
    AfterValidator(_no_control_chars),
]
MfaCode = Annotated[
    StrictStr,
    Field(max_length=64, json_schema_extra=_PRINTABLE, description="A 6-digit code from the authenticator app, or a recovery code"),
    AfterValidator(_no_control_chars),
    AfterValidator(_trimmed),
]


class MfaSetupRequest(Request):
    password: Password | None = Field(None, description="The current password (signed in with a bearer token)")
    mfa_token: MfaToken | None = Field(None, description="Instead of a bearer token: the enrolment token of a login under MFA_POLICY=required")


class MfaConfirmRequest(Request):
    code: MfaCode
    mfa_token: MfaToken | None = Field(None, description="Instead of a bearer token: the enrolment token of a login under MFA_POLICY=required")


class MfaChangeRequest(Request):
    password: Password
    code: MfaCode


class LoginMfaRequest(Request):
    mfa_token: MfaToken
    code: MfaCode


class ChangeEmailRequest(Request):
    password: Password = Field(description="The current password")
    new_email: Email
    code: Otp | None = Field(None, description="A second-factor code, for accounts that have one")


class ChangeEmailVerifyRequest(Request):
    otp: Otp = Field(description="The code sent to the new address")


# A PublicKeyCredential as JSON (id, rawId, type, response{...}); the WebAuthn
# library checks its structure, the body size limit bounds it.
WebAuthnCredential = Annotated[
    dict[str, Any],
    Field(
        json_schema_extra={
            "description": "The PublicKeyCredential from navigator.credentials.create() or .get(), as JSON (base64url fields)",
            "properties": {
                "id": {"type": "string"},
                "rawId": {"type": "string"},
                "type": {"type": "string"},
                "response": {"type": "object"},
            },
            "required": ["id", "rawId", "type", "response"],
        }
    ),
]
PasskeyName = Annotated[
    StrictStr, Field(max_length=64, json_schema_extra=_PRINTABLE), AfterValidator(_no_control_chars), AfterValidator(_trimmed)
]


class PasskeyRegisterOptionsRequest(Request):
    password: Password = Field(description="The current password: adding a way to sign in needs it")


class PasskeyRegisterVerifyRequest(Request):
    credential: WebAuthnCredential
    name: PasskeyName = ""


class PasskeyLoginOptionsRequest(Request):
    email: LoginEmail | None = Field(None, description="Optional: the passkey must then belong to this email's account")
    mfa_token: MfaToken | None = Field(None, description="Optional: the second step of a password login (methods listed webauthn)")


class PasskeyLoginVerifyRequest(Request):
    credential: WebAuthnCredential
    mfa_token: MfaToken | None = Field(None, description="The mfa_token given to login/options, when the passkey is the second step")


class ProfileUpdateRequest(Request):
    first_name: Name | None = None
    last_name: Name | None = None
    phone_number: Phone | None = None

    @field_validator("first_name", "last_name")
    @classmethod
    def _present_means_not_null(cls, value: str | None) -> str | None:
        # Runs only for fields the client sent: absent fields stay unchanged.
        if value is None:
            raise ValueError("This field may not be null.")
        return value


class DeleteAccountRequest(Request):
    password: Password = Field(description="The current password: deleting the account needs it")
    code: Otp | None = Field(None, description="The second-factor code, when two-step sign-in is on")


# ---- responses: what the flows answer, and what the OpenAPI document says they answer ----


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class User(Response):
    id: str = Field(description="UUID")
    email: str
    first_name: str
    last_name: str
    phone_number: str | None
    isVerified: bool
    date_joined: str = Field(description="ISO 8601, UTC")


class RegisterResponse(Response):
    user: User
    otp_sent: bool
    otp_expires_in: int = Field(description="Minutes")
    message: str


class VerifiedResponse(Response):
    message: str
    verified: bool


class ResendOtpResponse(Response):
    message: str
    otp_sent: bool
    otp_expires_in: int
    context: Literal["registration", "password_reset"]


class ForgotPasswordResponse(Response):
    message: str
    otp_sent: bool
    otp_expires_in: int
    email: str


class ResendResetResponse(Response):
    message: str
    otp_sent: bool
    otp_expires_in: int


class VerifyResetResponse(Response):
    message: str
    verified: bool
    email: str


class SuccessResponse(Response):
    message: str
    success: bool


class AdminUser(User):
    """A person as operators see them: the public fields and the account's state."""

    is_active: bool
    locked: bool = Field(description="Login is locked out after repeated failures")
    mfa_enabled: bool
    session_count: int = Field(description="Sessions that still work")
    legacy_id: str | None = Field(description="The id in the system the person was imported from, or null")


class AdminActionResponse(Response):
    message: str
    success: bool
    user_id: str


class AuditEntry(Response):
    model_config = ConfigDict(extra="allow", defer_build=True)

    seq: int
    event: str
    outcome: str
    at: str


class AuditTrailResponse(Response):
    user_id: str
    records: list[AuditEntry] = Field(description="Every record about the person since `since`, oldest first")
    hot_days: int = Field(
        description="The audit table keeps records this many days (AuditHotDays); older ones are in the locked "
        "archive only, which `make audit-export` reads"
    )
    since: str = Field(description="Now less hot_days (UTC): the records listed are every one from this time on")


class TokenPair(Response):
    access: str
    refresh: str


class LoginResponse(Response):
    user: User
    access: str
    refresh: str
    message: str


class MfaChallengeResponse(Response):
    """The password was right and the account has a second factor: no tokens yet."""

    mfa_required: Literal[True]
    mfa_token: str = Field(description="For POST /login/mfa (or the passkey routes): 5 minutes, single use, 5 tries")
    methods: list[Literal["totp", "recovery_code", "webauthn"]]
    message: str


class MfaEnrollmentResponse(Response):
    """MFA_POLICY=required and the account has no second factor yet."""

    mfa_enrollment_required: Literal[True]
    mfa_token: str = Field(description="For POST /mfa/totp/setup and /mfa/totp/confirm only: 5 minutes")
    message: str


class LoginAnswer(RootModel[LoginResponse | MfaChallengeResponse | MfaEnrollmentResponse]):
    """Tokens, or the second step a login needs first."""


class MfaSetupResponse(Response):
    secret: str = Field(description="Base32 TOTP secret (SHA-1, 6 digits, 30 s), shown this once")
    otpauth_uri: str = Field(description="otpauth://totp/... with issuer and account, what authenticator apps scan")
    qr_svg: str = Field(description="The otpauth URI as a QR code, SVG markup")


class MfaConfirmResponse(Response):
    enabled: bool
    recovery_codes: list[str] = Field(description="10 single-use codes, shown this once")
    user: User | None = Field(None, description="Enrolment under MFA_POLICY=required: the session starts now")
    access: str | None = None
    refresh: str | None = None
    message: str | None = None


class MfaStatus(Response):
    totp_enabled: bool
    recovery_codes_left: int
    policy: Literal["optional", "required"]


class MfaDisabledResponse(Response):
    enabled: bool


class RecoveryCodesResponse(Response):
    recovery_codes: list[str] = Field(description="10 new single-use codes, shown this once; the old ones no longer work")


class LogoutResponse(Response):
    message: str
    success: bool
    all: bool


class ChangePasswordResponse(Response):
    message: str
    success: bool
    access: str
    refresh: str


class ChangeEmailResponse(Response):
    message: str
    otp_sent: bool
    otp_expires_in: int = Field(description="Minutes")


class ChangeEmailVerifiedResponse(Response):
    message: str
    success: bool
    email: str = Field(description="The account's address now")
    access: str
    refresh: str


class SessionInfo(Response):
    id: str = Field(description="The session's id (never a token)")
    created_at: str = Field(description="ISO 8601, UTC: when it signed in")
    last_used_at: str = Field(description="ISO 8601, UTC: its latest sign-in or token refresh")
    ip: str | None = Field(description="The source address of its latest sign-in or refresh")
    user_agent: str | None = Field(description="The user agent of its latest sign-in or refresh")
    current: bool = Field(description="The session of the access token that asked")


class SessionList(Response):
    sessions: list[SessionInfo]


class PasskeyCreationOptions(Response):
    """PublicKeyCredentialCreationOptions as JSON (base64url binary fields)."""

    model_config = ConfigDict(extra="allow")
    rp: dict[str, str]
    user: dict[str, str]
    challenge: str
    pubKeyCredParams: list[dict[str, Any]]
    timeout: int = Field(description="Milliseconds")


class PasskeyRequestOptions(Response):
    """PublicKeyCredentialRequestOptions as JSON (base64url binary fields)."""

    model_config = ConfigDict(extra="allow")
    challenge: str
    rpId: str
    timeout: int = Field(description="Milliseconds")
    userVerification: str


class Passkey(Response):
    id: str = Field(description="The credential id, base64url")
    name: str
    created_at: str = Field(description="ISO 8601, UTC")
    last_used_at: str | None
    transports: list[str]
    backed_up: bool


class PasskeyAdded(Response):
    message: str
    credential: Passkey


class PasskeyList(Response):
    credentials: list[Passkey]


class Jwks(Response):
    keys: list[dict[str, str]]


class ServerMetadata(Response):
    issuer: str = Field(description="The `iss` of every access token")
    jwks_uri: str
    token_endpoint: str
    grant_types_supported: list[str]
    response_types_supported: list[str]
    subject_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    access_token_signing_alg_values_supported: list[str]
    claims_supported: list[str]
    service_documentation: str


class ApiDocumentation(Response):
    message: str
    version: str
    endpoints: dict[str, dict[str, Any]]
    authentication_flows: dict[str, list[str]]
    specifications: dict[str, Any]
    error_handling: dict[str, Any]
    security_notes: list[str]


class ErrorResponse(BaseModel):
    """{"error", "message"}; some errors add fields (retry_after, can_resend_otp, email)."""

    # Never a token error's `detail` + `code`: the two shapes stay apart.
    model_config = ConfigDict(
        extra="allow", json_schema_extra={"not": {"properties": {"detail": {}, "code": {}}, "required": ["detail", "code"]}}
    )
    error: str
    message: str


class TokenErrorResponse(BaseModel):
    """A missing, invalid, expired or revoked token: {"error", "message"} for new
    clients, and SimpleJWT's {"detail", "code"} for old ones (`code` is
    `token_not_valid`, on which they refresh, or `not_authenticated`)."""

    model_config = ConfigDict(extra="forbid")
    error: str
    message: str
    detail: str
    code: Literal["token_not_valid", "not_authenticated"]


class FieldErrorsResponse(RootModel[dict[str, list[str]]]):
    """Validation errors: each refused field with its reasons."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

"""Typed configuration, read from the environment once per container.

Every tunable of the service lives here with its default; `template.yaml`
passes the deployed values through Parameters, and `make dev` passes
overrides from the shell.  A wrong value fails the cold start loudly instead
of producing a half-configured function.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The most the password-hash settings allow: no hash this service made asks for
# more, so a stored hash that does is refused unrun (see carekey.passwords).
ARGON2_MAX_MEMORY_KIB = 1048576
ARGON2_MAX_ITERATIONS = 10
BCRYPT_MAX_COST = 16


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    service_name: str = Field("CareKey", alias="SERVICE_NAME")
    stage: str = Field("dev", alias="STAGE")

    users_table: str = Field("carekey-users", alias="USERS_TABLE")
    otp_table: str = Field("carekey-otps", alias="OTP_TABLE")
    sessions_table: str = Field("carekey-sessions", alias="SESSIONS_TABLE")
    # The sessions table's index of a user's sessions (keys only); another name
    # only while a stack upgrades from the index it replaced (LegacySessionIndex).
    sessions_user_index: str = Field("sessions_by_user", alias="SESSIONS_USER_INDEX")
    limits_table: str = Field("carekey-limits", alias="LIMITS_TABLE")
    audit_table: str = Field("carekey-audit", alias="AUDIT_TABLE")
    # The audit table's index of one person's records (keys only); another name
    # only while a stack upgrades from the index it replaced (LegacyAuditIndex).
    audit_subject_index: str = Field("audit_by_subject", alias="AUDIT_SUBJECT_INDEX")
    passkeys_table: str = Field("carekey-passkeys", alias="PASSKEYS_TABLE")
    audit_queue_url: str = Field("", alias="AUDIT_QUEUE_URL")
    audit_mac_key_id: str = Field("alias/carekey-audit-mac", alias="AUDIT_MAC_KEY_ID")
    audit_bucket: str = Field("carekey-audit-archive", alias="AUDIT_BUCKET")

    signing_secret_id: str = Field("carekey/signing-key", alias="SIGNING_SECRET_ID")
    public_keys_parameter: str = Field("carekey-public-keys", alias="PUBLIC_KEYS_PARAMETER")
    pepper_secret_id: str = Field("carekey/pepper", alias="PEPPER_SECRET_ID")
    key_cache_seconds: int = Field(300, ge=0, alias="KEY_CACHE_SECONDS")

    from_address: str = Field("no-reply@example.com", alias="FROM_ADDRESS")
    portal_url: str = Field("https://portal.example.com", alias="PORTAL_URL")
    ses_configuration_set: str = Field("", alias="SES_CONFIGURATION_SET")
    email_queue_url: str = Field("", alias="EMAIL_QUEUE_URL")

    # The tokens' `iss`: the API's URL.  Empty means the API Gateway URL of the
    # API serving the request (see token_issuer); a custom domain sets it.
    token_issuer: str = Field("", alias="TOKEN_ISSUER")
    token_audience: str = Field("carekey-api", alias="TOKEN_AUDIENCE")
    token_client_id: str = Field("carekey-app", alias="TOKEN_CLIENT_ID")
    access_token_minutes: int = Field(5, ge=1, le=60, alias="ACCESS_TOKEN_MINUTES")
    refresh_token_hours: int = Field(24, ge=1, le=24 * 30, alias="REFRESH_TOKEN_HOURS")
    session_idle_minutes: int = Field(30, ge=1, alias="SESSION_IDLE_MINUTES")
    session_max_hours: int = Field(12, ge=1, alias="SESSION_MAX_HOURS")
    refresh_reuse_seconds: int = Field(10, ge=0, le=300, alias="REFRESH_REUSE_SECONDS")
    # A session's routine token rotations reach the audit trail as one summary
    # event at most this often (0: every rotation), shorter than a session can
    # last; a rotation from a new address or agent, a replay or an expiry is
    # recorded at once, and a logout records the rotations not yet recorded.
    refresh_audit_minutes: int = Field(60, ge=0, le=720, alias="REFRESH_AUDIT_MINUTES")

    # Argon2id (one lane): the password hash.  The template keeps both at or
    # above OWASP's floor (19 MiB with 2 passes, or 46 MiB with 1); tests run lighter.
    argon2_memory_kib: int = Field(47104, ge=1024, le=ARGON2_MAX_MEMORY_KIB, alias="ARGON2_MEMORY_KIB")
    argon2_iterations: int = Field(1, ge=1, le=ARGON2_MAX_ITERATIONS, alias="ARGON2_ITERATIONS")
    # The bcrypt cost of accounts hashed before Argon2id: their checks, and the
    # time every failed password check is made to take (see carekey.passwords).
    bcrypt_cost: int = Field(12, ge=4, le=BCRYPT_MAX_COST, alias="BCRYPT_COST")
    password_min_length: int = Field(8, ge=8, le=64, alias="PASSWORD_MIN_LENGTH")
    password_max_length: int = Field(256, ge=64, le=4096, alias="PASSWORD_MAX_LENGTH")

    otp_ttl_minutes: int = Field(10, ge=1, le=60, alias="OTP_TTL_MINUTES")
    otp_max_attempts: int = Field(5, ge=1, le=20, alias="OTP_MAX_ATTEMPTS")
    otp_resend_cooldown_seconds: int = Field(60, ge=0, alias="OTP_RESEND_COOLDOWN_SECONDS")
    otp_sends_per_hour: int = Field(5, ge=1, alias="OTP_SENDS_PER_HOUR")
    # Wrong code guesses per address per day, across its codes: each new code
    # gets a fresh OTP_MAX_ATTEMPTS, this ceiling bounds them all.
    otp_failures_per_day: int = Field(50, ge=1, alias="OTP_FAILURES_PER_DAY")

    login_lockout_threshold: int = Field(5, ge=1, alias="LOGIN_LOCKOUT_THRESHOLD")
    login_lockout_base_seconds: int = Field(30, ge=1, alias="LOGIN_LOCKOUT_BASE_SECONDS")
    login_lockout_max_seconds: int = Field(900, ge=1, alias="LOGIN_LOCKOUT_MAX_SECONDS")
    login_failures_per_hour: int = Field(100, ge=1, alias="LOGIN_FAILURES_PER_HOUR")
    ip_failures_per_hour: int = Field(100, ge=1, alias="IP_FAILURES_PER_HOUR")
    ip_registrations_per_hour: int = Field(20, ge=1, alias="IP_REGISTRATIONS_PER_HOUR")
    ip_code_requests_per_hour: int = Field(30, ge=1, alias="IP_CODE_REQUESTS_PER_HOUR")
    signup_ttl_hours: int = Field(24, ge=1, le=24 * 7, alias="SIGNUP_TTL_HOURS")

    # Browser origins that may call the API (comma-separated, exact scheme://host[:port]); empty: none.
    cors_allowed_origins: str = Field("", alias="CORS_ALLOWED_ORIGINS")

    max_body_bytes: int = Field(16 * 1024, ge=1024, alias="MAX_BODY_BYTES")
    # The HTTP API option (local/http_api.py) has no gateway authorizer: the
    # functions check the bearer token themselves, as the authorizer would.
    authorize_in_function: bool = Field(False, alias="AUTHORIZE_IN_FUNCTION")
    audit_retention_days: int = Field(2192, ge=2192, alias="AUDIT_RETENTION_DAYS")
    # The audit table keeps each record this many days after its time (DynamoDB TTL),
    # for the operators' per-person queries; the locked archive keeps every record
    # for AUDIT_RETENTION_DAYS, and `make audit-verify` judges expiry by this value.
    audit_hot_days: int = Field(90, ge=30, alias="AUDIT_HOT_DAYS")

    # Passkeys (WebAuthn): the relying party is the domain the sign-in page is served
    # from; browsers refuse an IP address, hence "localhost" for `make dev`.
    webauthn_rp_id: str = Field("localhost", min_length=1, max_length=253, alias="WEBAUTHN_RP_ID")
    webauthn_origins: str = Field("http://localhost:3000", min_length=1, alias="WEBAUTHN_ORIGINS")
    webauthn_challenge_seconds: int = Field(300, ge=30, le=600, alias="WEBAUTHN_CHALLENGE_SECONDS")
    webauthn_max_passkeys: int = Field(10, ge=1, le=50, alias="WEBAUTHN_MAX_PASSKEYS")

    # Multi-factor sign-in: "optional" (each user chooses) or "required" (a login
    # without a second factor must set one up first).  TOTP secrets are encrypted
    # under MFA_KEY_ID (the data key's alias) with kms:Encrypt.
    mfa_policy: Literal["optional", "required"] = Field("optional", alias="MFA_POLICY")
    mfa_key_id: str = Field("alias/carekey-data", alias="MFA_KEY_ID")
    mfa_token_seconds: int = Field(300, ge=60, le=600, alias="MFA_TOKEN_SECONDS")
    mfa_max_attempts: int = Field(5, ge=1, le=10, alias="MFA_MAX_ATTEMPTS")

    @property
    def cors_origins(self) -> frozenset[str]:
        return frozenset(o.strip().rstrip("/") for o in self.cors_allowed_origins.split(",") if o.strip())

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins_are_origins(cls, value: str) -> str:
        for origin in (o.strip().rstrip("/") for o in value.split(",") if o.strip()):
            if origin == "*" or not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", origin):
                raise ValueError(f"CORS_ALLOWED_ORIGINS: {origin!r} is not an origin (scheme://host[:port]; no wildcard)")
        return value

    @property
    def otp_ttl_seconds(self) -> int:
        return self.otp_ttl_minutes * 60

    @property
    def signup_ttl_seconds(self) -> int:
        return self.signup_ttl_hours * 3600

    @property
    def allowed_origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.webauthn_origins.split(",") if o.strip()]

    @model_validator(mode="after")
    def _refresh_summaries_fall_within_a_session(self) -> "Settings":
        # A summary interval as long as a session would leave a session's routine
        # rotations unrecorded until it ends, or for ever if it lapses.
        if self.refresh_audit_minutes >= self.session_max_hours * 60:
            raise ValueError(
                f"REFRESH_AUDIT_MINUTES ({self.refresh_audit_minutes}) must be shorter than a session "
                f"(SESSION_MAX_HOURS={self.session_max_hours})"
            )
        return self

    @model_validator(mode="after")
    def _origins_belong_to_the_rp(self) -> "Settings":
        # A passkey made for one RP ID only works on origins under that domain:
        # a mismatch would make every passkey ceremony fail, so refuse it at cold start.
        rp = self.webauthn_rp_id.lower()
        for origin in self.allowed_origins:
            parts = urlsplit(origin)
            host = (parts.hostname or "").lower()
            if parts.scheme not in ("https", "http") or not host or parts.path or parts.query:
                raise ValueError(f"WEBAUTHN_ORIGINS: {origin!r} is not an origin like https://login.example.com")
            if parts.scheme == "http" and host != "localhost":
                raise ValueError(f"WEBAUTHN_ORIGINS: {origin!r} must use https (http only for localhost)")
            if host != rp and not host.endswith("." + rp):
                raise ValueError(f"WEBAUTHN_ORIGINS: {origin!r} is not within WEBAUTHN_RP_ID {rp!r}")
        return self


def token_issuer(api_id: str, stage: str, region: str | None = None) -> str:
    """The `iss` of this deployment's tokens: TOKEN_ISSUER when set (a custom
    domain, or the local API's URL), else the API Gateway URL of the API.  Built
    from what API Gateway itself reports (api id, stage), never from a header a
    client controls."""
    configured = settings().token_issuer
    if configured:
        return configured.rstrip("/")
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return f"https://{api_id}.execute-api.{region}.amazonaws.com/{stage}"


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.model_validate(dict(os.environ))


def reload_settings() -> Settings:
    """Forget the cached settings (tests and the local API change the environment)."""
    settings.cache_clear()
    return settings()

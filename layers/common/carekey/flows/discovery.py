"""GET / (the legacy self-documenting root), and the well-known documents
resource servers use to verify tokens: /.well-known/jwks.json and
/.well-known/openid-configuration."""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path
from typing import Any

from carekey import __version__, errors, tokens
from carekey.api import Call, Reply
from carekey.catalog import ENDPOINTS, fields_of
from carekey.config import settings
from carekey.schemas import ApiDocumentation, Jwks, ServerMetadata


def api_root(call: Call) -> Reply:
    cfg = settings()
    base = call.base_url
    endpoints: dict[str, Any] = {}
    for ep in ENDPOINTS:
        required, optional = fields_of(ep.model)
        entry: dict[str, Any] = {"description": ep.description, "url": f"{base}{ep.path}", "methods": [ep.method]}
        if required:
            entry["required_fields"] = required
        if optional:
            entry["optional_fields"] = optional
        if ep.auth:
            entry["authentication"] = "Bearer access token"
        if ep.operator:
            entry["authentication"] = "AWS SigV4 (IAM principal holding the stack's AdminPolicy)"
        if ep.example:
            entry["example_request"] = ep.example
        endpoints[ep.name] = entry
    return Reply(
        200,
        ApiDocumentation.model_validate({
            "message": f"{cfg.service_name} Authentication API",
            "version": __version__,
            "endpoints": endpoints,
            "authentication_flows": {
                "registration_flow": [
                    "1. POST /register - Register user and send a code",
                    "2. POST /verify-otp - Verify email with the code",
                    "3. POST /login - Login with credentials",
                ],
                "password_reset_flow": [
                    "1. POST /forgot-password - Request a password reset code",
                    "2. POST /verify-password-reset-otp - Check the code (optional)",
                    "3. POST /reset-password - Set a new password; every session ends",
                ],
                "login_flow_unverified": [
                    "1. POST /login - Returns email not verified error",
                    "2. POST /resend-otp - Resend verification code",
                    "3. POST /verify-otp - Verify email",
                    "4. POST /login - Successful login",
                ],
                "passkey_flow": [
                    "1. POST /webauthn/register/options {password} (Bearer) - Options for navigator.credentials.create()",
                    "2. POST /webauthn/register/verify {credential, name} (Bearer) - Store the passkey; the owner is emailed",
                    "3. POST /webauthn/login/options {email?} - Options for navigator.credentials.get()",
                    "4. POST /webauthn/login/verify {credential} - Tokens, as POST /login gives",
                ],
                "two_step_sign_in_flow": [
                    "1. POST /mfa/totp/setup {password} (Bearer) - A secret, its otpauth URI and QR code for the authenticator app",
                    "2. POST /mfa/totp/confirm {code} (Bearer) - Turns it on; 10 recovery codes, shown once",
                    "3. POST /login - {mfa_required, mfa_token, methods} instead of tokens",
                    "4. POST /login/mfa {mfa_token, code} - Tokens, as POST /login gives (a TOTP code or a recovery code)",
                ],
                "session_flow": [
                    "1. Send 'Authorization: Bearer <access>' to protected endpoints",
                    "2. POST /token/refresh - Rotate tokens before the access token expires",
                    "3. POST /logout - End the session",
                ],
            },
            "specifications": {
                "otp": {
                    "length": 6,
                    "expiry_minutes": cfg.otp_ttl_minutes,
                    "delivery_method": "email",
                    "max_attempts": cfg.otp_max_attempts,
                    "resend_cooldown_seconds": cfg.otp_resend_cooldown_seconds,
                    "sends_per_hour": cfg.otp_sends_per_hour,
                },
                "tokens": {
                    "algorithm": tokens.ALGORITHM,
                    "access_token_lifetime": f"{cfg.access_token_minutes} minutes",
                    "refresh_token_lifetime": f"{cfg.refresh_token_hours} hours",
                    "session_idle_timeout": f"{cfg.session_idle_minutes} minutes",
                    "session_absolute_limit": f"{cfg.session_max_hours} hours",
                    "refresh_rotation": (
                        "every refresh returns a new refresh token; the one it replaced returns the same pair for the "
                        "reuse interval, and after that using it ends the session"
                    ),
                    "jwks_url": f"{base}/.well-known/jwks.json",
                    "discovery_url": f"{base}/.well-known/openid-configuration",
                    "refresh_reuse_interval": f"{cfg.refresh_reuse_seconds} seconds",
                },
                "password_requirements": [
                    f"At least {cfg.password_min_length} characters, at most {cfg.password_max_length}",
                    "Cannot be a common or breached password",
                    "Cannot contain your email, your name or the service name",
                    "Cannot be entirely numeric",
                    "Any characters, spaces and emoji included; no other composition rules",
                ],
                "passkeys": {
                    "rp_id": cfg.webauthn_rp_id,
                    "origins": cfg.allowed_origins,
                    "challenge_lifetime_seconds": cfg.webauthn_challenge_seconds,
                    "max_per_account": cfg.webauthn_max_passkeys,
                    "user_verification": "required",
                    "discoverable_credentials": "required (sign in without typing an email)",
                },
                "two_step_sign_in": {
                    "policy": cfg.mfa_policy,
                    "totp": "RFC 6238: SHA-1, 6 digits, 30-second steps, one step of drift; each code works once",
                    "recovery_codes": "10, single use, shown once",
                    "mfa_token_lifetime_seconds": cfg.mfa_token_seconds,
                    "mfa_token_max_attempts": cfg.mfa_max_attempts,
                },
                "request_body_limit_bytes": cfg.max_body_bytes,
            },
            "error_handling": {
                "common_status_codes": {
                    "200": "Success",
                    "201": "Created",
                    "400": "Bad Request (validation errors, malformed JSON, invalid or expired code)",
                    "401": "Unauthorized (invalid credentials or token)",
                    "403": "Forbidden (unverified email, inactive account)",
                    "404": "Not Found",
                    "405": "Method Not Allowed",
                    "413": "Payload Too Large",
                    "429": "Too Many Requests (see Retry-After)",
                    "500": "Internal Server Error",
                    "503": "Service busy: nothing changed, try again (see Retry-After)",
                },
                "error_response_format": {"error": "Error description", "message": "User-friendly message"},
                "validation_error_format": {"field_name": ["Error message"]},
            },
            "security_notes": [
                "Always use HTTPS in production",
                "Store tokens securely (httpOnly cookies recommended)",
                "Refresh before the access token expires; each refresh token works once",
                "Responses never reveal whether an email has an account",
            ],
        }),
    )


def jwks(call: Call) -> Reply:
    return Reply(200, Jwks.model_validate(tokens.jwks()), {"Cache-Control": "public, max-age=300"})


def server_metadata(call: Call) -> Reply:
    """Discovery (OpenID Connect Discovery / RFC 8414 field names): where the keys
    are and what the tokens look like.  `issuer` is exactly the tokens' `iss`."""
    issuer = call.issuer
    return Reply(
        200,
        ServerMetadata(
            issuer=issuer,
            jwks_uri=f"{issuer}/.well-known/jwks.json",
            token_endpoint=f"{issuer}/token/refresh",
            grant_types_supported=["password", "refresh_token"],
            response_types_supported=["token"],
            subject_types_supported=["public"],
            token_endpoint_auth_methods_supported=["none"],
            id_token_signing_alg_values_supported=[tokens.ALGORITHM],
            access_token_signing_alg_values_supported=[tokens.ALGORITHM],
            claims_supported=["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "user_id"],
            service_documentation=f"{issuer}/docs",
        ),
        {"Cache-Control": "public, max-age=300"},
    )


def well_known(call: Call) -> Reply:
    return server_metadata(call) if call.resource.endswith("/openid-configuration") else jwks(call)


_ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css"})
_ASSET_TYPES = {".js": "application/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="stylesheet" href="{base}/docs/swagger-ui.css">
</head>
<body>
  <div id="docs" data-spec="{base}/openapi.json"></div>
  <script src="{base}/docs/swagger-ui-bundle.js"></script>
  <script src="{base}/docs/start.js"></script>
</body>
</html>
"""
_START = """window.ui = SwaggerUIBundle({
  url: document.getElementById('docs').dataset.spec,
  dom_id: '#docs',
  deepLinking: true,
  docExpansion: 'list',
  defaultModelsExpandDepth: 0,
  supportedSubmitMethods: []
});
"""
# The page's own script is served, not inlined, so a strict Content-Security-Policy holds.
_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'"


@lru_cache(maxsize=1)
def _spec() -> dict[str, Any]:
    from carekey.openapi import document

    return document()


def documentation(call: Call, assets: Path) -> Reply:
    """GET /openapi.json, /docs and /docs/{asset} (files from `assets`, shipped with the docs function)."""
    if call.resource == "/openapi.json":
        spec = dict(_spec())
        if call.base_url:
            spec["servers"] = [{"url": call.base_url}]
        return Reply(200, spec, {"Cache-Control": "public, max-age=300"})
    if call.resource == "/docs":
        page = _PAGE.format(title=html.escape(f"{settings().service_name} API"), base=html.escape(call.base_url, quote=True))
        return Reply(200, page, {"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": _CSP, "Cache-Control": "public, max-age=300"}, raw=True)
    name = call.path_params.get("asset", "")
    if name == "start.js":
        return Reply(200, _START, {"Content-Type": _ASSET_TYPES[".js"], "Cache-Control": "public, max-age=86400"}, raw=True)
    # Only the files the page loads: a name from the path never reaches the file system.
    if name not in _ASSETS:
        raise errors.NotFound()
    suffix = Path(name).suffix
    return Reply(200, (assets / name).read_text(encoding="utf-8"), {"Content-Type": _ASSET_TYPES[suffix], "Cache-Control": "public, max-age=86400"}, raw=True)

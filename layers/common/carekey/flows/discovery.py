"""GET / (the legacy self-documenting root) and GET /.well-known/jwks.json."""

from __future__ import annotations

from typing import Any

from carekey import __version__, tokens
from carekey.api import Call, Reply
from carekey.catalog import ENDPOINTS, fields_of
from carekey.config import settings


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
        if ep.example:
            entry["example_request"] = ep.example
        endpoints[ep.name] = entry
    return Reply(
        200,
        {
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
                    "refresh_rotation": "every refresh returns a new refresh token; reusing an old one ends the session",
                    "jwks_url": f"{base}/.well-known/jwks.json",
                },
                "password_requirements": [
                    f"At least {cfg.password_min_length} characters, at most {cfg.password_max_length}",
                    "Cannot be a common or breached password",
                    "Cannot contain your email, your name or the service name",
                    "Cannot be entirely numeric",
                    "Any characters, spaces and emoji included; no other composition rules",
                ],
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
        },
    )


def jwks(call: Call) -> Reply:
    return Reply(200, tokens.jwks(), {"Cache-Control": "public, max-age=300"})

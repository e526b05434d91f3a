"""What the API offers, described once: the self-documenting root (GET /) is
built from this list and the request models it names.  Paths and methods must
match template.yaml; a test checks that they do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from carekey import schemas


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    description: str
    model: type[BaseModel] | None = None
    auth: bool = False
    example: dict[str, Any] = field(default_factory=dict)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("documentation", "GET", "/", "This API documentation"),
    Endpoint(
        "register", "POST", "/register", "Register a new user and send a verification code", schemas.RegisterRequest,
        example={"email": "user@example.com", "first_name": "John", "last_name": "Doe", "phone_number": "+1234567890",
                 "password": "correct horse battery", "password2": "correct horse battery"},
    ),
    Endpoint("verify_otp", "POST", "/verify-otp", "Verify an email address with its code", schemas.VerifyOtpRequest,
             example={"email": "user@example.com", "otp": "123456"}),
    Endpoint("resend_otp", "POST", "/resend-otp", "Send a new code for email verification or password reset",
             schemas.ResendOtpRequest, example={"email": "user@example.com", "context": "registration"}),
    Endpoint("login", "POST", "/login", "Authenticate and receive JWT access and refresh tokens", schemas.LoginRequest,
             example={"email": "user@example.com", "password": "correct horse battery"}),
    Endpoint("forgot_password", "POST", "/forgot-password", "Start a password reset: a code is emailed",
             schemas.EmailOnlyRequest, example={"email": "user@example.com"}),
    Endpoint("verify_password_reset_otp", "POST", "/verify-password-reset-otp", "Check a password reset code",
             schemas.VerifyResetOtpRequest, example={"email": "user@example.com", "otp": "123456"}),
    Endpoint("reset_password", "POST", "/reset-password", "Set a new password with the reset code (uses the code up)",
             schemas.ResetPasswordRequest,
             example={"email": "user@example.com", "otp": "123456", "new_password": "a new long passphrase",
                      "confirm_password": "a new long passphrase"}),
    Endpoint("resend_password_reset_otp", "POST", "/resend-password-reset-otp", "Send a new password reset code",
             schemas.EmailOnlyRequest, example={"email": "user@example.com"}),
    Endpoint("token_refresh", "POST", "/token/refresh", "Exchange a refresh token for a new access and refresh token",
             schemas.RefreshRequest, example={"refresh": "your_refresh_token_here"}),
    Endpoint("profile", "GET", "/profile", "The signed-in user's profile", auth=True),
    Endpoint("update_profile", "PUT", "/profile", "Update first_name, last_name or phone_number",
             schemas.ProfileUpdateRequest, auth=True, example={"first_name": "Jane"}),
    Endpoint("me", "GET", "/me", "The signed-in user", auth=True),
    Endpoint("logout", "POST", "/logout", "End this session, or every session with {\"all\": true}",
             schemas.LogoutRequest, auth=True, example={"all": False}),
    Endpoint("change_password", "POST", "/change-password", "Change the password; other sessions end",
             schemas.ChangePasswordRequest, auth=True,
             example={"current_password": "correct horse battery", "new_password": "a new long passphrase",
                      "confirm_password": "a new long passphrase"}),
    Endpoint("jwks", "GET", "/.well-known/jwks.json", "Public keys that verify this service's tokens (ES256)"),
)


def fields_of(model: type[BaseModel] | None) -> tuple[list[str], list[str]]:
    if model is None:
        return [], []
    required = [n for n, f in model.model_fields.items() if f.is_required()]
    optional = [n for n, f in model.model_fields.items() if not f.is_required()]
    return required, optional

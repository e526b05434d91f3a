"""Domain errors.  Flows raise these; `carekey.api` is the one place that turns
them into HTTP responses, so every status code and error body is decided here.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 400
    error = "Bad request"
    message = "The request could not be processed."

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        super().__init__(message or self.message)
        if message:
            self.message = message
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, **self.extra}


class FieldErrors(ServiceError):
    """Validation errors in the legacy shape: {"field": ["message", ...]}."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("Invalid input.")
        self.errors = errors

    def body(self) -> dict[str, Any]:
        return dict(self.errors)


class MalformedRequest(ServiceError):
    error = "Malformed request"


class PayloadTooLarge(ServiceError):
    status = 413
    error = "Payload too large"
    message = "The request body is larger than this service accepts."


class InvalidOtp(ServiceError):
    error = "Invalid or expired OTP"
    message = "The code is wrong, expired or already used."


class EmailChangeFailed(ServiceError):
    error = "Email not changed"
    message = "The email could not be changed. Ask for a new code and try again."


class PasskeyRejected(ServiceError):
    error = "Invalid passkey"
    message = "The passkey response could not be verified. Please try again."


# RFC 6750: every 401 names the scheme a client should use.
REALM = 'Bearer realm="carekey"'


class InvalidCredentials(ServiceError):
    status = 401
    error = "Invalid credentials"
    message = "The email or password is incorrect."

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.headers["WWW-Authenticate"] = REALM


class EmailNotVerified(ServiceError):
    status = 403
    error = "Email not verified"
    message = "Please verify your email address before logging in."


class AccountDeactivated(ServiceError):
    status = 403
    error = "Account deactivated"
    message = "Your account has been deactivated. Please contact support."


class InvalidToken(ServiceError):
    """A token that is invalid, expired or revoked.  The body also carries the
    `detail` and `code` that SimpleJWT clients read (and refresh on)."""

    status = 401
    error = "Invalid token"
    message = "The token is invalid, expired or revoked."
    detail = "Given token not valid for any token type"
    code = "token_not_valid"
    challenge = f'{REALM}, error="invalid_token", error_description="The token is invalid, expired or revoked"'

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.headers["WWW-Authenticate"] = self.challenge

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, "detail": self.detail, "code": self.code, **self.extra}


class Unauthorized(InvalidToken):
    """No credentials at all (RFC 6750: the challenge then names no error)."""

    error = "Unauthorized"
    message = "A valid access token is required."
    detail = "Authentication credentials were not provided."
    code = "not_authenticated"
    challenge = REALM


class OperatorRequired(ServiceError):
    """An operators' route reached without an IAM caller (API Gateway admits
    only SigV4-signed requests to them; this is the function's own check)."""

    status = 403
    error = "Forbidden"
    message = "This route needs a request signed with AWS credentials (SigV4) allowed to invoke it."


class RateLimited(ServiceError):
    status = 429
    error = "Too many requests"
    message = "Too many attempts. Please wait before trying again."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message, retry_after=max(1, int(retry_after)))
        self.headers = {"Retry-After": str(max(1, int(retry_after)))}


class ServiceBusy(ServiceError):
    """DynamoDB kept refusing a write (throttling, conflicting transactions):
    nothing was decided, so the client should simply try again."""

    status = 503
    error = "Service busy"
    message = "The service is busy. Please try again in a moment."

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__(retry_after=max(1, int(retry_after)))
        self.headers = {"Retry-After": str(max(1, int(retry_after)))}


class NotFound(ServiceError):
    status = 404
    error = "Not found"
    message = "There is nothing at this path."


class OriginNotAllowed(ServiceError):
    status = 403
    error = "Origin not allowed"
    message = "This origin may not call the API from a browser; see CORS_ALLOWED_ORIGINS."


class MethodNotAllowed(ServiceError):
    status = 405
    error = "Method not allowed"
    message = "This path does not accept that method."


class AuditUnavailable(ServiceError):
    """The audit trail could not take the event: the request fails closed."""

    status = 503
    error = "Service unavailable"
    message = "The service could not record this request. Please try again shortly."

    def __init__(self) -> None:
        super().__init__()
        self.headers = {"Retry-After": "5"}


class InvalidMfaCode(ServiceError):
    """A second-factor code refused on a signed-in request (setup, disable, new recovery codes)."""

    error = "Invalid or expired code"
    message = "The code is wrong, expired or already used."


class MfaUnavailable(ServiceError):
    """A second-factor change that the account's state or the policy does not allow."""

    error = "Two-step sign-in"
    message = "This change is not possible now."


class MfaCodeRefused(InvalidCredentials):
    """The second step of a login failed: a wrong, used or expired code, or an
    mfa_token that is unknown, used up, expired or out of tries (one answer for all)."""

    error = "Invalid code"
    message = "The code is wrong or already used, or the sign-in expired. Sign in again if this persists."

"""The OpenAPI 3.1 document, generated from the catalogue and the very request
and response models the flows use.  `make openapi` writes docs/openapi.json;
a test fails when that copy drifts from what this module generates."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from carekey import __version__
from carekey.catalog import ENDPOINTS, Endpoint, details_of
from carekey.config import settings
from carekey.schemas import ErrorResponse, FieldErrorsResponse, TokenErrorResponse

_ERROR_TEXT = {
    400: "Invalid input: field errors, malformed JSON, or an invalid or expired code",
    401: "Invalid credentials, or a missing, invalid, expired or revoked token",
    403: "Email not verified (after the right password), or account deactivated",
    404: "Nothing at this path, or no such item",
    405: "The path does not accept this method",
    413: "The request body is larger than the limit",
    429: "Too many attempts or codes; see Retry-After",
    503: "The database stayed busy (throttled or conflicting writes); nothing changed, try again after Retry-After",
}
DOCS_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "start.js")
UI_ASSETS = ("ui.js", "ui.css")
_NO_STORE = {"Cache-Control": {"schema": {"type": "string", "const": "no-store"}}}


class _Components:
    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)  # type: ignore[arg-type]
        for name, definition in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, definition)
        self.schemas.setdefault(model.__name__, schema)
        return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


_OPERATOR_403 = "Not signed, badly or too long ago signed (SigV4), or signed by credentials without AdminPolicy"


def _error_response(status: int, components: _Components, token_errors: bool = False) -> dict[str, Any]:
    """The error schemas do not overlap (a generated client can tell them apart by
    their required fields); the most specific comes first in a oneOf."""
    error = components.ref(ErrorResponse, "serialization")
    if status == 400:
        schema = {"oneOf": [error, components.ref(FieldErrorsResponse, "serialization")]}
    elif status == 401 and token_errors:
        schema = components.ref(TokenErrorResponse, "serialization")
    else:
        schema = error
    response: dict[str, Any] = {"description": _ERROR_TEXT[status], "content": _json(schema)}
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"description": "RFC 6750 Bearer challenge", "schema": {"type": "string"}}}
    if status in (429, 503):
        response["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}}
    return response


def _operation(ep: Endpoint, components: _Components) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": ep.name, "summary": ep.description, "description": details_of(ep), "tags": [ep.tag]}
    if ep.model is not None:
        # A body whose fields are all optional may be left out.
        required = any(f.is_required() for f in ep.model.model_fields.values())
        # Documented as JSON only: the form encodings the service also reads (see info.description)
        # share the model, and a generated client cannot tell three encodings of one schema apart.
        op["requestBody"] = {"required": required, "content": _json(components.ref(ep.model, "validation"))}
        if ep.example:
            op["requestBody"]["content"]["application/json"]["example"] = ep.example
    if "{asset}" in ep.path:
        names = UI_ASSETS if ep.path.startswith("/ui/") else DOCS_ASSETS
        op["parameters"] = [{"name": "asset", "in": "path", "required": True, "schema": {"type": "string", "enum": list(names)}}]
    if "{id}" in ep.path and ep.operator:
        op["parameters"] = [
            {"name": "id", "in": "path", "required": True, "description": "The person's id (a UUID)",
             "schema": {"type": "string", "format": "uuid"}}
        ]
    elif "{id}" in ep.path:
        op["parameters"] = [
            {"name": "id", "in": "path", "required": True, "description": "The passkey's credential id (base64url)",
             "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "maxLength": 1400}}
        ]
    if ep.name == "admin_find_user":
        op["parameters"] = [
            {"name": "email", "in": "query", "required": True, "description": "The person's email address",
             "schema": {"type": "string", "format": "email", "maxLength": 254}}
        ]
    if ep.response is not None:
        success: dict[str, Any] = {"description": "Success", "content": _json(components.ref(ep.response, "serialization"))}
    elif ep.media_type == "application/json":
        success = {"description": "Success", "content": _json({"type": "object"})}
    else:
        success = {"description": "Success", "content": {t: {"schema": {"type": "string"}} for t in ep.media_type.split(",")}}
    if ep.tag in ("auth", "passkeys", "two-step sign-in", "operators"):
        success["headers"] = _NO_STORE
    responses = {str(ep.status): success}
    # A 401 of a protected route or of the refresh endpoint is about a token: SimpleJWT's shape.
    token_errors = ep.auth or ep.bearer_optional or ep.name == "token_refresh"
    for status in ep.errors:
        responses[str(status)] = _error_response(status, components, token_errors)
        if ep.operator and status == 403:
            responses[str(status)]["description"] = _OPERATOR_403
    if ep.operator:
        op["security"] = [{"sigv4": []}]
    elif ep.auth:
        op["security"] = [{"bearerAuth": []}]
        responses.setdefault("401", _error_response(401, components, True))
    elif ep.bearer_optional:
        op["security"] = [{"bearerAuth": []}, {}]  # a bearer token, or the credential the body carries
    else:
        op["security"] = []  # public: no token needed
    op["responses"] = responses
    return op


def document() -> dict[str, Any]:
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    for ep in ENDPOINTS:
        paths.setdefault(ep.path, {})[ep.method.lower()] = _operation(ep, components)
    for path_item in paths.values():
        # Every path answers other methods with 405 and an Allow header.
        allowed = ", ".join(sorted(m.upper() for m in path_item))
        for operation in path_item.values():
            operation["responses"]["405"] = {
                **_error_response(405, components),
                "headers": {"Allow": {"schema": {"type": "string", "const": allowed}}},
            }
    name = settings().service_name
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{name} Authentication API",
            "version": __version__,
            "description": (
                "Email and password authentication with one-time codes, passkeys (WebAuthn), JWT access and refresh tokens (ES256, "
                "JWKS at /.well-known/jwks.json), password reset, and the signed-in user's profile. Errors are "
                '{"error", "message"}; field validation errors are {"field": ["message"]}; a refused token is '
                '{"error", "message", "detail", "code"} with a WWW-Authenticate challenge. Every request body '
                "documented here as JSON may also be sent as application/x-www-form-urlencoded or "
                "multipart/form-data with the same fields (booleans as true/false): the same model, limits and "
                "errors. Responses never reveal whether an email has an account."
            ),
            "contact": {"name": f"{name} support", "url": settings().portal_url},
            "license": {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"},
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "auth", "description": "Sign-up, verification, login, tokens, password reset, profile"},
            {"name": "passkeys", "description": "Passkeys (WebAuthn): add one, sign in with one, list and remove them"},
            {"name": "two-step sign-in", "description": "Authenticator apps (TOTP), recovery codes and the second step of a login"},
            {"name": "sign-in page", "description": "The hosted sign-in page for teams without a front end of their own"},
            {"name": "operators", "description": "The operators' API: AWS_IAM (SigV4) authorization, every call audited with the IAM caller"},
            {"name": "documentation", "description": "This documentation and the token verification keys"},
        ],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.schemas.items())),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from POST /login or POST /token/refresh (RFC 9068, ES256)",
                },
                "sigv4": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "description": "AWS Signature Version 4 (service execute-api) by an IAM principal allowed execute-api:Invoke "
                    "on /admin/* (the stack's AdminPolicy); `make admin` signs for you",
                    "x-amazon-apigateway-authtype": "awsSigv4",
                },
            },
        },
    }

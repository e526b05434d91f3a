"""HTTP edge of every function: API Gateway REST proxy event in, proxy response out.

This is the one module that knows about HTTP.  It caps and parses the body,
validates it into a typed request model, reads the caller's identity from the
authorizer context, calls the flow, and maps every domain error to its status
and documented JSON body.  Nothing a client sends can produce a 5xx here: bad
input ends as a 4xx before any flow runs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar
from urllib.parse import parse_qsl

from aws_lambda_powertools.logging import correlation_paths
from pydantic import BaseModel, ValidationError

from carekey import errors
from carekey.config import settings, token_issuer
from carekey.observability import logger, metrics

M = TypeVar("M", bound=BaseModel)

SECURITY_HEADERS = {
    "Content-Type": "application/json",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Client:
    """Who is calling, as far as the audit trail and rate limits care."""

    ip: str = "unknown"
    user_agent: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, as the authorizer vouched for them."""

    user_id: str
    session_id: str


@dataclass(frozen=True)
class Operator:
    """An operator calling an AWS_IAM route, as API Gateway verified their SigV4
    signature: the IAM principal's ARN (what the audit trail records)."""

    arn: str


@dataclass
class Call(Generic[M]):
    body: M
    client: Client
    principal: Principal | None = None
    operator: Operator | None = None
    base_url: str = ""
    issuer: str = ""  # the `iss` of this API's tokens
    resource: str = ""
    path_params: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    raw: bool = False  # body is text to send as is (HTML, scripts), not JSON


def respond(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    if isinstance(body, BaseModel):
        body = body.model_dump(mode="json")
    return {
        "statusCode": status,
        "headers": {**SECURITY_HEADERS, **(headers or {})},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


class _NoBody(BaseModel):
    pass


def _header(event: dict[str, Any], name: str) -> str:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name.lower() and isinstance(value, str):
            return value
    return ""


def client_of(event: dict[str, Any]) -> Client:
    ctx = event.get("requestContext") or {}
    identity = ctx.get("identity") or {}
    return Client(
        ip=str(identity.get("sourceIp") or "unknown")[:64],
        user_agent=str(identity.get("userAgent") or _header(event, "User-Agent"))[:512],
        request_id=str(ctx.get("requestId") or "")[:128],
    )


# What API Gateway puts in requestContext.domainName and .stage; anything else is ignored.
_DOMAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}(?::[0-9]{1,5})?$")
_STAGE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_LOOPBACK = ("127.0.0.1", "localhost")


def base_url_of(event: dict[str, Any]) -> str:
    """The API's own URL, built from the request context API Gateway sets (the
    domain it answered on and the stage), never from client headers such as
    Host or X-Forwarded-Proto.  Empty (relative URLs) when the context does not
    name a plausible domain."""
    ctx = event.get("requestContext") or {}
    domain, stage = ctx.get("domainName"), ctx.get("stage")
    if not isinstance(domain, str) or len(domain) > 253 or not _DOMAIN.match(domain):
        return ""
    host = domain.rsplit(":", 1)[0] if ":" in domain else domain
    # API Gateway only speaks HTTPS; the local emulator serves plain HTTP on loopback.
    scheme = "http" if host in _LOOPBACK else "https"
    # The default execute-api domain carries the stage in the path; a custom domain does not.
    prefix = f"/{stage}" if isinstance(stage, str) and _STAGE.match(stage) and host.endswith(".amazonaws.com") else ""
    return f"{scheme}://{domain.lower()}{prefix}"


def issuer_of(event: dict[str, Any]) -> str:
    ctx = event.get("requestContext") or {}
    return token_issuer(str(ctx.get("apiId") or "local"), str(ctx.get("stage") or ""))


def _principal_of(event: dict[str, Any]) -> Principal | None:
    auth = (event.get("requestContext") or {}).get("authorizer") or {}
    user_id, session_id = auth.get("user_id"), auth.get("session_id")
    if isinstance(user_id, str) and user_id and isinstance(session_id, str) and session_id:
        return Principal(user_id=user_id, session_id=session_id)
    return None


_ARN = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:[\x21-\x7e]{1,1800}$")


def _operator_of(event: dict[str, Any]) -> Operator | None:
    """The IAM caller API Gateway vouched for (REST: requestContext.identity;
    HTTP API, payload 2.0: requestContext.authorizer.iam)."""
    ctx = event.get("requestContext") or {}
    identity = ctx.get("identity") or ((ctx.get("authorizer") or {}).get("iam")) or {}
    arn = identity.get("userArn")
    if isinstance(arn, str) and _ARN.match(arn):
        return Operator(arn=arn)
    return None


def _authorize_here(event: dict[str, Any]) -> Principal:
    """The authorizer's check made by the function itself (the HTTP API option,
    which has no gateway authorizer): the same token, session and account
    checks, so a request is admitted on exactly the same terms, and refused
    with the same 401s (Unauthorized, InvalidToken)."""
    from carekey.flows.sessions import admit

    claims = admit(_header(event, "Authorization"), issuer_of(event))
    return Principal(user_id=claims.user_id, session_id=claims.session_id)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


_MAX_FORM_FIELDS = 64


def _raw_body(event: dict[str, Any]) -> bytes:
    raw = event.get("body")
    if raw is None or raw == "":
        return b""
    if not isinstance(raw, str):
        raise errors.MalformedRequest("The request body must be text.")
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise errors.MalformedRequest("The request body is not valid base64.") from exc
    else:
        data = raw.encode("utf-8", "surrogatepass")
    if len(data) > settings().max_body_bytes:
        raise errors.PayloadTooLarge(f"The request body must be at most {settings().max_body_bytes} bytes.")
    return data


def _json_body(data: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise errors.MalformedRequest("The request body is not valid JSON.") from exc
    if not isinstance(parsed, dict):
        raise errors.MalformedRequest("The request body must be a JSON object.")
    return parsed


def _form_body(data: bytes) -> dict[str, Any]:
    """application/x-www-form-urlencoded, as Django REST framework read it (the last value of a repeated field wins)."""
    try:
        pairs = parse_qsl(data.decode("utf-8"), keep_blank_values=True, strict_parsing=True, max_num_fields=_MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise errors.MalformedRequest("The request body is not valid form data.") from exc
    return dict(pairs)


def _multipart_body(data: bytes, content_type: str) -> dict[str, Any]:
    """multipart/form-data: each named part without a filename is a field; files are ignored (no request takes one)."""
    # The email package's HTTP policy (about 8 ms to import) only for the rare multipart body, never for JSON.
    from email.message import Message
    from email.parser import BytesParser
    from email.policy import HTTP

    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=HTTP).parsebytes(head + data)
    if not message.is_multipart() or message.defects or not message.get_boundary():
        raise errors.MalformedRequest("The request body is not valid multipart form data.")
    fields: dict[str, Any] = {}
    for count, part in enumerate(message.iter_parts()):
        if count >= _MAX_FORM_FIELDS:
            raise errors.MalformedRequest("The form has too many fields.")
        assert isinstance(part, Message)
        if part.get_content_disposition() != "form-data" or part.get_param("name", header="content-disposition") is None:
            raise errors.MalformedRequest("Every part of a multipart form needs a name.")
        if part.get_filename() is not None:
            continue
        payload = part.get_payload(decode=True)
        try:
            fields[str(part.get_param("name", header="content-disposition"))] = (payload or b"").decode(part.get_content_charset() or "utf-8")
        except (LookupError, UnicodeDecodeError) as exc:
            raise errors.MalformedRequest("A form field is not valid text.") from exc
    return fields


def read_body(event: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The body as a dict, and whether it came from a form (whose values are all text).
    JSON unless the Content-Type says form-encoded or multipart."""
    data = _raw_body(event)
    if not data:
        return {}, False
    content_type = _header(event, "Content-Type")
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return _form_body(data), True
    if kind == "multipart/form-data":
        return _multipart_body(data, content_type), True
    return _json_body(data), False


def read_json_body(event: dict[str, Any]) -> dict[str, Any]:
    return read_body(event)[0]


_TRUE, _FALSE = {"true", "1", "on", "yes"}, {"false", "0", "off", "no", ""}


def _from_form(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """Form values are text: read "true"/"false" (and DRF's other spellings) for boolean fields."""
    out = dict(data)
    for name, info in model.model_fields.items():
        value = out.get(name)
        if isinstance(value, str) and bool in getattr(info.annotation, "__args__", (info.annotation,)):
            lowered = value.strip().lower()
            out[name] = True if lowered in _TRUE else False if lowered in _FALSE else value
    return out


_TYPE_MESSAGES = {
    "missing": "This field is required.",
    "string_type": "Not a valid string.",
    "bool_type": "Must be true or false.",
    "dict_type": "Must be a JSON object.",
    "literal_error": "Not a valid choice.",
    "string_too_long": "Ensure this field has no more characters than allowed.",
    "string_pattern_mismatch": "Enter a valid value.",
}


def field_errors(exc: ValidationError) -> errors.FieldErrors:
    out: dict[str, list[str]] = {}
    for err in exc.errors(include_input=False, include_url=False):
        name = str(err["loc"][0]) if err["loc"] else "non_field_errors"
        message = _TYPE_MESSAGES.get(err["type"]) or str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "literal_error":
            message = f"Not a valid choice: expected {err['ctx']['expected']}."
        out.setdefault(name, []).append(message)
    return errors.FieldErrors(out)


def parse(model: type[M], event: dict[str, Any]) -> M:
    data, from_form = read_body(event)
    if from_form:
        data = _from_form(model, data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise field_errors(exc) from None


Flow = Callable[[Call[Any]], Reply]


@dataclass(frozen=True)
class Route:
    flow: Flow
    model: type[BaseModel] = _NoBody
    protected: bool = False
    operator: bool = False  # an AWS_IAM route: API Gateway checked the caller's SigV4 signature
    paths: tuple[str, ...] = ()
    elsewhere: bool = False  # served by another function on the same path: only named in Allow and CORS preflights  # only these resources (empty: every path routed to the function)
    # No gateway authorizer (the route also takes another credential, such as an
    # enrolment token): a bearer token, when sent, is checked here as the authorizer would.
    bearer_optional: bool = False

    def serves(self, resource: str) -> bool:
        return not self.paths or resource in self.paths


Routes = Route | tuple[Route, ...]  # one method of a function may serve several paths, each its own Route


def _serving(routes: Routes | None, resource: str) -> Route | None:
    for route in routes if isinstance(routes, tuple) else (routes,) if routes else ():
        if route.serves(resource):
            return route
    return None


# What browsers on allowed origins may send and read (CORS).
CORS_METHODS_EXTRA = "OPTIONS"
CORS_REQUEST_HEADERS = "Authorization, Content-Type"
CORS_EXPOSED_HEADERS = "Retry-After, WWW-Authenticate"
CORS_MAX_AGE = "600"


def _allowed_origin(event: dict[str, Any]) -> str | None:
    """The request's Origin when CORS_ALLOWED_ORIGINS lists it (exactly), else None."""
    origin = _header(event, "Origin").strip()
    return origin if origin and origin in settings().cors_origins else None


def with_cors(event: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """Answers to an allowed origin name it (never "*", never with credentials);
    other origins get no CORS header.  `Vary: Origin` whenever CORS is on, so
    no cache serves one origin's answer to another."""
    if not settings().cors_origins:
        return response
    headers = response.setdefault("headers", {})
    headers["Vary"] = "Origin"
    origin = _allowed_origin(event)
    if origin:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS
    return response


def _preflight(routes: dict[str, Routes], event: dict[str, Any], resource: str) -> dict[str, Any]:
    origin = _allowed_origin(event)
    if origin is None:
        raise errors.OriginNotAllowed()
    methods = sorted(m for m, r in routes.items() if _serving(r, resource))
    return {
        "statusCode": 204,
        "headers": {
            **{k: v for k, v in SECURITY_HEADERS.items() if k != "Content-Type"},
            "Access-Control-Allow-Methods": ", ".join([*methods, CORS_METHODS_EXTRA]),
            "Access-Control-Allow-Headers": CORS_REQUEST_HEADERS,
            "Access-Control-Max-Age": CORS_MAX_AGE,
        },
        "body": "",
        "isBase64Encoded": False,
    }


def dispatch(routes: dict[str, Routes], event: dict[str, Any]) -> dict[str, Any]:
    return with_cors(event, _dispatch(routes, event))


def _dispatch(routes: dict[str, Routes], event: dict[str, Any]) -> dict[str, Any]:
    try:
        resource = str(event.get("resource") or "")
        method = str(event.get("httpMethod", "")).upper()
        if method == "OPTIONS" and _header(event, "Access-Control-Request-Method") and _header(event, "Origin"):
            return _preflight(routes, event, resource)
        route = _serving(routes.get(method), resource)
        if route is None or route.elsewhere:
            refusal = errors.MethodNotAllowed()
            refusal.headers["Allow"] = ", ".join(sorted(m for m, r in routes.items() if _serving(r, resource)))
            raise refusal
        principal = _principal_of(event)
        if route.protected and principal is None and settings().authorize_in_function:
            principal = _authorize_here(event)
        if route.bearer_optional and principal is None and _header(event, "Authorization"):
            principal = _authorize_here(event)
        if route.protected and principal is None:
            raise errors.Unauthorized()
        operator = _operator_of(event) if route.operator else None
        if route.operator and operator is None:
            # Only API Gateway's IAM authorization reaches these flows; anything else is refused.
            raise errors.OperatorRequired()
        body = parse(route.model, event) if route.model is not _NoBody else _NoBody()
        call = Call(
            body=body,
            client=client_of(event),
            principal=principal,
            operator=operator,
            base_url=base_url_of(event),
            issuer=issuer_of(event),
            resource=resource,
            path_params={str(k): str(v) for k, v in (event.get("pathParameters") or {}).items()},
            query={str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()},
        )
        reply = route.flow(call)
        if reply.raw:
            return {"statusCode": reply.status, "headers": {**SECURITY_HEADERS, **reply.headers}, "body": reply.body, "isBase64Encoded": False}
        return respond(reply.status, reply.body, reply.headers)
    except errors.ServiceError as exc:
        logger.info("request refused", extra={"refusal": type(exc).__name__, "status": exc.status})
        return respond(exc.status, exc.body(), exc.headers)
    except Exception:  # the last line of defence: log the type and traceback, never the input
        logger.exception("unhandled error")
        return respond(500, {"error": "Internal server error", "message": "Something went wrong on our side."})


def handler(**routes: Routes) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Build a Lambda handler serving the given HTTP methods (GET=Route(...), POST=(Route(..., paths=...), ...))."""
    # Request models are built lazily (defer_build): a function builds only its own, at init.
    for served in routes.values():
        for route in served if isinstance(served, tuple) else (served,):
            route.model.model_rebuild()

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
    @metrics.log_metrics(capture_cold_start_metric=True)
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return dispatch(routes, event)

    return lambda_handler

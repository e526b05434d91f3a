"""A local stand-in for API Gateway: routes by the template's paths and
methods, runs the template's TOKEN authorizer on protected routes, invokes the
function's handler with a REST proxy event, and answers with the template's
gateway responses where API Gateway itself would answer.

Given a queue pump (local/queues.py), it drains every queue after each
request, so what the request queued has been handled when it returns (the
tests' set-up).  `make dev` runs the pump in a background thread instead
(`drain_queues=False`), and the gateway only wakes it after each request."""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from local import events, sigv4
from local.functions import LambdaContext, handler
from local.queues import QueuePump
from local.template import Route, Stack


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Gateway:
    def __init__(self, stack: Stack, queues: QueuePump | None = None, drain_queues: bool = True) -> None:
        self.stack = stack
        self.queues = queues
        self.drain_queues = drain_queues
        self.stage = stack.stage()
        self.routes = stack.routes()
        self.responses = stack.gateway_responses()

    def route(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        """The route for this request and its path parameters.  Trailing slashes
        are ignored, and a method route wins over the path's ANY route, as in API Gateway."""
        clean = "/" + path.strip("/") if path.strip("/") else "/"
        for wanted in (method, "ANY"):
            for r in self.routes:
                if r.method != wanted:
                    continue
                pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(r.path)) + "$"
                match = re.match(pattern, clean)
                if match:
                    return r, match.groupdict()
        return None, {}

    def gateway_response(self, kind: str, default_status: int, request_headers: list[tuple[str, str]] | None = None) -> Response:
        if not self.responses:  # an HTTP API: its own fixed answer for a path no route serves
            return Response(404, {"Content-Type": "application/json"}, b'{"message":"Not Found"}')
        spec = self.responses.get(kind) or self.responses.get("DEFAULT_5XX" if default_status >= 500 else "DEFAULT_4XX", {})
        headers = {"Content-Type": "application/json"}
        for name, value in ((spec.get("ResponseParameters") or {}).get("Headers") or {}).items():
            value = str(value)
            if value.startswith("method.request.header."):
                # A mapping from the request, as API Gateway does it: absent header, no response header.
                wanted = value.removeprefix("method.request.header.").lower()
                found = next((v for k, v in request_headers or [] if k.lower() == wanted), None)
                if found is not None:
                    headers[name] = found
                continue
            headers[name] = value.strip("'")
        body = (spec.get("ResponseTemplates") or {}).get("application/json", '{"message": null}')
        body = body.replace("$context.error.messageString", "Request refused")
        return Response(int(spec.get("StatusCode", default_status)), headers, body.encode())

    def handle(self, *args: Any, **kw: Any) -> Response:
        try:
            return self._handle(*args, **kw)
        finally:
            if self.queues is not None:
                if self.drain_queues:
                    self.queues.drain()
                else:
                    self.queues.nudge()

    def _handle(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        query: list[tuple[str, str]],
        body: bytes | None,
        source_ip: str,
    ) -> Response:
        method = method.upper()
        route, params = self.route(method, path)
        if route is None:
            return self.gateway_response("MISSING_AUTHENTICATION_TOKEN", 403, headers)
        # What API Gateway adds to every request it forwards.
        names = {k.lower() for k, _ in headers}
        host = next((v for k, v in headers if k.lower() == "host"), "")
        headers = list(headers)
        if "x-forwarded-for" not in names:
            headers.append(("X-Forwarded-For", source_ip))
        if "x-forwarded-proto" not in names:
            headers.append(("X-Forwarded-Proto", "http"))
        if "x-forwarded-port" not in names and ":" in host:
            headers.append(("X-Forwarded-Port", host.rsplit(":", 1)[1]))
        request_id = str(uuid.uuid4())
        event = events.proxy_event(
            method=method,
            path=path,
            resource=route.path,
            stage=self.stage,
            headers=headers,
            query=query,
            body=body,
            source_ip=source_ip,
            request_id=request_id,
        )
        event["pathParameters"] = params or None
        if route.iam:
            denied = self._check_signature(method, path, headers, query, body, event)
            if denied is not None:
                return denied
        if route.authorizer:
            denied = self._authorize(route, event, headers)
            if denied is not None:
                return denied
        return self._invoke(route.function, event, request_id)

    def _check_signature(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        query: list[tuple[str, str]],
        body: bytes | None,
        event: dict[str, Any],
    ) -> Response | None:
        """AWS_IAM authorization: a valid SigV4 signature of the emulator's
        principal, or API Gateway's 403.  The caller lands in requestContext.identity."""
        host = next((v for k, v in headers if k.lower() == "host"), "")
        verdict = sigv4.verify(method, host, path, query, headers, body)
        if isinstance(verdict, sigv4.Refusal):
            if not self.responses:  # an HTTP API's own answer
                return Response(403, {"Content-Type": "application/json"}, b'{"message":"Forbidden"}')
            return self.gateway_response(verdict.kind, 403, headers)
        identity = event["requestContext"]["identity"]
        identity.update({"accessKey": verdict.access_key, "accountId": sigv4.ACCOUNT, "caller": "AIDALOCAL", "user": "AIDALOCAL",
                         "userArn": verdict.arn})
        return None

    def _authorize(self, route: Route, event: dict[str, Any], headers: list[tuple[str, str]]) -> Response | None:
        token = next((v for k, v in headers if k.lower() == "authorization"), "")
        if not token:
            return self.gateway_response("UNAUTHORIZED", 401, headers)
        arn = f"arn:aws:execute-api:{self.stack.region}:{self.stack.account}:local/{self.stage}/{route.method}{route.path}"
        fn = handler(self.stack, route.authorizer)  # type: ignore[arg-type]
        try:
            result = fn(events.token_authorizer_event(token, arn), LambdaContext(route.authorizer or "", str(uuid.uuid4())))
        except Exception as exc:  # noqa: BLE001 - API Gateway turns any authorizer error into a response
            if str(exc) == "Unauthorized":
                return self.gateway_response("UNAUTHORIZED", 401, headers)
            return self.gateway_response("AUTHORIZER_FAILURE", 500, headers)
        statements = result.get("policyDocument", {}).get("Statement", [])
        if not any(s.get("Effect") == "Allow" for s in statements):
            return self.gateway_response("ACCESS_DENIED", 403, headers)
        context = {k: str(v) for k, v in (result.get("context") or {}).items()}
        event["requestContext"]["authorizer"] = {"principalId": result.get("principalId"), **context}
        return None

    def _invoke(self, function: str, event: dict[str, Any], request_id: str) -> Response:
        fn = handler(self.stack, function)
        try:
            result = fn(event, LambdaContext(function, request_id))
        except Exception:  # noqa: BLE001 - a crashed function is API Gateway's 502
            return Response(502, {"Content-Type": "application/json"}, b'{"message": "Internal server error"}')
        headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
        return Response(int(result.get("statusCode", 502)), headers, body)

"""API Gateway REST proxy events, in the shape `sam local generate-event
apigateway aws-proxy` produces, built from a real HTTP request."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import datetime, timezone
from typing import Any


def proxy_event(
    *,
    method: str,
    path: str,
    resource: str,
    stage: str,
    headers: list[tuple[str, str]],
    query: list[tuple[str, str]],
    body: bytes | None,
    source_ip: str,
    request_id: str | None = None,
) -> dict[str, Any]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    qs: dict[str, str] = {}
    mqs: dict[str, list[str]] = {}
    for name, value in query:
        qs[name] = value
        mqs.setdefault(name, []).append(value)
    text: str | None = None
    is_b64 = False
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, is_b64 = base64.b64encode(body).decode(), True
    now = datetime.now(timezone.utc)
    request_id = request_id or str(uuid.uuid4())
    user_agent = next((v for k, v in headers if k.lower() == "user-agent"), None)
    host = next((v for k, v in headers if k.lower() == "host"), "127.0.0.1")
    return {
        "body": text,
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "isBase64Encoded": is_b64,
        "queryStringParameters": qs or None,
        "multiValueQueryStringParameters": mqs or None,
        "pathParameters": None,
        "stageVariables": None,
        "headers": single,
        "multiValueHeaders": multi,
        "requestContext": {
            "accountId": "123456789012",
            "resourceId": "local",
            "stage": stage,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(time.time() * 1000),
            "path": f"/{stage}{path}",
            "resourcePath": resource,
            "httpMethod": method,
            "protocol": "HTTP/1.1",
            "apiId": "local",
            "domainName": host,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "accessKey": None,
                "sourceIp": source_ip,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": user_agent,
                "user": None,
            },
        },
    }


def token_authorizer_event(token: str, method_arn: str) -> dict[str, Any]:
    return {"type": "TOKEN", "authorizationToken": token, "methodArn": method_arn}

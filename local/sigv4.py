"""What API Gateway does for a route whose authorization is AWS_IAM, done
locally: check the request's SigV4 signature (service execute-api).

The emulator has one IAM principal: access key `local`, secret `local`
(the credentials `make dev` gives moto), in region us-east-1.  botocore's
own SigV4 implementation computes the signature the request should carry,
over the method, path, query, the headers the request says it signed, and
the SHA-256 of the body; the two are compared in constant time.  A date
more than 15 minutes off (API Gateway's window) is refused, as is a body
whose declared hash is not its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS_KEY = "local"
SECRET_KEY = "local"  # noqa: S105 - the emulator's published credentials, not a secret
REGION = "us-east-1"
SERVICE = "execute-api"
ACCOUNT = "123456789012"
PRINCIPAL_ARN = f"arn:aws:iam::{ACCOUNT}:user/local"
MAX_SKEW = timedelta(minutes=15)

_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9-]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[a-z0-9;_.-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class Refusal:
    kind: str  # the gateway response API Gateway would use
    reason: str


@dataclass(frozen=True)
class Caller:
    access_key: str
    arn: str


def verify(
    method: str, host: str, path: str, query: list[tuple[str, str]], headers: list[tuple[str, str]], body: bytes | None
) -> Caller | Refusal:
    """The signing caller, or why the request is refused."""
    lowered = [(k.lower(), v) for k, v in headers]
    authorization = next((v for k, v in lowered if k == "authorization"), "")
    if not authorization.startswith("AWS4-HMAC-SHA256 "):
        return Refusal("INCOMPLETE_SIGNATURE", "not signed with SigV4")
    match = _AUTHORIZATION.match(authorization.strip())
    if match is None:
        return Refusal("INCOMPLETE_SIGNATURE", "malformed Authorization header")
    if (match["key"], match["region"], match["service"]) != (ACCESS_KEY, REGION, SERVICE):
        return Refusal("INVALID_SIGNATURE", "unknown credentials or wrong scope")
    stamp = next((v for k, v in lowered if k == "x-amz-date"), "")
    try:
        signed_at = datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(tzinfo=timezone.utc)
    except ValueError:
        return Refusal("INCOMPLETE_SIGNATURE", "no X-Amz-Date")
    if abs(datetime.now(timezone.utc) - signed_at) > MAX_SKEW or stamp[:8] != match["date"]:
        return Refusal("INVALID_SIGNATURE", "signature expired")
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return Refusal("INCOMPLETE_SIGNATURE", "host and x-amz-date must be signed")
    data = body or b""
    declared = next((v for k, v in lowered if k == "x-amz-content-sha256"), None)
    if declared is not None and not hmac.compare_digest(declared.lower(), hashlib.sha256(data).hexdigest()):
        return Refusal("INVALID_SIGNATURE", "the body is not the one signed")
    values: dict[str, list[str]] = {}
    for k, v in lowered:
        values.setdefault(k, []).append(v)
    if any(name not in values for name in signed):
        return Refusal("INVALID_SIGNATURE", "a signed header is missing")
    request = AWSRequest(
        method=method.upper(),
        url=f"http://{host}{path}",
        headers={name: ",".join(values[name]) for name in signed},
        data=data,
        params=list(query),
    )
    # A declared X-Amz-Content-SHA256 (checked above to be the body's) stands for the body, as in AWS.
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), SERVICE, REGION)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"]):
        return Refusal("INVALID_SIGNATURE", "signature does not match")
    return Caller(access_key=ACCESS_KEY, arn=PRINCIPAL_ARN)


def sign(method: str, url: str, body: bytes | None, access_key: str, secret_key: str, token: str | None = None,
         region: str = REGION, headers: dict[str, str] | None = None) -> dict[str, str]:
    """The headers that sign a request (for tests and the admin command)."""
    request = AWSRequest(method=method.upper(), url=url, data=body or b"", headers=dict(headers or {}))
    SigV4Auth(Credentials(access_key, secret_key, token), SERVICE, region).add_auth(request)
    return {k: v for k, v in request.headers.items()}

"""`make admin ARGS="COMMAND ..."`: the operators' API, signed for you.

Signs each request with SigV4 (service execute-api) using the caller's AWS
credentials as botocore finds them (environment, profile, SSO, instance
role), and prints the answer's JSON.  Against a running `make dev` by default
(http://127.0.0.1:$PORT, signed with the emulator's credentials `local` /
`local`), or against a deployed stack when STACK_NAME is set (its ApiUrl
output; the credentials need the stack's AdminPolicy).  When neither answers,
one line says so and the exit status is 2.

Commands:
  find EMAIL                     the person with this email
  get USER_ID                    the person with this id
  disable USER_ID                deactivate; every session and token ends at once
  enable USER_ID                 reactivate
  unlock USER_ID                 clear the login lockout and code limits
  sign-out USER_ID               end every session
  force-password-reset USER_ID   void the password, end sessions, email a reset code
  delete USER_ID                 erase the person
  audit USER_ID                  the person's audit trail
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from urllib.parse import quote, urlencode

from local import sigv4

# command -> (method, path template, query parameter or None)
COMMANDS: dict[str, tuple[str, str, str | None]] = {
    "find": ("GET", "/admin/users", "email"),
    "get": ("GET", "/admin/users/{}", None),
    "disable": ("POST", "/admin/users/{}/disable", None),
    "enable": ("POST", "/admin/users/{}/enable", None),
    "unlock": ("POST", "/admin/users/{}/unlock", None),
    "sign-out": ("POST", "/admin/users/{}/sign-out", None),
    "force-password-reset": ("POST", "/admin/users/{}/force-password-reset", None),
    "delete": ("DELETE", "/admin/users/{}", None),
    "audit": ("GET", "/admin/users/{}/audit", None),
}


class Unreachable(Exception):
    """Said in one line, no traceback."""


def _target() -> tuple[str, str, str, str | None, str]:
    """The API's base URL, the signing credentials and region, and where that is."""
    stack = os.environ.get("STACK_NAME")
    if stack:
        import boto3
        import botocore.session

        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        try:
            outputs = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
            url = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "ApiUrl")
        except Exception as exc:  # noqa: BLE001 - any AWS failure is one line for the operator
            raise Unreachable(f"cannot read the ApiUrl of stack {stack} in {region}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
        credentials = botocore.session.get_session().get_credentials()
        if credentials is None:
            raise Unreachable("no AWS credentials found (environment, profile or role) to sign with")
        frozen = credentials.get_frozen_credentials()
        return url.rstrip("/"), frozen.access_key, frozen.secret_key, frozen.token, region
    url = f"http://127.0.0.1:{os.environ.get('PORT', '3000')}"
    return url, sigv4.ACCESS_KEY, sigv4.SECRET_KEY, None, sigv4.REGION


def call(command: str, argument: str) -> tuple[int, object]:
    method, template, query_name = COMMANDS[command]
    base, access_key, secret_key, token, region = _target()
    path = template.format(quote(argument, safe="")) if query_name is None else template
    url = base + path + (("?" + urlencode({query_name: argument}, quote_via=quote)) if query_name else "")
    headers = sigv4.sign(method, url, None, access_key, secret_key, token, region=region)
    request = urllib.request.Request(url, method=method, headers={**headers, "User-Agent": "carekey-admin"})  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # nosec B310 - the URL is ours
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, {"error": exc.reason}
    except (urllib.error.URLError, OSError) as exc:
        where = f"stack {os.environ['STACK_NAME']}" if os.environ.get("STACK_NAME") else f"`make dev` at {base}"
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"{where} does not answer ({reason}): start `make dev` or set STACK_NAME") from None


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in COMMANDS or not argv[1]:
        print('usage: make admin ARGS="find EMAIL | get|disable|enable|unlock|sign-out|force-password-reset|delete|audit USER_ID"')
        return 2
    try:
        status, body = call(argv[0], argv[1])
    except Unreachable as exc:
        print(f"admin: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(body, indent=2))
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

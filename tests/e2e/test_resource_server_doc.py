"""docs/resource-servers.md: its Python example verifies the local API's
access tokens over HTTP, as another service would, and refuses the rest."""

from __future__ import annotations

import re

import jwt
import pytest

from local.template import ROOT

pytestmark = pytest.mark.e2e
PASSWORD = "amber-lighthouse-violin-58"


def _python_example() -> str:
    text = (ROOT / "docs" / "resource-servers.md").read_text()
    return re.search(r"```python\n(.*?)```", text, flags=re.S).group(1)


def test_the_documented_python_verifier_accepts_access_tokens_and_nothing_else(local_api):
    # Given the documented verifier, pointed at the local API
    code = _python_example()
    code = code.replace('ISSUER = "https://auth.example.org"', f'ISSUER = "{local_api.url}"')
    code = code.replace('AUDIENCE = "carekey-prod-api"', 'AUDIENCE = "carekey-carekey-local-api"')
    namespace: dict = {}
    exec(compile(code, "resource-servers.md", "exec"), namespace)  # noqa: S102 - our own documentation's example
    verify = namespace["verify"]
    # and a signed-in user
    body = local_api.signed_in_user("doc.reader@example.com", PASSWORD)
    # When it verifies the access token, it gets the user's claims
    claims = verify(body["access"])
    assert claims["sub"] == claims["user_id"] == body["user"]["id"]
    assert claims["iss"] == local_api.url
    # Then the refresh token, a tampered token and a token of the wrong type are refused
    head, payload, signature = body["access"].split(".")
    for bad in (body["refresh"], f"{head}.{payload}.{signature[:-4]}AAAA"):
        with pytest.raises(jwt.InvalidTokenError):
            verify(bad)

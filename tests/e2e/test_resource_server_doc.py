"""docs/resource-servers.md: its Python example verifies the local API's
access tokens over HTTP, as another service would, and refuses the rest."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

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


def _node_example() -> str:
    text = (ROOT / "docs" / "resource-servers.md").read_text()
    return re.search(r"```js\n(.*?)```", text, flags=re.S).group(1)


_DRIVER = """
import { verify } from "./verify.mjs";
const results = [];
for (const token of process.argv.slice(2)) {
  try {
    results.push({ ok: true, sub: (await verify(token)).sub });
  } catch (error) {
    results.push({ ok: false, code: error.code || error.name });
  }
}
console.log(JSON.stringify(results));
"""


@pytest.mark.skipif(shutil.which("node") is None or not (ROOT / "node_modules" / "jose").is_dir(), reason="needs node and `npm ci`")
def test_the_documented_node_jose_verifier_accepts_access_tokens_and_nothing_else(local_api, tmp_path):
    # Given the documented jose verifier, pointed at the local API (beside node_modules, where node finds jose)
    workdir = ROOT / ".local" / f"jose-{tmp_path.name}"
    workdir.mkdir(parents=True, exist_ok=True)
    code = _node_example().replace('"https://auth.example.org"', f'"{local_api.url}"').replace('"carekey-prod-api"', '"carekey-carekey-local-api"')
    (workdir / "verify.mjs").write_text(code)
    (workdir / "driver.mjs").write_text(_DRIVER)
    body = local_api.signed_in_user("jose.reader@example.com", PASSWORD)
    # When it checks an access token and a refresh token
    try:
        run = subprocess.run(["node", "driver.mjs", body["access"], body["refresh"]], cwd=workdir, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assert run.returncode == 0, run.stderr
    access, refresh = json.loads(run.stdout)
    # Then it accepts the first and refuses the second
    assert access == {"ok": True, "sub": body["user"]["id"]}
    assert refresh["ok"] is False

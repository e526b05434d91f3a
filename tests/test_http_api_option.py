"""The HTTP API deployment option: template-httpapi.yaml, generated from template.yaml,
serves the same contract with the functions checking bearer tokens themselves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from local.gateway import Gateway
from local.http_api import http_api_template
from local.template import Stack, load
from tests.client import ApiClient
from tests.conftest import QUEUES


@pytest.fixture(scope="module")
def http_template() -> dict:
    return http_api_template()


@pytest.fixture
def http_api(http_template, outbox, settings_override) -> ApiClient:
    # Given the functions deployed as the HTTP API option deploys them
    settings_override(AUTHORIZE_IN_FUNCTION="true")
    # (the email queue is the same in both options: the tests' pump consumes it)
    return ApiClient(Gateway(Stack(name="carekey-test", source=http_template), queues=QUEUES), outbox)


def _routes(template: dict, kind: str) -> set[tuple[str, str]]:
    return {
        (e["Properties"]["Path"], e["Properties"]["Method"].lower())
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
        for e in (r["Properties"].get("Events") or {}).values()
        if e["Type"] == kind
    }


def test_every_rest_route_is_an_http_api_route_with_rest_events(http_template):
    rest_routes = _routes(load(), "Api")
    assert rest_routes and _routes(http_template, "HttpApi") == rest_routes
    assert not _routes(http_template, "Api")
    events = [e for r in http_template["Resources"].values() for e in (r.get("Properties") or {}).get("Events", {}).values() if e["Type"] == "HttpApi"]
    assert {e["Properties"]["PayloadFormatVersion"] for e in events} == {"1.0"}
    assert not [k for k, r in http_template["Resources"].items() if r["Type"] in ("AWS::Serverless::Api", "AWS::WAFv2::WebACLAssociation")]
    assert http_template["Globals"]["Function"]["Environment"]["Variables"]["AUTHORIZE_IN_FUNCTION"] == "true"


def test_protected_functions_get_the_authorizers_permissions(http_template):
    authorizer_policies = load()["Resources"]["AuthorizerFunction"]["Properties"]["Policies"]
    profile_policies = http_template["Resources"]["ProfileFunction"]["Properties"]["Policies"]
    assert all(p in profile_policies for p in authorizer_policies)


def test_the_generated_template_passes_cfn_lint(http_template, tmp_path):
    # (written beside the real one would be where `sam build -t` reads it; the lint needs no code)
    path = tmp_path / "template-httpapi.yaml"
    path.write_text(yaml.safe_dump(http_template, sort_keys=False))
    done = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]


def test_a_signed_in_person_uses_protected_routes_with_no_gateway_authorizer(http_api):
    # Given a person signed in through the HTTP API
    http_api.verified_user("http.api@example.com")
    tokens = http_api.login("http.api@example.com")

    # When they read their profile, then sign out
    profile = http_api.get("/profile", token=tokens["access"])
    assert profile.status == 200 and profile.json()["email"] == "http.api@example.com"
    assert http_api.post("/logout", {}, token=tokens["access"]).status == 200

    # Then the same token is refused by the function itself, as the REST API's authorizer refuses it
    refused = http_api.get("/profile", token=tokens["access"])
    assert refused.status == 401
    assert set(refused.json()) >= {"error", "message"}


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer " + "a" * 5000])
def test_missing_or_bad_tokens_get_the_documented_401(http_api, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    refused = http_api.get("/profile", headers=headers)
    assert refused.status == 401
    assert set(refused.json()) >= {"error", "message"}
    # the same RFC 6750 challenge and SimpleJWT code the REST API's gateway answers with
    assert refused.headers["WWW-Authenticate"].startswith('Bearer realm="carekey"')
    bearer = bool(authorization) and authorization.startswith("Bearer ")
    assert refused.json()["code"] == ("token_not_valid" if bearer else "not_authenticated")


def test_an_unknown_path_gets_the_http_apis_own_404(http_api):
    missing = http_api.get("/no-such-path")
    assert missing.status == 404 and missing.json() == {"message": "Not Found"}

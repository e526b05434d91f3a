"""The OpenAPI 3.1 document: generated from the code, checked in, served, valid."""

from __future__ import annotations

import json
import re

from carekey.catalog import ENDPOINTS
from carekey.openapi import document
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from local.openapi_file import OPENAPI_FILE, generated


def test_the_checked_in_copy_matches_the_code():
    # When this fails, run `make openapi` and commit docs/openapi.json.
    assert json.loads(OPENAPI_FILE.read_text()) == json.loads(generated())


def test_the_document_is_valid_openapi_3_1():
    spec = document()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_every_operation_and_its_errors_are_described():
    spec = document()
    for ep in ENDPOINTS:
        op = spec["paths"][ep.path][ep.method.lower()]
        assert str(ep.status) in op["responses"], ep.name
        for status in ep.errors:
            assert str(status) in op["responses"], (ep.name, status)
        assert "405" in op["responses"]
        if ep.auth:
            assert op["security"] == [{"bearerAuth": []}] and "401" in op["responses"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_request_schemas_come_from_the_models_the_code_validates_with():
    spec = document()
    register = spec["components"]["schemas"]["RegisterRequest"]
    assert set(register["required"]) == {"email", "password", "password2"}
    assert register["properties"]["email"]["format"] == "email"
    assert spec["components"]["schemas"]["ResendOtpRequest"]["properties"]["context"]["enum"] == ["registration", "password_reset"]


def test_served_document_equals_the_generated_one_with_the_callers_server(api):
    r = api.get("/openapi.json")
    assert r.status == 200
    served = r.json()
    assert served["servers"] == [{"url": "http://127.0.0.1:3000"}]
    served.pop("servers")
    expected = document()
    expected.pop("servers")
    assert served == expected


def test_responses_match_their_documented_schemas(api, settings_override):
    # Given a real session, each response body validates against its operation's schema.
    from jsonschema import Draft202012Validator

    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    spec = document()

    def check(path: str, method: str, response) -> None:
        op = spec["paths"][path][method]
        schema = op["responses"][str(response.status)]["content"]["application/json"]["schema"]
        resolver_doc = {"components": spec["components"], **schema}
        Draft202012Validator(resolver_doc).validate(response.json())

    check("/register", "post", api.register("schema@example.com"))
    check("/verify-otp", "post", api.post("/verify-otp", {"email": "schema@example.com", "otp": "000000"}))
    check("/verify-otp", "post", api.post("/verify-otp", {"email": "schema@example.com", "otp": api.latest_code("schema@example.com")}))
    login = api.post("/login", {"email": "schema@example.com", "password": "violet-kettle-harbour-42"})
    check("/login", "post", login)
    token = login.json()["access"]
    check("/profile", "get", api.get("/profile", token=token))
    check("/token/refresh", "post", api.post("/token/refresh", {"refresh": login.json()["refresh"]}))
    check("/forgot-password", "post", api.post("/forgot-password", {"email": "schema@example.com"}))
    check("/resend-otp", "post", api.post("/resend-otp", {"email": "schema@example.com"}))
    check("/", "get", api.get("/"))
    check("/.well-known/jwks.json", "get", api.get("/.well-known/jwks.json"))
    check("/login", "post", api.post("/login", raw=b"{"))


def test_other_methods_get_405_with_allow(api):
    r = api.request("PATCH", "/profile")
    assert r.status == 405 and r.headers["Allow"] == "DELETE, GET, PUT"
    r = api.request("PUT", "/me")
    assert r.status == 405 and r.headers["Allow"] == "GET"


def test_docs_page_and_its_assets_are_served_here(api):
    page = api.get("/docs")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    text = page.body.decode()
    assert "cdn" not in text.lower() and "unpkg" not in text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "start.js"):
        assert asset in text
        r = api.get(f"/docs/{asset}")
        assert r.status == 200 and len(r.body) > 100
    assert api.get("/docs/../template.yaml").status == 404
    assert api.get("/docs/nothing.js").status == 404


# ---- headers are data: the documentation never reflects what a client sends ----------------

_HOSTILE = '"><script>alert(1)</script>'


def test_forwarded_proto_and_host_do_not_reach_the_docs_page_or_the_document(api):
    # Given a client that sends hostile Host and X-Forwarded-Proto headers
    headers = {"X-Forwarded-Proto": f"javascript:alert(1)//{_HOSTILE}"}
    # When it fetches the (publicly cached) page and document
    page = api.get("/docs", headers=headers)
    spec = api.get("/openapi.json", headers=headers)
    # Then neither carries the header: URLs come from the gateway's request context
    assert page.status == 200 and spec.status == 200
    assert "javascript:" not in page.body.decode() and "<script>alert" not in page.body.decode()
    assert 'href="http://127.0.0.1:3000/docs/swagger-ui.css"' in page.body.decode()
    assert spec.json()["servers"] == [{"url": "http://127.0.0.1:3000"}]

    hostile_host = api.request("GET", "/docs", headers={"Host": f"evil.example{_HOSTILE}"})
    assert hostile_host.status == 200
    text = hostile_host.body.decode()
    assert "<script>alert" not in text and "evil.example" not in text
    assert 'src="http://127.0.0.1:3000/docs/swagger-ui-bundle.js"' in text  # the domain the gateway answered on


def _docs_event(resource: str, domain: object, stage: object, headers: dict, asset: str | None = None) -> dict:
    return {
        "httpMethod": "GET",
        "resource": resource,
        "path": resource,
        "headers": headers,
        "pathParameters": {"asset": asset} if asset is not None else None,
        "requestContext": {"requestId": "r", "stage": stage, "domainName": domain, "identity": {"sourceIp": "203.0.113.9"}},
    }


def _serve(event: dict) -> dict:
    from local.functions import LambdaContext, handler
    from tests.conftest import STACK

    return handler(STACK, "DocsFunction")(event, LambdaContext("docs", "test"))


def test_urls_come_from_the_domain_and_stage_api_gateway_reports():
    # Given a request through API Gateway's default domain, with lying headers
    event = _docs_event(
        "/openapi.json", "abc123.execute-api.us-east-1.amazonaws.com", "Prod", {"Host": "evil.example", "X-Forwarded-Proto": "http"}
    )
    # When the document is served, Then its server is the real domain with the stage, over HTTPS
    r = _serve(event)
    assert r["statusCode"] == 200
    assert json.loads(r["body"])["servers"] == [{"url": "https://abc123.execute-api.us-east-1.amazonaws.com/Prod"}]
    # A custom domain carries no stage; a hostile stage or domain is never echoed
    r = _serve(_docs_event("/openapi.json", "auth.example.org", "Prod", {}))
    assert json.loads(r["body"])["servers"] == [{"url": "https://auth.example.org"}]
    r = _serve(_docs_event("/docs", "abc.execute-api.us-east-1.amazonaws.com", f"x{_HOSTILE}", {}))
    assert r["statusCode"] == 200 and "<script>alert" not in r["body"]
    assert 'href="https://abc.execute-api.us-east-1.amazonaws.com/docs/swagger-ui.css"' in r["body"]
    for domain in (None, 42, "", "a" * 300, f"x{_HOSTILE}", "évil.example"):
        r = _serve(_docs_event("/docs", domain, "Prod", {}))
        assert r["statusCode"] == 200 and 'src="/docs/start.js"' in r["body"], domain


def test_only_the_pages_own_assets_are_served(api):
    # A 300-character asset name used to reach the file system and answer 500
    for name in ("a" * 300 + ".js", "a" * 5000 + ".css", "README", "SWAGGER-UI-LICENSE", "..%2Fapp.py", "%00.js", ".js"):
        r = api.get(f"/docs/{name}")
        assert r.status == 404, (name, r.status)
        assert r.json()["error"] == "Not found"


_OWN_URL = re.compile(r"^(https?://[a-z0-9.:-]+(/[A-Za-z0-9_-]+)?)?/(docs/[a-z.-]+|openapi\.json)$")


@given(domain=st.one_of(st.none(), st.integers(), st.text(max_size=400)), stage=st.one_of(st.none(), st.text(max_size=200)), asset=st.text(max_size=400))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_request_context_or_asset_name_yields_a_5xx(domain, stage, asset):
    for resource in ("/docs", "/openapi.json", "/docs/{asset}"):
        r = _serve(_docs_event(resource, domain, stage, {"Host": str(domain)}, asset))
        assert r["statusCode"] in (200, 404), (resource, r["statusCode"])
        if resource == "/docs":
            page = r["body"]
            assert page.count("<script") == 2 and page.count("<link") == 1
            urls = re.findall(r'(?:href|src|data-spec)="([^"]*)"', page)
            assert len(urls) == 4
            assert all(_OWN_URL.match(u) for u in urls), urls




def test_every_operation_is_described_and_says_whether_it_needs_a_token():
    doc = document()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            # a new endpoint needs its entry in carekey.catalog.DETAILS
            assert op["description"] and op["description"] != op["summary"], (method, path, "add it to catalog.DETAILS")
            protected = any(e.auth for e in ENDPOINTS if e.path == path and e.method.lower() == method)
            operator = any(e.operator for e in ENDPOINTS if e.path == path and e.method.lower() == method)
            optional = any(e.bearer_optional for e in ENDPOINTS if e.path == path and e.method.lower() == method)
            expected = [{"sigv4": []}] if operator else [{"bearerAuth": []}] if protected else [{"bearerAuth": []}, {}] if optional else []
            assert op["security"] == expected, (method, path)


def test_the_error_shapes_cannot_be_mistaken_for_one_another():
    from carekey import errors
    from carekey.schemas import ErrorResponse, FieldErrorsResponse, TokenErrorResponse
    from jsonschema import Draft202012Validator

    schemas = {m: Draft202012Validator(m.model_json_schema(mode="serialization")) for m in (ErrorResponse, FieldErrorsResponse, TokenErrorResponse)}
    bodies = {
        ErrorResponse: errors.InvalidOtp().body(),
        FieldErrorsResponse: errors.FieldErrors({"email": ["Enter a valid email address."]}).body(),
        TokenErrorResponse: errors.InvalidToken().body(),
    }
    for shape, body in bodies.items():
        matches = [m for m, validator in schemas.items() if validator.is_valid(body)]
        assert matches == [shape], (shape.__name__, [m.__name__ for m in matches])
    assert schemas[TokenErrorResponse].is_valid(errors.Unauthorized().body())
    # a 400 is documented with the specific shape first, as generated clients try them in order
    bad_request = document()["paths"]["/register"]["post"]["responses"]["400"]["content"]["application/json"]["schema"]
    assert bad_request["oneOf"][0] == {"$ref": "#/components/schemas/ErrorResponse"}

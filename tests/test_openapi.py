"""The OpenAPI 3.1 document: generated from the code, checked in, served, valid."""

from __future__ import annotations

import json

from carekey.catalog import ENDPOINTS
from carekey.openapi import document
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
    r = api.request("DELETE", "/profile")
    assert r.status == 405 and r.headers["Allow"] == "GET, PUT"
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

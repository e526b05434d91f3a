"""Browsers on other origins (CORS) and the request bodies Django REST
framework accepted (form-encoded and multipart), as legacy clients send them."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from carekey import api as http
from carekey import errors
from carekey.config import Settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from local.gateway import Gateway
from local.template import Stack
from tests.client import PASSWORD, ApiClient
from tests.conftest import QUEUES

APP = "https://app.example.com"
DEV = "http://localhost:5173"
STRANGER = "https://evil.example"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def cors_api(settings_override, outbox) -> ApiClient:
    """The API deployed with CorsAllowedOrigins set (the gateway's responses and the functions' setting)."""
    origins = f"{APP}, {DEV}"
    settings_override(CORS_ALLOWED_ORIGINS=origins)
    return ApiClient(Gateway(Stack(name="carekey-test", overrides={"CorsAllowedOrigins": origins}), queues=QUEUES), outbox)


def _preflight(client: ApiClient, path: str, origin: str, method: str = "POST"):
    return client.request(
        "OPTIONS", path, headers={"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "content-type"}
    )


# ---- CORS ---------------------------------------------------------------------------------


def test_a_preflight_from_an_allowed_origin_gets_204_with_the_methods_and_headers(cors_api):
    r = _preflight(cors_api, "/login", APP)
    assert r.status == 204 and r.body == b""
    assert r.headers["Access-Control-Allow-Origin"] == APP
    assert r.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert r.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert r.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in r.headers


def test_a_preflight_of_a_protected_path_needs_no_token(cors_api):
    r = _preflight(cors_api, "/profile", DEV, method="PUT")
    assert r.status == 204
    assert r.headers["Access-Control-Allow-Origin"] == DEV
    assert r.headers["Access-Control-Allow-Methods"] == "DELETE, GET, PUT, OPTIONS"


def test_a_preflight_from_another_origin_gets_no_cors_headers(cors_api):
    for origin in (STRANGER, APP + ".evil.example", "null", APP.replace("https", "http")):
        r = _preflight(cors_api, "/login", origin)
        assert r.status == 403 and r.json()["error"] == "Origin not allowed"
        assert not [h for h in r.headers if h.lower().startswith("access-control-")]


def test_answers_to_an_allowed_origin_carry_its_name_errors_included(cors_api):
    cors_api.verified_user("cors@example.com")
    ok = cors_api.post("/login", {"email": "cors@example.com", "password": PASSWORD}, headers={"Origin": APP})
    wrong = cors_api.post("/login", {"email": "cors@example.com", "password": "nope-nope-nope"}, headers={"Origin": APP})
    malformed = cors_api.post("/login", raw=b"{not json", headers={"Origin": APP})
    for r, status in ((ok, 200), (wrong, 401), (malformed, 400)):
        assert r.status == status
        assert r.headers["Access-Control-Allow-Origin"] == APP and r.headers["Vary"] == "Origin"
        assert "WWW-Authenticate" in r.headers["Access-Control-Expose-Headers"]
        assert "Access-Control-Allow-Credentials" not in r.headers
    # and the tokens the browser app reads work
    assert cors_api.get("/profile", token=ok.json()["access"], headers={"Origin": APP}).headers["Access-Control-Allow-Origin"] == APP


def test_the_gateways_own_answers_carry_cors_headers_for_an_allowed_origin(cors_api):
    missing = cors_api.get("/profile", headers={"Origin": APP})
    invalid = cors_api.get("/profile", token="not-a-token", headers={"Origin": APP})
    nowhere = cors_api.get("/no/such/path", headers={"Origin": APP})
    for r, status in ((missing, 401), (invalid, 401), (nowhere, 404)):
        assert r.status == status
        assert r.headers["Access-Control-Allow-Origin"] == APP and r.headers["Vary"] == "Origin"
    assert invalid.json()["code"] == "token_not_valid" and "WWW-Authenticate" in invalid.headers


def test_answers_to_another_origin_carry_no_cors_headers(cors_api):
    cors_api.verified_user("cors@example.com")
    r = cors_api.post("/login", {"email": "cors@example.com", "password": PASSWORD}, headers={"Origin": STRANGER})
    assert r.status == 200
    assert "Access-Control-Allow-Origin" not in r.headers and r.headers["Vary"] == "Origin"


def test_without_allowed_origins_there_is_no_cross_origin_access(api):
    # Given the default: CORS_ALLOWED_ORIGINS empty
    r = _preflight(api, "/login", APP)
    assert r.status == 403
    answer = api.get("/profile", headers={"Origin": APP})
    for response in (r, answer, api.get("/", headers={"Origin": APP})):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    # a plain OPTIONS without a preflight is an ordinary unsupported method
    assert api.request("OPTIONS", "/login").status == 405


@pytest.mark.parametrize("value", ["*", "https://*.example.com", "app.example.com", "https://app.example.com/path"])
def test_a_wildcard_or_a_non_origin_is_refused_at_cold_start(value):
    with pytest.raises(ValidationError):
        Settings.model_validate({"CORS_ALLOWED_ORIGINS": value})


def test_every_gateway_response_names_an_allowed_origin_only_when_cors_is_on():
    on = Stack(name="carekey-test", overrides={"CorsAllowedOrigins": APP}).gateway_responses()
    off = Stack(name="carekey-test").gateway_responses()
    for kind, spec in on.items():
        headers = spec["ResponseParameters"]["Headers"]
        assert headers["Access-Control-Allow-Origin"] == "method.request.header.Origin", kind
        assert headers["Vary"] == "'Origin'", kind
        assert "Access-Control-Allow-Origin" not in off[kind].get("ResponseParameters", {}).get("Headers", {}), kind


# ---- bodies as Django REST framework took them --------------------------------------------


def _form(client: ApiClient, path: str, fields: dict, token: str | None = None):
    return client.request("POST", path, raw=urlencode(fields).encode(), token=token, headers={"Content-Type": FORM})


def _multipart(fields: dict, files: dict | None = None, boundary: str = "----carekey-test-boundary") -> tuple[bytes, str]:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    for name, (filename, content) in (files or {}).items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n{content}\r\n"
        )
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"


def _post_multipart(client: ApiClient, path: str, fields: dict, files: dict | None = None, token: str | None = None):
    body, content_type = _multipart(fields, files)
    return client.request("POST", path, raw=body, token=token, headers={"Content-Type": content_type})


def test_a_legacy_client_signs_up_and_in_with_forms(api):
    # Given a DRF-era client that posts forms
    email = "forms@example.com"
    reg = _form(api, "/register", {"email": email, "first_name": "Ada", "last_name": "Byron", "password": PASSWORD, "password2": PASSWORD})
    assert reg.status == 201 and reg.json()["user"]["email"] == email
    verified = _post_multipart(api, "/verify-otp", {"email": email, "otp": api.latest_code(email)})
    assert verified.status == 200 and verified.json()["verified"] is True
    login = _post_multipart(api, "/login", {"email": email, "password": PASSWORD}, files={"avatar": ("a.png", "ignored")})
    assert login.status == 200
    refreshed = _form(api, "/token/refresh", {"refresh": login.json()["refresh"]})
    assert refreshed.status == 200
    # and "true" in a form is a boolean, as DRF read it
    other = api.login(email)
    assert _form(api, "/logout", {"all": "true"}, token=refreshed.json()["access"]).json()["all"] is True
    assert api.get("/profile", token=other["access"]).status == 401


def test_forms_get_the_same_field_errors_as_json(api):
    fields = {"email": "not-an-email", "password": "short"}
    as_json = api.post("/register", fields)
    as_form = _form(api, "/register", fields)
    as_multipart = _post_multipart(api, "/register", fields)
    assert as_json.status == as_form.status == as_multipart.status == 400
    assert as_json.json() == as_form.json() == as_multipart.json()
    assert "password2" in as_form.json() and "email" in as_form.json()
    assert _form(api, "/logout", {"all": "maybe"}, token=None).status == 401


def test_a_non_boolean_in_a_form_is_a_field_error(api):
    api.verified_user("forms@example.com")
    pair = api.login("forms@example.com")
    r = _form(api, "/logout", {"all": "maybe"}, token=pair["access"])
    assert r.status == 400 and r.json() == {"all": ["Must be true or false."]}


def test_forms_have_the_same_size_limit(api):
    big = {"email": "x@example.com", "password": "p" * 17000}
    assert _form(api, "/login", big).status == 413
    assert _post_multipart(api, "/login", big).status == 413


@pytest.mark.parametrize(
    "raw, content_type",
    [
        (b"email=%ZZ&password", FORM),
        (b"email=\xff\xfe", FORM),
        ("&".join(f"f{i}=1" for i in range(100)).encode(), FORM),
        (b"--x\r\nContent-Disposition: form-data\r\n\r\nnameless\r\n--x--\r\n", "multipart/form-data; boundary=x"),
        (b"email=a", "multipart/form-data"),
        (b"--x\r\nContent-Disposition: form-data; name=\"email\"\r\nContent-Type: text/plain; charset=nope\r\n\r\nx\r\n--x--\r\n", "multipart/form-data; boundary=x"),
    ],
)
def test_a_broken_form_is_a_clear_400(api, raw, content_type):
    r = api.request("POST", "/login", raw=raw, headers={"Content-Type": content_type})
    assert r.status == 400 and r.json()["error"] == "Malformed request", r.body


def _event(body: bytes, content_type: str) -> dict:
    return {"body": body.decode("utf-8", "surrogateescape"), "headers": {"Content-Type": content_type}, "isBase64Encoded": False}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.binary(max_size=400),
    content_type=st.sampled_from([FORM, "multipart/form-data; boundary=b", "multipart/form-data", "multipart/form-data; boundary=\"\""]),
)
def test_the_form_parsers_never_fail_with_anything_but_a_4xx(body, content_type):
    from carekey import schemas

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return
    for model in (schemas.LoginRequest, schemas.LogoutRequest, schemas.RegisterRequest):
        try:
            http.parse(model, _event(text.encode(), content_type))
        except errors.ServiceError as exc:
            assert 400 <= exc.status < 500
            assert isinstance(exc.body(), dict)
            json.dumps(exc.body())

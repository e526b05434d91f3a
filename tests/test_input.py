"""Bad input: always a 4xx JSON error in the documented format, never a 5xx."""

from __future__ import annotations

import base64
import json

import pytest
from carekey import api as http
from carekey import errors, tokens
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

POST_PATHS = [
    "/register",
    "/verify-otp",
    "/resend-otp",
    "/login",
    "/forgot-password",
    "/verify-password-reset-otp",
    "/reset-password",
    "/resend-password-reset-otp",
    "/token/refresh",
]


@pytest.mark.parametrize("path", POST_PATHS)
@pytest.mark.parametrize(
    "raw",
    [b"{", b"[]", b'"text"', b"null", b"42", b'{"email": NaN}', b"\xff\xfe\x00", b"[" * 5000 + b"]" * 5000, b'{"a":' * 2000],
)
def test_malformed_bodies_get_a_400_json_error(api, path, raw):
    r = api.post(path, raw=raw)
    assert r.status == 400, (path, raw[:20], r.body)
    body = r.json()
    assert "error" in body and "message" in body


@pytest.mark.parametrize("path", POST_PATHS)
def test_wrong_types_and_nulls_get_field_errors(api, path):
    r = api.post(path, {"email": 12, "otp": 123456, "password": None, "refresh": ["x"], "context": None})
    assert r.status == 400
    assert all(isinstance(v, list) and all(isinstance(m, str) for m in v) for v in r.json().values())


def test_control_characters_are_refused(api):
    r = api.post("/login", {"email": "a\x00@example.com", "password": "x"})
    assert r.status == 400 and "email" in r.json()
    r = api.register("ctrl@example.com", first_name="Ada\u0007")
    assert r.status == 400 and "first_name" in r.json()


def test_odd_unicode_is_handled(api):
    r = api.register("unicode@example.com", first_name="Zoë 李 🙂", password="ǅemer-kettle-ﬁsh-42", password2="ǅemer-kettle-ﬁsh-42")
    assert r.status == 201
    assert r.json()["user"]["first_name"] == "Zoë 李 🙂"
    lone_surrogate = b'{"email": "x@example.com", "password": "\\ud800"}'
    assert api.post("/login", raw=lone_surrogate).status == 400


def test_bodies_over_16kb_get_413(api):
    r = api.post("/login", {"email": "big@example.com", "password": "x" * 17000})
    assert r.status == 413
    assert r.json()["error"] == "Payload too large"


def test_base64_bodies_are_decoded(gateway):
    event = {
        "httpMethod": "POST",
        "body": base64.b64encode(json.dumps({"email": "nope"}).encode()).decode(),
        "isBase64Encoded": True,
        "requestContext": {"requestId": "r", "identity": {"sourceIp": "203.0.113.1"}},
    }
    from carekey.schemas import EmailOnlyRequest

    with pytest.raises(errors.FieldErrors):
        http.parse(EmailOnlyRequest, event)
    event["body"] = "!!!not-base64!!!"
    with pytest.raises(errors.MalformedRequest):
        http.parse(EmailOnlyRequest, event)


def test_unknown_paths_and_methods(api):
    assert api.get("/nowhere").status == 404
    assert api.get("/nowhere").json()["error"] == "Not found"
    r = api.get("/register")
    assert r.status == 405 and r.json()["error"] == "Method not allowed"


def test_paths_answer_with_a_trailing_slash(api):
    assert api.post("/register/", {}).status == 400
    assert api.get("/").status == 200


def test_api_root_documents_the_api(api):
    r = api.get("/")
    assert r.status == 200
    doc = r.json()
    assert set(doc) >= {"message", "version", "endpoints", "authentication_flows", "specifications", "error_handling"}
    assert doc["specifications"]["otp"] == {**doc["specifications"]["otp"], "length": 6, "expiry_minutes": 10}
    assert doc["endpoints"]["register"]["required_fields"] == ["email", "password", "password2"]
    assert doc["endpoints"]["register"]["url"] == "http://127.0.0.1:3000/register"
    assert doc["error_handling"]["error_response_format"] == {"error": "Error description", "message": "User-friendly message"}


def _event(body: str | None, b64: bool = False) -> dict:
    return {
        "httpMethod": "POST",
        "body": body,
        "isBase64Encoded": b64,
        "headers": {"Content-Type": "application/json"},
        "requestContext": {"requestId": "req", "stage": "dev", "identity": {"sourceIp": "203.0.113.9"}},
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
field_names = st.sampled_from(["email", "password", "password2", "otp", "first_name", "phone_number", "context", "refresh", "new_password"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.text(max_size=200), st.dictionaries(field_names, json_values, max_size=6).map(json.dumps)))
def test_request_parser_never_fails_with_anything_but_a_4xx(body):
    from carekey import schemas

    for model in (schemas.RegisterRequest, schemas.LoginRequest, schemas.ResetPasswordRequest, schemas.ResendOtpRequest, schemas.ProfileUpdateRequest):
        try:
            http.parse(model, _event(body))
        except errors.ServiceError as exc:
            assert 400 <= exc.status < 500
            assert isinstance(exc.body(), dict)


@settings(max_examples=200, deadline=None)
@given(token=st.one_of(st.text(max_size=300), st.from_regex(r"[A-Za-z0-9_-]{1,60}\.[A-Za-z0-9_-]{1,200}\.[A-Za-z0-9_-]{0,90}", fullmatch=True)))
def test_token_verifier_refuses_anything_it_did_not_sign(token):
    with pytest.raises(errors.InvalidToken):
        tokens.verify_access(token, "http://127.0.0.1:3000")
    with pytest.raises(errors.InvalidToken):
        tokens.read_refresh(token)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(POST_PATHS), body=st.dictionaries(field_names, json_values, max_size=6))
def test_no_generated_body_produces_a_server_error(api, path, body):
    r = api.post(path, body)
    assert r.status < 500, (path, body, r.body)

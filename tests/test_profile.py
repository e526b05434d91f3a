"""GET/PUT /profile and GET /me."""

from __future__ import annotations

import pytest


@pytest.fixture
def token(api):
    api.verified_user("prof@example.com")
    return api.login("prof@example.com")["access"]


def test_partial_update_changes_only_the_given_fields(api, token):
    r = api.put("/profile", {"first_name": "Grace"}, token=token)
    assert r.status == 200
    assert r.json()["first_name"] == "Grace" and r.json()["last_name"] == "Byron"
    r = api.put("/profile", {"last_name": "Hopper", "phone_number": "+15550001111"}, token=token)
    assert r.json()["first_name"] == "Grace" and r.json()["last_name"] == "Hopper"
    assert api.get("/me", token=token).json()["phone_number"] == "+15550001111"


def test_only_names_and_phone_can_change(api, token):
    before = api.get("/profile", token=token).json()
    r = api.put("/profile", {"email": "evil@example.com", "isVerified": False, "id": "x", "date_joined": "2000"}, token=token)
    assert r.status == 200
    assert r.json() == before


def test_invalid_profile_values_get_field_errors(api, token):
    r = api.put("/profile", {"first_name": None, "phone_number": "call me"}, token=token)
    assert r.status == 400
    assert set(r.json()) == {"first_name", "phone_number"}
    r = api.put("/profile", {"first_name": "x" * 151}, token=token)
    assert r.status == 400 and "first_name" in r.json()


def test_phone_can_be_cleared(api, token):
    api.put("/profile", {"phone_number": "+15550001111"}, token=token)
    assert api.put("/profile", {"phone_number": ""}, token=token).json()["phone_number"] is None


def test_profile_routes_need_a_token(api):
    for method, path in (("GET", "/profile"), ("PUT", "/profile"), ("GET", "/me"), ("POST", "/logout"), ("POST", "/change-password")):
        r = api.request(method, path, {})
        assert r.status == 401, path
        assert r.json()["error"] == "Unauthorized"

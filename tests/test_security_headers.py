"""Every answer carries HSTS and no-store, the gateway's own answers too."""

from __future__ import annotations


def test_function_answers_carry_hsts_and_no_store(api):
    for response in (api.get("/"), api.post("/login", {"email": "a@example.com", "password": "x"}), api.post("/login", raw=b"{")):
        assert response.headers["Strict-Transport-Security"].startswith("max-age=63072000")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert api.post("/login", {"email": "a@example.com", "password": "x"}).headers["Cache-Control"] == "no-store"


def test_gateway_answers_carry_hsts_too(api):
    unauthorized = api.get("/profile")
    assert unauthorized.status == 401
    assert unauthorized.headers["Strict-Transport-Security"].startswith("max-age=63072000")
    assert unauthorized.headers["Cache-Control"] == "no-store"
    missing = api.get("/nowhere")
    assert missing.headers["Strict-Transport-Security"].startswith("max-age=63072000")


def test_jwks_may_be_cached_briefly(api):
    assert api.get("/.well-known/jwks.json").headers["Cache-Control"] == "public, max-age=300"

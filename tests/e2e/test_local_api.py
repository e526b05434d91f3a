"""Every flow over HTTP against the local API, reading codes from the outbox."""

from __future__ import annotations

import json
import re

import pytest

from local import runner

pytestmark = pytest.mark.e2e
PASSWORD = "quiet-orchard-lantern-77"
NEW = "bright-harbour-compass-31"


def test_ready_line_names_the_url(local_api):
    assert re.search(r"ready on http://127\.0\.0\.1:\d+", local_api.ready_line)


def test_registration_to_profile_over_http(local_api):
    email = "e2e.user@example.com"
    r = local_api.post("/register", {"email": email, "first_name": "Eve", "last_name": "Tester", "password": PASSWORD, "password2": PASSWORD})
    assert r.status_code == 201 and r.json()["otp_sent"] is True
    [mail] = local_api.wait_for_emails(email)
    assert set(mail) >= {"to", "subject", "text", "html", "sent_at"}
    assert local_api.post("/verify-otp", {"email": email, "otp": local_api.code_for(email)}).json()["verified"] is True

    login = local_api.post("/login", {"email": email, "password": PASSWORD})
    assert login.status_code == 200 and login.headers["Cache-Control"] == "no-store"
    tokens = login.json()
    assert local_api.get("/profile", token=tokens["access"]).json()["email"] == email
    assert local_api.put("/profile", {"phone_number": "+15551230000"}, token=tokens["access"]).json()["phone_number"] == "+15551230000"
    assert local_api.get("/me", token=tokens["access"]).status_code == 200
    assert local_api.get("/profile").status_code == 401

    refreshed = local_api.post("/token/refresh", {"refresh": tokens["refresh"]})
    assert refreshed.status_code == 200
    assert local_api.post("/logout", {}, token=refreshed.json()["access"]).status_code == 200
    assert local_api.get("/profile", token=refreshed.json()["access"]).status_code == 401


def test_password_reset_over_http(local_api):
    email = "e2e.reset@example.com"
    local_api.post("/register", {"email": email, "password": PASSWORD, "password2": PASSWORD})
    local_api.post("/verify-otp", {"email": email, "otp": local_api.code_for(email)})
    assert local_api.post("/forgot-password", {"email": email}).status_code == 200
    code = local_api.code_for(email, count=2)  # after the verification code
    assert local_api.post("/verify-password-reset-otp", {"email": email, "otp": code}).json()["verified"] is True
    r = local_api.post("/reset-password", {"email": email, "otp": code, "new_password": NEW, "confirm_password": NEW})
    assert r.json() == {"message": "Password reset successfully", "success": True}
    assert local_api.post("/login", {"email": email, "password": NEW}).status_code == 200
    assert local_api.post("/login", {"email": email, "password": PASSWORD}).status_code == 401


def test_bad_requests_get_json_errors_never_a_stack_trace(local_api):
    cases = [
        local_api.http.post(local_api.url + "/login", data=b"{not json", headers={"Content-Type": "application/json"}),
        local_api.http.post(local_api.url + "/login", data=b"\xff\xfe", headers={"Content-Type": "application/octet-stream"}),
        local_api.post("/register", {"email": 5}),
        local_api.post("/login", {"email": "a@b.c", "password": "x" * 20000}),
        local_api.get("/no/such/path"),
        local_api.get("/login"),
        local_api.get("/profile", token="not-a-token"),
    ]
    assert [c.status_code for c in cases] == [400, 400, 400, 413, 404, 405, 401]
    for c in cases:
        body = c.json()
        assert isinstance(body, dict)
        assert "Traceback" not in c.text


def test_api_root_and_jwks(local_api):
    doc = local_api.get("/").json()
    assert doc["endpoints"]["login"]["url"].startswith("http")
    assert local_api.get("/.well-known/jwks.json").json()["keys"][0]["alg"] == "ES256"


def test_outbox_files_are_json_with_the_documented_fields(local_api):
    files = sorted(local_api.outbox.glob("*.json"))
    assert files
    for f in files:
        message = json.loads(f.read_text())
        assert {"to", "subject", "text", "html", "sent_at"} <= set(message)


def test_ctrl_c_stops_cleanly(tmp_path):
    api = runner.start(tmp_path)
    assert api.get("/").status_code == 200
    assert api.stop() == 0, api.log.read_text()[-3000:]
    assert "stopped" in api.log.read_text()

from tests.client import PASSWORD


def test_register_verify_login_profile(api, outbox):
    r = api.register("Ada@Example.com ")
    assert r.status == 201, r.body
    body = r.json()
    assert body["user"]["email"] == "ada@example.com"
    assert body["otp_sent"] is True and body["otp_expires_in"] == 10
    code = api.latest_code("ada@example.com")
    r = api.post("/verify-otp", {"email": "ada@example.com", "otp": code})
    assert r.status == 200, r.body
    tokens = api.login("ada@example.com", PASSWORD)
    r = api.get("/profile", token=tokens["access"])
    assert r.status == 200, r.body
    assert r.json()["isVerified"] is True

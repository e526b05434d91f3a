"""What another service sees: discovery, RFC 9068 access tokens verified with
JOSE libraries other than the one the service signs with (joserfc, and
authlib's RFC 9068 validator), refresh tokens that none of them accepts, and
RFC 6750 / SimpleJWT-shaped refusals."""

from __future__ import annotations

import pytest
from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from carekey import config, tokens
from carekey.api import issuer_of
from carekey.flows.sessions import _issuer_of
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tests.client import PASSWORD

ISSUER = "http://127.0.0.1:3000"


@pytest.fixture
def discovered(api):
    """Given a resource server that knows only the issuer's URL: it reads the
    discovery document, then the keys it points at."""
    meta = api.get("/.well-known/openid-configuration")
    assert meta.status == 200
    document = meta.json()
    assert document["jwks_uri"].startswith(ISSUER)
    jwks = api.get(document["jwks_uri"].removeprefix(ISSUER))
    assert jwks.status == 200
    return document, jwks.json()


@pytest.fixture
def pair(api):
    api.verified_user("rs@example.com")
    return api.login("rs@example.com")


def test_discovery_names_the_issuer_the_keys_and_the_token_endpoint(api, discovered):
    document, jwks = discovered
    assert document["issuer"] == ISSUER
    assert document["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert document["token_endpoint"] == f"{ISSUER}/token/refresh"
    assert document["id_token_signing_alg_values_supported"] == ["ES256"]
    assert "refresh_token" in document["grant_types_supported"]
    assert jwks["keys"] and all("d" not in k for k in jwks["keys"])
    assert api.post("/.well-known/openid-configuration").status == 405


def test_joserfc_verifies_an_access_token_and_refuses_a_refresh_token(discovered, pair):
    document, jwks = discovered
    keys = KeySet.import_key_set(jwks)
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": document["issuer"]},
        aud={"essential": True, "value": tokens.settings().token_audience},
        sub={"essential": True},
        client_id={"essential": True},
        jti={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )
    # When it verifies the access token, it accepts it
    token = jwt.decode(pair["access"], keys, algorithms=["ES256"])
    registry.validate(token.claims)
    assert token.header["typ"] == "at+jwt"
    assert token.claims["sub"] == token.claims["user_id"] == pair["user"]["id"]
    # and it cannot be talked into accepting the refresh token
    with pytest.raises((JoseError, ValueError)):
        jwt.decode(pair["refresh"], keys, algorithms=["ES256"])


class _Validator(JWTBearerTokenValidator):
    def __init__(self, jwks: dict, **kw) -> None:
        super().__init__(**kw)
        self.jwks = jwks

    def get_jwks(self):
        return self.jwks


def test_authlibs_rfc9068_validator_accepts_access_tokens_only(discovered, pair):
    document, jwks = discovered
    validator = _Validator(jwks, issuer=document["issuer"], resource_server=tokens.settings().token_audience)
    # Given authlib's validator of RFC 9068 JWT access tokens
    claims = validator.authenticate_token(pair["access"])
    validator.validate_token(claims, scopes=None, request=None)
    assert claims["client_id"] == tokens.settings().token_client_id
    # Then a refresh token is not one
    with pytest.raises(InvalidTokenError):
        validator.authenticate_token(pair["refresh"])
    # and neither is an access token of another issuer
    stranger = _Validator(jwks, issuer="https://elsewhere.example", resource_server=tokens.settings().token_audience)
    with pytest.raises(InvalidTokenError):
        stranger.validate_token(stranger.authenticate_token(pair["access"]), scopes=None, request=None)


def test_a_refresh_token_is_no_access_token_here_either(api, pair):
    r = api.get("/profile", token=pair["refresh"])
    assert r.status == 401 and r.json()["code"] == "token_not_valid"
    assert api.post("/token/refresh", {"refresh": pair["access"]}).status == 401


def test_a_logged_out_sessions_tokens_stop_working(api, pair):
    assert api.post("/logout", {}, token=pair["access"]).status == 200
    assert api.post("/token/refresh", {"refresh": pair["refresh"]}).status == 401
    assert api.get("/profile", token=pair["access"]).status == 401


# ---- refusals: RFC 6750 for new clients, SimpleJWT's shape for old ones ------------------


def test_the_gateways_own_401_without_a_token_names_the_bearer_scheme(api):
    r = api.get("/profile")
    assert r.status == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="carekey"'
    assert r.json() == {
        "error": "Unauthorized",
        "message": "A valid access token is required.",
        "detail": "Authentication credentials were not provided.",
        "code": "not_authenticated",
    }


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Bearer a.b.c", "Basic dXNlcjpwYXNz"])
def test_every_refused_token_gets_a_bearer_challenge(api, header):
    r = api.request("GET", "/me", headers={"Authorization": header})
    assert r.status == 401
    assert r.headers["WWW-Authenticate"].startswith('Bearer realm="carekey"')
    assert set(r.json()) == {"error", "message", "detail", "code"}


def test_an_invalid_token_reads_as_simplejwt_token_not_valid(api):
    for r in (
        api.get("/profile", token="eyJhbGciOiJFUzI1NiJ9.e30.c2ln"),
        api.post("/token/refresh", {"refresh": "not-a-refresh-token"}),
    ):
        body = r.json()
        assert r.status == 401 and body["code"] == "token_not_valid"
        assert body["detail"] and body["error"] == "Invalid token" and body["message"]
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_wrong_credentials_carry_a_challenge_too(api):
    api.verified_user("rs@example.com")
    r = api.post("/login", {"email": "rs@example.com", "password": PASSWORD + "x"})
    assert r.status == 401 and r.headers["WWW-Authenticate"] == 'Bearer realm="carekey"'
    assert r.json()["error"] == "Invalid credentials"


# ---- the issuer: the API's URL ------------------------------------------------------------


def test_the_issuer_is_the_api_gateway_url_unless_a_domain_is_configured(settings_override):
    settings_override(TOKEN_ISSUER="")
    event = {"requestContext": {"apiId": "a1b2c3d4e5", "stage": "prod"}, "headers": {"Host": "evil.example"}}
    expected = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/prod"
    assert issuer_of(event) == expected
    # the authorizer derives the same from the method ARN API Gateway gives it
    assert _issuer_of("arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/profile") == expected
    settings_override(TOKEN_ISSUER="https://auth.example.org/")
    assert issuer_of(event) == "https://auth.example.org" == config.token_issuer("x", "y")


def test_tokens_of_one_issuer_are_refused_by_another(api, pair, settings_override):
    assert api.get("/profile", token=pair["access"]).status == 200
    settings_override(TOKEN_ISSUER="https://auth.example.org")
    assert api.get("/profile", token=pair["access"]).status == 401


def test_the_jwks_never_serves_a_private_or_malformed_entry_even_if_one_were_published(api):
    # Given a published set that (by a mistake upstream) holds a private key, a key of
    # another kind and coordinates of the wrong length beside the real keys
    import json

    import boto3
    from carekey import public_keys
    from carekey.config import settings

    api.get("/.well-known/jwks.json")  # the real set is published
    name = settings().public_keys_parameter
    ssm = boto3.client("ssm")
    real = json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])["keys"]
    good = real[0]
    bad = [
        {**good, "kid": "leaked", "d": "AAAA"},
        {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
        {**good, "kid": "short", "x": "AAAA"},
    ]
    ssm.put_parameter(Name=name, Value=json.dumps({"keys": real + bad}), Type="String", Overwrite=True)
    public_keys.forget_published()
    try:
        # When a resource server fetches the JWKS
        served = api.get("/.well-known/jwks.json").json()["keys"]
        # Then it gets exactly the real public keys
        assert sorted(k["kid"] for k in served) == sorted(k["kid"] for k in real)
        assert all("d" not in k for k in served)
    finally:
        ssm.put_parameter(Name=name, Value=json.dumps({"keys": real}), Type="String", Overwrite=True)
        public_keys.forget_published()

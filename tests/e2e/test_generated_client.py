"""A client generated from docs/openapi.json by openapi-python-client runs the
README's walk-through against the local API, and tells the error shapes apart."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local.template import ROOT

pytestmark = pytest.mark.e2e
PASSWORD = "violet-kettle-harbour-42"
NEW = "bright-harbour-compass-31"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Given a client generated as an integrator would generate it."""
    out = tmp_path_factory.mktemp("generated")
    tool = Path(sys.executable).parent / "openapi-python-client"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(tool), "generate", "--path", str(ROOT / "docs" / "openapi.json"), "--meta", "none", "--output-path", str(out / "carekey_client")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout, result.stdout
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("carekey_client")
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == "carekey_client" or m.startswith("carekey_client.")]:
            del sys.modules[name]


def test_the_generated_client_runs_the_walk_through(generated, local_api):
    from carekey_client import AuthenticatedClient, Client
    from carekey_client.api.auth import (
        forgot_password,
        login,
        logout,
        me,
        profile,
        register,
        reset_password,
        token_refresh,
        update_profile,
        verify_otp,
        verify_password_reset_otp,
    )
    from carekey_client.api.documentation import openid_configuration
    from carekey_client.models import (
        EmailOnlyRequest,
        ErrorResponse,
        FieldErrorsResponse,
        LoginRequest,
        LoginResponse,
        LogoutRequest,
        ProfileUpdateRequest,
        RefreshRequest,
        RegisterRequest,
        RegisterResponse,
        ResetPasswordRequest,
        TokenErrorResponse,
        TokenPair,
        User,
        VerifyOtpRequest,
        VerifyResetOtpRequest,
    )

    anonymous = Client(base_url=local_api.url, raise_on_unexpected_status=True)
    email = "generated.client@example.com"

    # 1. register: 201 and a code by email
    created = register.sync(client=anonymous, body=RegisterRequest(
        email=email, first_name="Ada", last_name="Byron", password=PASSWORD, password2=PASSWORD))
    assert isinstance(created, RegisterResponse) and created.otp_sent and created.user.email == email
    # 2. verify the email with the code from the outbox
    assert verify_otp.sync(client=anonymous, body=VerifyOtpRequest(email=email, otp=local_api.code_for(email))).verified
    # 3. log in; keep the tokens
    signed_in = login.sync(client=anonymous, body=LoginRequest(email=email, password=PASSWORD))
    assert isinstance(signed_in, LoginResponse)
    me_client = AuthenticatedClient(base_url=local_api.url, token=signed_in.access, raise_on_unexpected_status=True)
    # 4. the profile, read and partly updated
    assert isinstance(profile.sync(client=me_client), User)
    updated = update_profile.sync(client=me_client, body=ProfileUpdateRequest(first_name="Augusta"))
    assert isinstance(updated, User) and updated.first_name == "Augusta" and updated.last_name == "Byron"
    assert me.sync(client=me_client).is_verified is True
    # 5. rotate the tokens
    pair = token_refresh.sync(client=anonymous, body=RefreshRequest(refresh=signed_in.refresh))
    assert isinstance(pair, TokenPair) and pair.refresh != signed_in.refresh
    # 6. forgot password -> reset code by email -> new password (every session ends)
    assert forgot_password.sync(client=anonymous, body=EmailOnlyRequest(email=email)).otp_sent
    code = local_api.code_for(email, count=2)  # after the verification code; emails leave after the answer
    assert verify_password_reset_otp.sync(client=anonymous, body=VerifyResetOtpRequest(email=email, otp=code)).verified
    done = reset_password.sync(client=anonymous, body=ResetPasswordRequest(email=email, otp=code, new_password=NEW, confirm_password=NEW))
    assert done.success
    refused = profile.sync(client=me_client)
    assert isinstance(refused, TokenErrorResponse) and refused.code == "token_not_valid"
    # and a new login works, and ends with a logout
    again = login.sync(client=anonymous, body=LoginRequest(email=email, password=NEW))
    assert isinstance(again, LoginResponse)
    again_client = AuthenticatedClient(base_url=local_api.url, token=again.access, raise_on_unexpected_status=True)
    assert logout.sync(client=again_client, body=LogoutRequest(all_=True)).all_ is True

    # The error shapes come back as distinct types
    field_errors = register.sync(client=anonymous, body=RegisterRequest(email="not-an-email", password="x", password2="y"))
    assert isinstance(field_errors, FieldErrorsResponse) and "email" in field_errors.additional_properties
    wrong_code = verify_otp.sync(client=anonymous, body=VerifyOtpRequest(email=email, otp="000000"))
    assert isinstance(wrong_code, ErrorResponse) and wrong_code.error == "Invalid or expired OTP"
    wrong_password = login.sync(client=anonymous, body=LoginRequest(email=email, password="not-the-password"))
    assert isinstance(wrong_password, ErrorResponse) and wrong_password.error == "Invalid credentials"
    bad_refresh = token_refresh.sync(client=anonymous, body=RefreshRequest(refresh="not-a-refresh-token"))
    assert isinstance(bad_refresh, TokenErrorResponse) and bad_refresh.detail

    # Discovery, as a resource server reads it
    assert openid_configuration.sync(client=anonymous).issuer == local_api.url

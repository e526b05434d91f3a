"""Cold start: what a function loads at init is what it needs."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _fresh_python(code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "common"), "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_boto3_client_does_not_load_pyopenssl_although_the_layer_ships_it():
    # Given pyOpenSSL importable (the layer ships it for passkey attestation)
    import OpenSSL  # noqa: F401

    # When a function builds its AWS client in a fresh interpreter
    seen = _fresh_python(
        "import json, sys\n"
        "from carekey import aws\n"
        "aws.client('dynamodb')\n"
        "import botocore.httpsession as h\n"
        "print(json.dumps({'openssl': 'OpenSSL' in sys.modules, 'context': f'{h.SSLContext.__module__}.{h.SSLContext.__name__}'}))\n"
    )

    # Then neither OpenSSL nor urllib3's pyOpenSSL shim was loaded, and TLS uses the standard library's context
    assert seen["openssl"] is False
    assert seen["context"] == f"{ssl.SSLContext.__module__}.{ssl.SSLContext.__name__}"


def test_passkey_code_still_loads_pyopenssl_itself():
    # Given the shim blocked for botocore
    # When the passkey verification code is imported after the AWS clients
    seen = _fresh_python(
        "import json, sys\n"
        "from carekey import aws\n"
        "aws.client('dynamodb')\n"
        "import webauthn\n"
        "from OpenSSL.crypto import X509Store\n"
        "print(json.dumps({'openssl': 'OpenSSL' in sys.modules}))\n"
    )

    # Then attestation's certificate checks still have pyOpenSSL
    assert seen["openssl"] is True


def _loaded_by(function: str) -> dict:
    code = ROOT / "functions" / function
    return _fresh_python(
        "import json, sys\n"
        f"sys.path.insert(0, {str(code)!r})\n"
        "import app\n"
        "print(json.dumps({'modules': sorted(m for m in sys.modules if m.split('.')[0] in ('webauthn', 'OpenSSL', 'cryptography', 'jwt'))}))\n"
    )


def test_the_jwks_function_serves_json_without_loading_a_crypto_library():
    # Given the JWKS function's code, imported as Lambda's init does
    # When it has loaded
    loaded = _loaded_by("jwks")["modules"]
    # Then neither PyJWT nor cryptography is in memory: serving the published keys is JSON work
    assert loaded == []


def test_listing_and_removing_passkeys_does_not_load_the_webauthn_library():
    # Given the function that lists and removes passkeys (no ceremony to verify)
    loaded = _loaded_by("webauthn_credentials")["modules"]
    # Then the WebAuthn library and pyOpenSSL stay out of it
    assert not [m for m in loaded if m.split(".")[0] in ("webauthn", "OpenSSL")]


def test_the_functions_that_verify_ceremonies_load_the_webauthn_library_at_init():
    # Given the passkey sign-in and registration functions
    for function in ("webauthn_login", "webauthn_register"):
        # Then the library they use on every request is loaded at init, not on the first request
        assert "webauthn" in _loaded_by(function)["modules"]

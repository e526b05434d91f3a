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

"""boto3 clients, created once per container and only when first needed."""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Any

# botocore imports urllib3.contrib.pyopenssl whenever pyOpenSSL is installed, only to
# take the standard library's SSLContext it saved before any patching. The layer ships
# pyOpenSSL for passkey attestation, so every function paid for loading OpenSSL and
# cryptography's bindings at init (about 100 ms, `make bench`'s cold-start profile).
# Without that module botocore takes the same SSLContext from urllib3.util.ssl_.
sys.modules.setdefault("urllib3.contrib.pyopenssl", None)  # type: ignore[arg-type]

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=5)


@lru_cache(maxsize=None)
def client(service: str) -> Any:
    return boto3.client(service, config=_CONFIG)


def reset_clients() -> None:
    """Forget cached clients (tests and the local API switch endpoints)."""
    client.cache_clear()

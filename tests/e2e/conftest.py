"""End-to-end fixtures: the local API (`python -m local.server`, what `make dev`
runs) in a subprocess on a free port, with its own outbox."""

from __future__ import annotations

import pytest

from local import runner


@pytest.fixture(scope="module")
def local_api(tmp_path_factory):
    api = runner.start(tmp_path_factory.mktemp("local-api"), BCRYPT_COST="4", ARGON2_MEMORY_KIB="1024", OTP_RESEND_COOLDOWN_SECONDS="0")
    yield api
    api.stop()


@pytest.fixture(autouse=True)
def aws_env():
    """The end-to-end tests talk to the local API's own emulator, not the in-process mock."""
    yield

"""Test fixtures: every test runs against moto in-process, with the tables,
secrets and SES identity that template.yaml declares, created afresh."""

from __future__ import annotations

import os

# Configuration first: the service reads it when first imported.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "CareKey",
        "POWERTOOLS_DEV": "false",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

from local.template import Stack  # noqa: E402

STACK = Stack(name="carekey-test")
os.environ.update(STACK.service_environment())
os.environ["TOKEN_ISSUER"] = "http://127.0.0.1:3000"  # the API's URL, as the test client calls it
os.environ["BCRYPT_COST"] = "4"  # the policy is tested separately; keeps the suite fast
os.environ["ARGON2_MEMORY_KIB"] = "1024"  # likewise: the password hash at its lightest
os.environ["ARGON2_ITERATIONS"] = "1"

import boto3  # noqa: E402
import pytest  # noqa: E402
from moto import mock_aws  # noqa: E402

from local.emulator import provision, serialise_dynamodb, skip_unused_kms_key_pairs  # noqa: E402
from local.gateway import Gateway  # noqa: E402
from local.outbox import Outbox  # noqa: E402
from local.queues import QueuePump  # noqa: E402

boto3.setup_default_session(region_name="us-east-1")
OUTBOX = Outbox()
OUTBOX.attach(boto3.DEFAULT_SESSION)
serialise_dynamodb()
skip_unused_kms_key_pairs()
QUEUES = QueuePump(STACK)

from carekey import aws, keys  # noqa: E402
from carekey.config import reload_settings  # noqa: E402

from tests.client import ApiClient  # noqa: E402


@pytest.fixture(autouse=True)
def aws_env():
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        provision(STACK)
        aws.reset_clients()
        keys.forget_cached_keys()
        reload_settings()
        OUTBOX.clear()
        QUEUES.reset()
        yield


@pytest.fixture
def outbox() -> Outbox:
    return OUTBOX


@pytest.fixture
def queues() -> QueuePump:
    """The local SQS event source the gateway drains after each request."""
    return QUEUES


@pytest.fixture(scope="session")
def gateway() -> Gateway:
    return Gateway(STACK, queues=QUEUES)


@pytest.fixture
def api(gateway: Gateway, outbox: Outbox) -> ApiClient:
    return ApiClient(gateway, outbox)


@pytest.fixture
def settings_override(monkeypatch):
    """Change configuration for one test: settings_override(OTP_MAX_ATTEMPTS="3")."""

    def apply(**values: str) -> None:
        for k, v in values.items():
            monkeypatch.setenv(k, str(v))
        reload_settings()

    yield apply
    monkeypatch.undo()
    reload_settings()


# ---- whole-suite runs on one machine take turns ----------------------------------------
# The suite starts local API servers, a browser and thousands of emulated AWS
# calls; two whole runs at once on a small machine (several checkouts of the
# project) each take several times as long and can hit timeouts. A run of
# more than WHOLE_SUITE tests waits for any other such run on this machine to
# finish first. Runs of a few files, and a lone run (CI), never wait.
WHOLE_SUITE = 150
_turn = None


def pytest_collection_modifyitems(session, config, items):
    global _turn
    if len(items) < WHOLE_SUITE or os.environ.get("CAREKEY_NO_SUITE_LOCK"):
        return
    import fcntl
    import tempfile

    _turn = open(os.path.join(tempfile.gettempdir(), "carekey-whole-suite.lock"), "w")  # noqa: SIM115 - held until the run ends
    try:
        fcntl.flock(_turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("\nanother whole-suite run is under way on this machine: waiting for it to finish", flush=True)
        fcntl.flock(_turn, fcntl.LOCK_EX)


@pytest.fixture
def service_logs():
    """Everything the service logs (its own logger and the root logger's),
    formatted exactly as in Lambda."""
    import io
    import logging

    from carekey.observability import logger

    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logger.registered_formatter)
    logger._logger.addHandler(handler)
    root = logging.getLogger()
    root.addHandler(handler)
    yield sink
    logger._logger.removeHandler(handler)
    root.removeHandler(handler)

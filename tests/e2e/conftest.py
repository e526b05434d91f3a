"""Starts the local API (`python -m local.server`, what `make dev` runs) on a
free port with its own outbox, for tests that talk HTTP to it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from local.template import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalApi:
    def __init__(self, url: str, outbox: Path, process: subprocess.Popen, ready_line: str) -> None:
        self.url = url
        self.outbox = outbox
        self.process = process
        self.ready_line = ready_line
        self.http = requests.Session()

    def post(self, path: str, body=None, token: str | None = None, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.post(self.url + path, json=body, headers=headers, timeout=30, **kw)

    def get(self, path: str, token: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.get(self.url + path, headers=headers, timeout=30)

    def put(self, path: str, body=None, token: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.put(self.url + path, json=body, headers=headers, timeout=30)

    def emails_to(self, address: str) -> list[dict]:
        files = sorted(self.outbox.glob("*.json"))
        return [m for m in (json.loads(f.read_text()) for f in files) if m["to"] == address]

    def code_for(self, address: str) -> str:
        message = self.emails_to(address)[-1]
        return re.search(r"\b(\d{6})\b", message["text"]).group(1)


def start_local_api(tmp: Path, **env: str) -> LocalApi:
    port = free_port()
    outbox = tmp / "outbox"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))},
        "PORT": str(port),
        "OUTBOX_DIR": str(outbox),
        "BCRYPT_COST": "4",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    for key in ("USERS_TABLE", "OTP_TABLE", "SESSIONS_TABLE", "LIMITS_TABLE", "AUDIT_TABLE", "SIGNING_SECRET_ID", "PEPPER_SECRET_ID"):
        environment.pop(key, None)
    log = open(tmp / "server.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "local.server"], cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        log.seek(0)
        text = log.read()
        if "ready on" in text:
            line = next(l for l in text.splitlines() if "ready on" in l)
            return LocalApi(f"http://127.0.0.1:{port}", outbox, process, line)
        if process.poll() is not None:
            raise RuntimeError(f"local API exited: {text[-3000:]}")
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("local API did not become ready in 60 s")


def stop_local_api(api: LocalApi) -> int:
    api.process.send_signal(signal.SIGINT)
    try:
        return api.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        api.process.kill()
        return -1


@pytest.fixture(scope="module")
def local_api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("local-api")
    api = start_local_api(tmp, OTP_RESEND_COOLDOWN_SECONDS="0")
    yield api
    stop_local_api(api)


@pytest.fixture(autouse=True)
def aws_env():
    """The end-to-end tests talk to the local API's own emulator, not the in-process mock."""
    yield

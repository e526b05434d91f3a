"""Starts and stops the local API (what `make dev` runs) in a subprocess on a
free port: for the end-to-end tests, the fuzzer and the benchmark."""

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

import requests

from local.template import ROOT, Stack


def _service_vars() -> set[str]:
    """Every setting the template gives the functions: the local API sets them
    itself (its own tables, its own port's origin), so the caller's values
    (a test process's, say) must not leak in unless passed on purpose."""
    return set(Stack().service_environment())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalApi:
    def __init__(self, url: str, outbox: Path, process: subprocess.Popen, ready_line: str, log: Path) -> None:
        self.url = url
        self.outbox = outbox
        self.process = process
        self.ready_line = ready_line
        self.log = log
        self.http = requests.Session()

    def _headers(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    def post(self, path: str, body=None, token: str | None = None, **kw) -> requests.Response:
        return self.http.post(self.url + path, json=body, headers=self._headers(token), timeout=30, **kw)

    def get(self, path: str, token: str | None = None) -> requests.Response:
        return self.http.get(self.url + path, headers=self._headers(token), timeout=30)

    def put(self, path: str, body=None, token: str | None = None) -> requests.Response:
        return self.http.put(self.url + path, json=body, headers=self._headers(token), timeout=30)

    def emails_to(self, address: str) -> list[dict]:
        files = sorted(self.outbox.glob("*.json"))
        return [m for m in (json.loads(f.read_text()) for f in files) if m["to"] == address]

    def wait_for_emails(self, address: str, count: int = 1, timeout: float = 15.0) -> list[dict]:
        """The emails to an address once at least `count` have arrived: the
        email sender works after the answer, from the queue."""
        deadline = time.time() + timeout
        while True:
            found = self.emails_to(address)
            if len(found) >= count or time.time() > deadline:
                return found
            time.sleep(0.05)

    def code_for(self, address: str, count: int = 1, timeout: float = 15.0) -> str:
        """The code in the newest email to an address, once `count` emails have
        arrived and the newest carries a code (a notice sent just before, such
        as "a passkey was removed", is not the email a code is awaited from)."""
        deadline = time.time() + timeout
        while True:
            message = self.wait_for_emails(address, count, timeout=max(0.1, deadline - time.time()))[-1]
            match = re.search(r"\b(\d{6})\b", message["text"])
            if match or time.time() > deadline:
                break
            time.sleep(0.05)
        assert match, message["subject"]
        return match.group(1)

    def signed_in_user(self, email: str, password: str) -> dict:
        """Register, verify from the outbox and log in; returns the login body."""
        self.post("/register", {"email": email, "password": password, "password2": password})
        self.post("/verify-otp", {"email": email, "otp": self.code_for(email)})
        response = self.post("/login", {"email": email, "password": password})
        response.raise_for_status()
        return response.json()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=30)  # a queue delivery under way finishes first (up to 10 s), more on a loaded machine
        except subprocess.TimeoutExpired:
            self.process.kill()
            return -1


def start(workdir: Path, **env: str) -> LocalApi:
    port = free_port()
    outbox = workdir / "outbox"
    service_vars = _service_vars()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_")) and k not in service_vars}
    environment.update({"PORT": str(port), "OUTBOX_DIR": str(outbox), "PYTHONUNBUFFERED": "1", **env})
    log_path = workdir / "server.log"
    log = open(log_path, "w+")  # noqa: SIM115 - the server writes to it for its whole life
    process = subprocess.Popen([sys.executable, "-m", "local.server"], cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        text = log_path.read_text()
        if "ready on" in text:
            line = next(ln for ln in text.splitlines() if "ready on" in ln)
            return LocalApi(f"http://127.0.0.1:{port}", outbox, process, line, log_path)
        if process.poll() is not None:
            raise RuntimeError(f"local API exited: {text[-3000:]}")
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("local API did not become ready in 60 s")

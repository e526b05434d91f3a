"""The load mix `make load` drives with Locust (see bench/load.py).

Each simulated person holds one of the accounts bench/load.py created and
signs in from an address of their own (127.0.1.N on the loopback), then
mostly refreshes and reads their profile, sometimes signs in again or asks for
a reset code.  An attacker's share sends wrong passwords for a few accounts
kept for that, each request from a different loopback address, so lockouts
and per-address limits are exercised under load without touching the people.
"""

from __future__ import annotations

import json
import os
import random
import threading

from locust import HttpUser, between, task
from source_address import SourceAddress  # bench/, which Locust puts on the path

ACCOUNTS = json.loads(open(os.environ["LOAD_ACCOUNTS"]).read())  # noqa: SIM115 - read once at import
_next = iter(range(10**9))
_lock = threading.Lock()




def _expected(response, *ok: int) -> None:
    """A 429 is the service's limits at work, not a failure; a 5xx always is."""
    if response.status_code in ok or response.status_code == 429:
        response.success()
    else:
        response.failure(f"HTTP {response.status_code}")


class Person(HttpUser):
    wait_time = between(0.5, 2.0)
    weight = 9

    def on_start(self) -> None:
        with _lock:
            n = next(_next)
        self.account = ACCOUNTS["people"][n % len(ACCOUNTS["people"])]
        adapter = SourceAddress(f"127.0.1.{n % 250 + 1}")
        self.client.mount("http://", adapter)
        self.access = self.refresh_token = None
        self.login()

    @task(2)
    def login(self) -> None:
        body = {"email": self.account["email"], "password": self.account["password"]}
        with self.client.post("/login", json=body, name="POST /login", catch_response=True) as r:
            _expected(r, 200)
            if r.status_code == 200:
                self.access, self.refresh_token = r.json()["access"], r.json()["refresh"]

    @task(10)
    def refresh(self) -> None:
        if not self.refresh_token:
            return self.login()
        with self.client.post("/token/refresh", json={"refresh": self.refresh_token}, name="POST /token/refresh", catch_response=True) as r:
            _expected(r, 200)
            if r.status_code == 200:
                tokens = r.json()
                self.access = tokens["access"]
                self.refresh_token = tokens.get("refresh", self.refresh_token)

    @task(10)
    def profile(self) -> None:
        if not self.access:
            return self.login()
        headers = {"Authorization": f"Bearer {self.access}"}
        with self.client.get("/profile", headers=headers, name="GET /profile", catch_response=True) as r:
            _expected(r, 200, 401)  # 401: the access token outlived its session (a refresh follows)

    @task(1)
    def forgot_password(self) -> None:
        with self.client.post("/forgot-password", json={"email": self.account["email"]}, name="POST /forgot-password", catch_response=True) as r:
            _expected(r, 200)


class Attacker(HttpUser):
    """Wrong passwords for a few accounts, each from a new loopback address."""

    wait_time = between(0.2, 1.0)
    weight = 1

    @task
    def wrong_password(self) -> None:
        self.client.mount("http://", SourceAddress(f"127.0.{random.randint(2, 200)}.{random.randint(1, 250)}"))  # noqa: S311
        body = {"email": random.choice(ACCOUNTS["victims"]), "password": "not-the-password-0"}  # noqa: S311
        with self.client.post("/login", json=body, name="POST /login (wrong password)", catch_response=True) as r:
            _expected(r, 401)

"""A small client for the in-process API: requests go through the local
gateway (template routes, the authorizer, real REST proxy events)."""

from __future__ import annotations

import json
import re
from typing import Any

from local.gateway import Gateway, Response
from local.outbox import Outbox

PASSWORD = "violet-kettle-harbour-42"


class ApiClient:
    def __init__(self, gateway: Gateway, outbox: Outbox, ip: str = "198.51.100.7") -> None:
        self.gateway = gateway
        self.outbox = outbox
        self.ip = ip

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        ip: str | None = None,
    ) -> Response:
        given = {name.lower() for name in headers or {}}
        defaults = [("Host", "127.0.0.1:3000"), ("User-Agent", "pytest"), ("Content-Type", "application/json")]
        hdrs = [(k, v) for k, v in defaults if k != "User-Agent" or "user-agent" not in given]
        if token:
            hdrs.append(("Authorization", f"Bearer {token}"))
        hdrs += list((headers or {}).items())
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        return self.gateway.handle(method, path, hdrs, [], data, ip or self.ip)

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.request("PUT", path, body, **kw)

    # ---- steps many tests share ---------------------------------------------------

    def latest_code(self, email: str) -> str:
        message = self.outbox.to(email)[-1]
        match = re.search(r"\b(\d{6})\b", message["text"])
        assert match, f"no code in: {message['subject']}"
        return match.group(1)

    def register(self, email: str, password: str = PASSWORD, **extra: Any) -> Response:
        body = {"email": email, "first_name": "Ada", "last_name": "Byron", "password": password, "password2": password}
        body.update(extra)
        return self.post("/register", body)

    def verified_user(self, email: str, password: str = PASSWORD) -> None:
        assert self.register(email, password).status == 201
        assert self.post("/verify-otp", {"email": email, "otp": self.latest_code(email)}).status == 200

    def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        response = self.post("/login", {"email": email, "password": password})
        assert response.status == 200, response.body
        return response.json()

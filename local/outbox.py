"""Captures every email the service sends through SES, without touching the
service's code: a botocore hook on SendEmail records the message (and lets the
call go on to the emulator).  `make dev` prints each one and saves it as JSON."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import boto3


class Outbox:
    def __init__(self, folder: Path | None = None, echo: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.folder = folder
        self.echo = echo
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def attach(self, session: boto3.Session) -> None:
        session.events.register("provide-client-params.sesv2.SendEmail", self._capture)

    def _capture(self, params: dict[str, Any], **_: Any) -> None:
        simple = params.get("Content", {}).get("Simple", {})
        body = simple.get("Body", {})
        message = {
            "to": ", ".join(params.get("Destination", {}).get("ToAddresses", [])),
            "from": params.get("FromEmailAddress", ""),
            "subject": simple.get("Subject", {}).get("Data", ""),
            "text": body.get("Text", {}).get("Data", ""),
            "html": body.get("Html", {}).get("Data", ""),
            "sent_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        with self._lock:
            self.messages.append(message)
            if self.folder is not None:
                self.folder.mkdir(parents=True, exist_ok=True)
                stamp = message["sent_at"].replace(":", "").replace(".", "")
                path = self.folder / f"{stamp}-{len(self.messages):04d}.json"
                # Written aside, then renamed: a reader globbing *.json never sees half a message.
                partial = path.with_suffix(".part")
                partial.write_text(json.dumps(message, indent=2))
                partial.replace(path)
        if self.echo:
            self.echo(message)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def to(self, address: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.messages if m["to"] == address]

"""A requests adapter that connects from a chosen loopback address, so the local
API sees one client per simulated person (bench/load.py and bench/locustfile.py)."""

from __future__ import annotations

from requests.adapters import HTTPAdapter


class SourceAddress(HTTPAdapter):
    def __init__(self, address: str) -> None:
        self._address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self._address, 0)
        return super().init_poolmanager(*args, **kwargs)

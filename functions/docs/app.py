"""GET /openapi.json, GET /docs and its assets: the API's documentation."""

from functools import partial
from pathlib import Path

from carekey.api import Route, handler
from carekey.flows.discovery import documentation

# The page's scripts and styles ship with this function, not through a CDN.
lambda_handler = handler(GET=Route(partial(documentation, assets=Path(__file__).parent / "assets")))

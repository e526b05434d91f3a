"""GET /ui, GET /ui/{asset} : the hosted sign-in page and its script and stylesheet."""

from functools import partial
from pathlib import Path

from carekey.api import Route, handler
from carekey.flows.hosted_ui import page

# The page, its script and its stylesheet ship with this function, not through a CDN.
lambda_handler = handler(GET=Route(partial(page, assets=Path(__file__).parent / "assets")))

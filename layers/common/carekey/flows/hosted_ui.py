"""GET /ui and its assets: the hosted sign-in page.

Plain HTML, one stylesheet and one script, all served by this function (no
CDN, no build step).  The page is locked down by its headers: a
Content-Security-Policy that allows only this origin's script and style and
no inline code, no framing, no form posts, and a Permissions-Policy that
lets only this origin use passkeys.  The script keeps tokens in memory.
"""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path

from carekey import errors
from carekey.api import Call, Reply
from carekey.config import settings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "publickey-credentials-create=(self), publickey-credentials-get=(self), camera=(), microphone=(), geolocation=()",
}
ASSETS = {"ui.js": "application/javascript; charset=utf-8", "ui.css": "text/css; charset=utf-8"}


@lru_cache(maxsize=4)
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def page(call: Call, assets: Path) -> Reply:
    """GET /ui (the page) and GET /ui/{asset} (its script and stylesheet, from `assets`)."""
    if call.resource == "/ui":
        text = (
            _read(assets / "ui.html")
            .replace("{base}", html.escape(call.base_url, quote=True))
            .replace("{service}", html.escape(settings().service_name, quote=True))
        )
        # The page is small and names its API: never cached, so a changed deployment shows at once.
        return Reply(200, text, PAGE_HEADERS, raw=True)
    name = call.path_params.get("asset", "")
    # Only the page's own files: a name from the path never reaches the file system.
    if name not in ASSETS:
        raise errors.NotFound()
    return Reply(200, _read(assets / name), {"Content-Type": ASSETS[name], "Cache-Control": "public, max-age=300"}, raw=True)

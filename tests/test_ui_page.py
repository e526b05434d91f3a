"""GET /ui: the hosted sign-in page, its headers and its assets (the browser
journey itself is tests/e2e/test_ui_journey.py)."""

from __future__ import annotations

import re

from local.template import ROOT

ASSETS = ROOT / "functions" / "ui" / "assets"


def test_the_page_is_served_with_a_strict_policy(api):
    r = api.get("/ui")
    assert r.status == 200 and r.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = dict(part.strip().split(" ", 1) for part in r.headers["Content-Security-Policy"].split(";"))
    assert csp["default-src"] == "'self'" and csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and csp["form-action"] == "'none'" and csp["object-src"] == "'none'"
    assert "unsafe" not in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Cache-Control"] == "no-store"
    assert "publickey-credentials-get=(self)" in r.headers["Permissions-Policy"]


def test_the_page_loads_only_its_own_files_and_has_no_inline_code(api):
    page = api.get("/ui").body.decode()
    assert re.findall(r'<script[^>]*src="([^"]+)"', page) == ["http://127.0.0.1:3000/ui/ui.js"]
    assert re.findall(r'<link[^>]*href="([^"]+)"', page) == ["http://127.0.0.1:3000/ui/ui.css"]
    assert re.search(r"<script(?![^>]*src=)", page) is None, "inline script"
    assert re.search(r"\son[a-z]+=", page) is None, "inline event handler"
    assert re.search(r"\sstyle=", page) is None and "<style" not in page, "inline style"
    assert len(set(re.findall(r'https?://[^/"]+', page))) == 1, "only the service's own origin"
    # every input has a label
    ids = set(re.findall(r'<input id="([^"]+)"', page))
    assert ids and ids <= set(re.findall(r'<label for="([^"]+)"', page))


def test_assets_are_served_and_nothing_else(api):
    for name, kind in (("ui.js", "application/javascript"), ("ui.css", "text/css")):
        r = api.get(f"/ui/{name}")
        assert r.status == 200 and r.headers["Content-Type"].startswith(kind)
        assert r.body == (ASSETS / name).read_bytes()
    for name in ("ui.html", "..%2Fapp.py", "app.py", "nothing.js"):
        assert api.get(f"/ui/{name}").status == 404, name
    assert api.request("POST", "/ui", {}).status == 405


def test_the_script_keeps_tokens_in_memory_and_writes_no_markup():
    script = (ASSETS / "ui.js").read_text()
    for forbidden in ("localStorage", "sessionStorage", "document.cookie", "innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "document.write"):
        assert forbidden not in script.split("// A reload signs the person out")[1], forbidden
    assert "credentials: 'omit'" in script


def test_the_page_names_its_service_and_api_escaped(api, settings_override):
    settings_override(SERVICE_NAME='Care "Key" <b>')
    page = api.get("/ui").body.decode()
    assert "<b>" not in page and "Care &quot;Key&quot; &lt;b&gt;" in page

"""The README's limits table matches the code's defaults and the template."""

from __future__ import annotations

import re

from carekey.config import Settings

from local.template import ROOT, load


def _limits_table() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Security limits", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([A-Z_]+)` \| (\d+) \|", section, flags=re.M))


def test_every_documented_limit_is_the_codes_default():
    table = _limits_table()
    assert len(table) >= 15
    by_alias = {f.alias: f.default for f in Settings.model_fields.values()}
    for env, documented in table.items():
        assert by_alias[env] == int(documented), env


def test_every_documented_limit_is_a_template_setting():
    env = load()["Globals"]["Function"]["Environment"]["Variables"]
    for name in _limits_table():
        assert name in env, name

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


def test_every_test_the_readme_cites_exists():
    # Given the README's tables, which cite the test behind each promise
    # (`file.py::test_name`, or `::test_name` for another test of the same file)
    cited: list[tuple[str, str]] = []
    for line in (ROOT / "README.md").read_text().splitlines():
        current = None
        for path, name in re.findall(r"`((?:[\w/]+\.py)?)::(\w+)`", line):
            current = path or current
            assert current, f"{name} is cited without a file"
            cited.append((current, name))
    # Then each one is a test function in that file
    assert len(cited) >= 20
    for path, name in cited:
        found = [p for p in (ROOT / "tests").rglob(path.rsplit("/", 1)[-1])]
        assert found and any(re.search(rf"^def {name}\(", p.read_text(), flags=re.M) for p in found), f"{path}::{name}"

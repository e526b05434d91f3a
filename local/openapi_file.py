"""`make openapi`: writes docs/openapi.json from the code (carekey.openapi)."""

from __future__ import annotations

import json
import sys

from local.template import ROOT

OPENAPI_FILE = ROOT / "docs" / "openapi.json"


def generated() -> str:
    sys.path.insert(0, str(ROOT / "layers" / "common"))
    from carekey.openapi import document

    return json.dumps(document(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    OPENAPI_FILE.write_text(generated())
    print(f"wrote {OPENAPI_FILE.relative_to(ROOT)}")

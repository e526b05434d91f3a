"""Loads each function's handler from its CodeUri, as Lambda would: every
function is its own module, with the layer on the import path."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any, Callable

from local.template import ROOT, Stack

LAYER = ROOT / "layers" / "common"
if str(LAYER) not in sys.path:
    sys.path.insert(0, str(LAYER))

_loaded: dict[str, Callable[..., Any]] = {}


def handler(stack: Stack, logical_id: str) -> Callable[[dict[str, Any], Any], Any]:
    if logical_id not in _loaded:
        code_dir, spec = stack.handler_of(logical_id)
        module_name, func = spec.rsplit(".", 1)
        path = code_dir / f"{module_name}.py"
        mod_spec = importlib.util.spec_from_file_location(f"carekey_fn_{logical_id}", path)
        assert mod_spec and mod_spec.loader
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        _loaded[logical_id] = getattr(module, func)
    return _loaded[logical_id]


class LambdaContext:
    """Enough of the Lambda context object for Powertools."""

    def __init__(self, function_name: str, request_id: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 1024
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000

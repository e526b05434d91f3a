"""The one place that creates the shared Powertools logger and metrics.

Tracing is Lambda's own (template.yaml: the API stage samples, the functions
trace what it sampled): it records each invocation's segment without an SDK
on the import path.  The
X-Ray SDK that Powertools Tracer loads cost about 90 ms of every cold start
and leaves support on 2027-02-25, so the service does not import it.

Log lines carry event names and opaque ids only: never an email, password,
code or token.  The logger's serializer is a second line of defence: it
scrubs anything shaped like a JWT, a refresh token or a password hash (bcrypt,
Argon2) from the whole line it writes (the message, its arguments, extra keys,
appended keys and an exception's text), should one slip through.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aws_lambda_powertools import Logger, Metrics

_SECRET_SHAPES = re.compile(
    r"eyJ[\w-]+\.[\w-]+\.[\w-]+"  # JWT
    r"|[0-9a-f-]{36}~[0-9a-f-]{36}~[0-9]{1,9}~[0-9a-f]{64}"  # refresh token
    r"|\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}"  # bcrypt hash
    r"|\$argon2(?:id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+"  # Argon2 hash
)


def redacting_dumps(line: dict[str, Any]) -> str:
    """A log line as Powertools writes it (compact JSON, anything unknown as
    str), with every secret-shaped string in it replaced by "[redacted]"."""
    text = json.dumps(line, default=str, separators=(",", ":"), ensure_ascii=False)
    return _SECRET_SHAPES.sub("[redacted]", text)


logger = Logger(json_serializer=redacting_dumps)
metrics = Metrics()

import carekey.snapstart  # noqa: E402,F401 - registers the SnapStart runtime hooks in every function

"""The one place that creates the shared Powertools logger and metrics.

Tracing is Lambda's own (template.yaml: the API stage samples, the functions
trace what it sampled): it records each invocation's segment without an SDK
on the import path.  The
X-Ray SDK that Powertools Tracer loads cost about 90 ms of every cold start
and leaves support on 2027-02-25, so the service does not import it.

Log lines carry event names and opaque ids only: never an email, password,
code or token.  The `redact` filter below is a second line of defence that
scrubs anything shaped like a JWT, a refresh token or a password hash (bcrypt, Argon2) should one slip through.
"""

from __future__ import annotations

import logging
import re

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()

_SECRET_SHAPES = re.compile(
    r"eyJ[\w-]+\.[\w-]+\.[\w-]+"  # JWT
    r"|[0-9a-f-]{36}~[0-9a-f-]{36}~[0-9]{1,9}~[0-9a-f]{64}"  # refresh token
    r"|\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}"  # bcrypt hash
    r"|\$argon2(?:id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+"  # Argon2 hash
)


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _SECRET_SHAPES.sub("[redacted]", record.msg)
        return True


logger.addFilter(_Redact())

import carekey.snapstart  # noqa: E402,F401 - registers the SnapStart runtime hooks in every function

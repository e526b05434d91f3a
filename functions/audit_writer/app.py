"""Consumes the audit queue: chains, MACs and stores each batch of audit events."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from carekey.audit_writer import handle_batch
from carekey.observability import logger, metrics


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_batch(event)

"""Consumes SES feedback (bounces and complaints, through SNS): suppresses the address."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from carekey.flows.email_feedback import handle_notifications
from carekey.observability import logger, metrics


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    handle_notifications(event)

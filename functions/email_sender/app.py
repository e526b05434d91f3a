"""Consumes the email queue: the look-ups, codes and emails that follow the
answers of register, resend-otp, forgot-password and resend-password-reset-otp."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from carekey.flows.email_work import handle_batch
from carekey.observability import logger, metrics


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # ReportBatchItemFailures: only the failed jobs return to the queue.
    return handle_batch(event)

"""The API's Lambda TOKEN authorizer: admits valid, unrevoked access tokens."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from carekey import tokens
from carekey.flows.sessions import authorize
from carekey.observability import logger

tokens.preload(signs=False)


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Raising "Unauthorized" is how a TOKEN authorizer makes API Gateway answer 401.
    # (Lambda's active tracing covers it; Powertools' tracer would log each refusal as an error.)
    return authorize(event.get("authorizationToken", ""), event.get("methodArn", ""))

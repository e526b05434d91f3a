"""POST /change-email, POST /change-email/verify : move the account to a new email, with a code sent there."""

from carekey import tokens
from carekey.api import Route, handler
from carekey.flows.email_change import request_change, verify_change
from carekey.schemas import ChangeEmailRequest, ChangeEmailVerifyRequest

lambda_handler = handler(
    POST=(
        Route(request_change, ChangeEmailRequest, protected=True, paths=("/change-email",)),
        Route(verify_change, ChangeEmailVerifyRequest, protected=True, paths=("/change-email/verify",)),
    ),
)

tokens.preload()

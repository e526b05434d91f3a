"""GET /mfa, POST /mfa/totp/setup, /mfa/totp/confirm, /mfa/totp/disable, /mfa/recovery-codes : two-step sign-in settings."""

from carekey import tokens
from carekey.api import Route, handler
from carekey.flows.mfa import confirm, disable, regenerate_recovery_codes, setup, status
from carekey.schemas import MfaChangeRequest, MfaConfirmRequest, MfaSetupRequest

lambda_handler = handler(
    GET=Route(status, protected=True, paths=("/mfa",)),
    POST=(
        # setup and confirm also take the enrolment token of a login under MFA_POLICY=required (no gateway authorizer)
        Route(setup, MfaSetupRequest, bearer_optional=True, paths=("/mfa/totp/setup",)),
        Route(confirm, MfaConfirmRequest, bearer_optional=True, paths=("/mfa/totp/confirm",)),
        Route(disable, MfaChangeRequest, protected=True, paths=("/mfa/totp/disable",)),
        Route(regenerate_recovery_codes, MfaChangeRequest, protected=True, paths=("/mfa/recovery-codes",)),
    ),
)

tokens.preload()

"""POST /webauthn/register/options, POST /webauthn/register/verify : add a passkey to the signed-in account."""

from carekey.api import Route, handler
from carekey.flows.passkeys import register_options, register_verify
from carekey.schemas import PasskeyRegisterOptionsRequest, PasskeyRegisterVerifyRequest

lambda_handler = handler(
    POST=(
        Route(register_options, PasskeyRegisterOptionsRequest, protected=True, paths=("/webauthn/register/options",)),
        Route(register_verify, PasskeyRegisterVerifyRequest, protected=True, paths=("/webauthn/register/verify",)),
    )
)

"""POST /webauthn/login/options, POST /webauthn/login/verify : sign in with a passkey."""

from carekey.api import Route, handler
from carekey.flows.passkeys import login_options, login_verify
from carekey.schemas import PasskeyLoginOptionsRequest, PasskeyLoginVerifyRequest

lambda_handler = handler(
    POST=(
        Route(login_options, PasskeyLoginOptionsRequest, paths=("/webauthn/login/options",)),
        Route(login_verify, PasskeyLoginVerifyRequest, paths=("/webauthn/login/verify",)),
    )
)

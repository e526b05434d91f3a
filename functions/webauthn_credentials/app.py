"""GET /webauthn/credentials, DELETE /webauthn/credentials/{id} : the signed-in user's passkeys."""

from carekey.api import Route, handler
from carekey.flows.passkey_list import delete_passkey, list_passkeys

lambda_handler = handler(
    GET=Route(list_passkeys, protected=True, paths=("/webauthn/credentials",)),
    DELETE=Route(delete_passkey, protected=True, paths=("/webauthn/credentials/{id}",)),
)

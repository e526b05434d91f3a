"""GET /.well-known/jwks.json and /.well-known/openid-configuration : what
resource servers need to verify access tokens.  Serving the published keys
is JSON work: this function loads neither PyJWT nor cryptography."""

import carekey.public_keys  # noqa: F401 - what the first request reads, loaded at init
from carekey.api import Route, handler
from carekey.flows.discovery import well_known

lambda_handler = handler(GET=Route(well_known))

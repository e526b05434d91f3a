"""GET /.well-known/jwks.json and /.well-known/openid-configuration : what
resource servers need to verify access tokens."""

from carekey import tokens
from carekey.api import Route, handler
from carekey.flows.discovery import well_known

lambda_handler = handler(GET=Route(well_known))

tokens.preload(signs=False)

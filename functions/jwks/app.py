"""GET /.well-known/jwks.json : the public keys that verify access tokens."""

from carekey import tokens
from carekey.api import Route, handler
from carekey.flows.discovery import jwks

lambda_handler = handler(GET=Route(jwks))

tokens.preload()

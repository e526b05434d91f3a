"""POST /token/refresh : rotate a refresh token into a new token pair."""

from carekey import tokens
from carekey.api import Route, handler
from carekey.flows.sessions import refresh
from carekey.schemas import RefreshRequest

lambda_handler = handler(POST=Route(refresh, RefreshRequest))

tokens.preload()

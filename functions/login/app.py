"""POST /login : check credentials and start a session."""

from carekey import tokens
from carekey.api import Route, handler
from carekey.flows.sessions import login
from carekey.schemas import LoginRequest

lambda_handler = handler(POST=Route(login, LoginRequest))

tokens.preload()

"""POST /login/mfa : the second step of a login (an authenticator code or a recovery code)."""

from carekey import tokens
from carekey.api import Route, handler
from carekey.flows.mfa import login_mfa
from carekey.schemas import LoginMfaRequest

lambda_handler = handler(POST=Route(login_mfa, LoginMfaRequest))

tokens.preload()

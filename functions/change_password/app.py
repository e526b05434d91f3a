"""POST /change-password : change the password; every other session ends."""

from carekey import tokens
from carekey.api import Route, handler
from carekey.flows.account import change_password
from carekey.schemas import ChangePasswordRequest

lambda_handler = handler(POST=Route(change_password, ChangePasswordRequest, protected=True))

tokens.preload()

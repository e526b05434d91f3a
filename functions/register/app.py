"""POST /register : create an account and email a verification code."""

from carekey.api import Route, handler
from carekey.flows.registration import register
from carekey.schemas import RegisterRequest

lambda_handler = handler(POST=Route(register, RegisterRequest))

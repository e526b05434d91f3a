"""POST /forgot-password : email a password reset code."""

from carekey.api import Route, handler
from carekey.flows.password_reset import forgot_password
from carekey.schemas import EmailOnlyRequest

lambda_handler = handler(POST=Route(forgot_password, EmailOnlyRequest))

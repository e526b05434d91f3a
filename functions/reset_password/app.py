"""POST /reset-password : set a new password with a reset code."""

from carekey.api import Route, handler
from carekey.flows.password_reset import reset_password
from carekey.schemas import ResetPasswordRequest

lambda_handler = handler(POST=Route(reset_password, ResetPasswordRequest))

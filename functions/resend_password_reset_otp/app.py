"""POST /resend-password-reset-otp : send a new password reset code."""

from carekey.api import Route, handler
from carekey.flows.password_reset import resend_reset_code
from carekey.schemas import EmailOnlyRequest

lambda_handler = handler(POST=Route(resend_reset_code, EmailOnlyRequest))

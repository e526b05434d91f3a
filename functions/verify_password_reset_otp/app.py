"""POST /verify-password-reset-otp : check a password reset code."""

from carekey.api import Route, handler
from carekey.flows.password_reset import verify_reset_code
from carekey.schemas import VerifyResetOtpRequest

lambda_handler = handler(POST=Route(verify_reset_code, VerifyResetOtpRequest))

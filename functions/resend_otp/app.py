"""POST /resend-otp : send a new verification or password reset code."""

from carekey.api import Route, handler
from carekey.flows.registration import resend
from carekey.schemas import ResendOtpRequest

lambda_handler = handler(POST=Route(resend, ResendOtpRequest))

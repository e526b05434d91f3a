"""POST /verify-otp : verify an email address with its code."""

from carekey.api import Route, handler
from carekey.flows.registration import verify_email
from carekey.schemas import VerifyOtpRequest

lambda_handler = handler(POST=Route(verify_email, VerifyOtpRequest))

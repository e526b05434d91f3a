"""POST /logout : end this session, or every session."""

from carekey.api import Route, handler
from carekey.flows.sessions import logout
from carekey.schemas import LogoutRequest

lambda_handler = handler(POST=Route(logout, LogoutRequest, protected=True))

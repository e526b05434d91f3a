"""GET / : the API's own documentation."""

from carekey.api import Route, handler
from carekey.flows.discovery import api_root

lambda_handler = handler(GET=Route(api_root))

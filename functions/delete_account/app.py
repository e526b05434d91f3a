"""DELETE /profile : the signed-in person erases their own account."""

from carekey.api import Route, handler
from carekey.flows.account import delete_account
from carekey.schemas import DeleteAccountRequest

lambda_handler = handler(DELETE=Route(delete_account, DeleteAccountRequest, protected=True))

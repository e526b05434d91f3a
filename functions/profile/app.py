"""GET /profile, PUT /profile, GET /me : the signed-in user's profile.
(DELETE /profile is the DeleteAccount function's, with the rights erasing needs.)"""

from carekey.api import Route, handler
from carekey.flows.account import delete_account, get_profile, update_profile
from carekey.schemas import DeleteAccountRequest, ProfileUpdateRequest

lambda_handler = handler(
    GET=Route(get_profile, protected=True),
    PUT=Route(update_profile, ProfileUpdateRequest, protected=True, paths=("/profile",)),
    DELETE=Route(delete_account, DeleteAccountRequest, protected=True, paths=("/profile",), elsewhere=True),
)

"""GET /profile, PUT /profile, GET /me : the signed-in user's profile."""

from carekey.api import Route, handler
from carekey.flows.account import get_profile, update_profile
from carekey.schemas import ProfileUpdateRequest

lambda_handler = handler(
    GET=Route(get_profile, protected=True),
    PUT=Route(update_profile, ProfileUpdateRequest, protected=True, paths=("/profile",)),
)

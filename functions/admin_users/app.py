"""The operators' API (AWS_IAM): GET /admin/users?email=, GET and DELETE
/admin/users/{id}, POST /admin/users/{id}/disable, enable, unlock, sign-out
and force-password-reset."""

from carekey.api import Route, handler
from carekey.flows import admin


def _action(flow, name: str) -> Route:  # noqa: ANN001 - a flow
    return Route(flow, operator=True, paths=(f"/admin/users/{{id}}/{name}",))


lambda_handler = handler(
    GET=(
        Route(admin.find_user, operator=True, paths=("/admin/users",)),
        Route(admin.get_user, operator=True, paths=("/admin/users/{id}",)),
    ),
    POST=(
        _action(admin.disable_user, "disable"),
        _action(admin.enable_user, "enable"),
        _action(admin.unlock_user, "unlock"),
        _action(admin.sign_out_user, "sign-out"),
        _action(admin.force_password_reset, "force-password-reset"),
    ),
    DELETE=Route(admin.erase_user, operator=True, paths=("/admin/users/{id}",)),
)

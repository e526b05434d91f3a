"""GET /admin/users/{id}/audit (AWS_IAM): one person's audit trail.  The only
function that may read audit records."""

from carekey.api import Route, handler
from carekey.flows.admin import audit_trail

lambda_handler = handler(GET=Route(audit_trail, operator=True))

"""GET /sessions, DELETE /sessions/{id} : the signed-in user's sessions."""

from carekey.api import Route, handler
from carekey.flows.sessions import end_session, list_sessions

lambda_handler = handler(
    GET=Route(list_sessions, protected=True, paths=("/sessions",)),
    DELETE=Route(end_session, protected=True, paths=("/sessions/{id}",)),
)

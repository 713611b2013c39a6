"""The admin API's sessions: ``GET /admin/sessions?user_id=`` and
``DELETE /admin/sessions/{sid}``.

Authorization and errors are the admin API's (entrypoints/http/admin.py): a bearer token
with the service scope ``admin`` on a client's own token (401 ``invalid_token`` without
one, 403 ``insufficient_scope`` for a user's token or one without ``admin``), errors as
``{"error", "error_description"}``.

- ``GET``: the user's live sessions, oldest first, as ``{"sessions": [...]}``, each with
  ``sid``, ``user_id``, ``auth_time``, ``amr``, ``acr``, ``created_at``, ``idle_exp``,
  ``exp`` and ``clients`` (never the hash the cookie opens). A user without sessions, or
  no such user, is an empty list: sessions are named by the user id they carry.
- ``DELETE``: ends the session as a logout does (its grants revoked per client policy,
  back-channel logouts sent in the background); 204, or 404 ``not_found`` when no live
  session has that ``sid``. One ``sessions_revoked`` security event names the admin client
  as ``actor``, beside the ``session_ended`` event.

A ``user_id`` or ``sid`` that no user or session can have (empty, a NUL, over 255
characters) is 400 ``invalid_request``.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get
from litestar.exceptions import HTTPException
from litestar.params import Parameter

from domain.errors import DomainError
from domain.logout import end_session_by_sid
from domain.text import is_storable
from domain.user_sessions import OPERATOR, session_view
from entrypoints.http.admin import (
    MAX_BODY_BYTES,
    NO_STORE,
    AdminError,
    _actor,
    _admin_error,
    _authorize,
    _domain_error,
    _http_error,
    _internal_error,
    _json,
    _refused,
)
from entrypoints.http.bearer import ServiceTokenRefused
from entrypoints.http.services import ServicesDependency

#: The longest id accepted: no id this service makes comes close.
MAX_ID_LENGTH = 255


def _checked(value: str | None, name: str) -> str:
    if value is None or value == "":
        raise AdminError(400, "invalid_request", f"{name} is required")
    if len(value) > MAX_ID_LENGTH or not is_storable(value):
        raise AdminError(400, "invalid_request",
                         f"{name} is not one a {'user' if name == 'user_id' else 'session'} "
                         "can have")
    return value


class AdminSessionsController(Controller):
    """``/admin/sessions``: list a user's live sessions; end one."""

    path = "/admin/sessions"
    tags = ["admin"]
    guards = [_authorize]
    request_max_body_size = MAX_BODY_BYTES
    response_headers = NO_STORE
    exception_handlers = {
        AdminError: _admin_error,
        ServiceTokenRefused: _refused,
        DomainError: _domain_error,
        HTTPException: _http_error,
        Exception: _internal_error,
    }

    @get("/", operation_id="listSessions", summary="List a user's live sessions")
    async def list_sessions(
        self,
        services: ServicesDependency,
        user_id: Annotated[str | None, Parameter(
            description="the user's id (required)")] = None,
    ) -> Response[bytes]:
        """The user's live browser sessions, oldest first."""
        sessions = await services.store.list_sessions(_checked(user_id, "user_id"),
                                                      services.clock.now())
        return _json({"sessions": [session_view(s) for s in sessions]})

    @delete("/{sid:str}", operation_id="deleteSession", summary="End a session",
            status_code=204)
    async def delete_session(
        self,
        sid: Annotated[str, Parameter(description="the session's sid")],
        request: Request[Any, Any, Any],
        services: ServicesDependency,
    ) -> None:
        """End the session: its grants are revoked per client policy and its clients
        are sent back-channel logouts."""
        sid = _checked(sid, "sid")
        if not await end_session_by_sid(services.logout, sid, reason=OPERATOR):
            raise AdminError(404, "not_found", "no live session has this sid")
        services.events.emit("sessions_revoked", actor=_actor(request), sid=sid, sessions=1)

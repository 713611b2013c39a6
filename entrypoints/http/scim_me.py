"""``/scim/v2/Me`` (RFC 7644 section 3.11): the signed-in user's own User resource.

Read only, for the user's own token: a bearer token that carries a user ``sub`` and the
user scope ``profile`` (the scope that releases the same facts at ``/oauth/userinfo``).

- No token, or an invalid one: 401 with ``WWW-Authenticate: Bearer``.
- A client's own token (``client_credentials``: service scopes, no user): 403
  ``insufficient_scope`` naming ``profile``. The token is valid (so not 401), but the
  resource needs a user's delegation, which a service token can never carry (RFC 6750
  section 3.1: "the request requires higher privileges than provided by the access token").
  ``scim:read``/``scim:write`` grant nothing here: "Me" has no meaning for a client.
- A user's token without ``profile``: 403 ``insufficient_scope`` naming ``profile``.
- ``GET``: the user, as ``GET /Users/{id}`` answers it (ETag, ``If-None-Match``,
  ``attributes``/``excludedAttributes``), with ``Location`` set to the permanent
  ``/Users/{id}`` as section 3.11 requires. A user deleted or deactivated since the token
  was issued: 401 ``invalid_token``, as at userinfo.
- ``POST``, ``PUT``, ``PATCH``, ``DELETE``: 501. Section 3.11 answers 501 for what a
  provider does not support through the alias; a user changes nothing of its own SCIM
  resource here (provisioning clients do, with ``scim:write``, at ``/Users/{id}``).
"""

from __future__ import annotations

from typing import Any, cast

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from domain.bearer import has_scope, resolve_bearer
from domain.entities import AccessToken
from domain.errors import NotFound
from entrypoints.http.bearer import bearer_from_header
from entrypoints.http.scim import (
    ScimError,
    _Attributes,
    _Excluded,
    _not_modified,
    _user_response,
)
from entrypoints.http.services import Services, ServicesDependency

PROFILE = "profile"
_CHALLENGE = 'Bearer realm="scim"'
_TOKEN_STATE = "scim_me_token"


async def _authorize_me(connection: ASGIConnection[Any, Any, Any, Any],
                        _: BaseRouteHandler) -> None:
    """Guard (user scopes): a signed-in user's live token with ``profile``."""
    services = cast(Services, connection.app.state.services)
    token = bearer_from_header(cast(Request[Any, Any, Any], connection))
    record = None
    if token is not None:
        record = await resolve_bearer(services.store, token, services.clock.now())
    if record is None:
        challenge = _CHALLENGE + (', error="invalid_token"' if token is not None else "")
        raise ScimError(401, "a valid bearer access token is required",
                        headers={"WWW-Authenticate": challenge})
    insufficient = {"WWW-Authenticate": f'{_CHALLENGE}, error="insufficient_scope", '
                                        f'scope="{PROFILE}"'}
    if record.sub is None:
        raise ScimError(403, "/Me is the signed-in user's own resource: it needs a token a "
                        "user granted with the scope profile; a client's own token has no "
                        "user", headers=insufficient)
    if not has_scope(record, PROFILE):
        raise ScimError(403, "the access token lacks the scope profile",
                        headers=insufficient)
    connection.state[_TOKEN_STATE] = record


_READ_ONLY = ("/Me is read only here: a user's own SCIM resource is changed by a "
              "provisioning client at /Users/{id}")


class MeController(Controller):
    """``/scim/v2/Me``."""

    path = "/Me"
    tags = ["scim"]
    guards = [_authorize_me]

    @get("/", operation_id="scimGetMe")
    async def read(self, request: Request[Any, Any, Any], services: ServicesDependency,
                   attributes: _Attributes = None, excluded: _Excluded = None
                   ) -> Response[bytes]:
        record = cast(AccessToken, request.state[_TOKEN_STATE])
        assert record.sub is not None
        invalid = ScimError(401, "the access token's user no longer exists or is inactive",
                            headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'})
        try:
            user = await services.store.get_user(record.sub)
        except NotFound:
            raise invalid from None
        if not user.active:
            raise invalid
        return _not_modified(request, user.version) or _user_response(
            services, user, 200, attributes, excluded, location=True)

    @post("/", operation_id="scimCreateMe", status_code=501)
    async def create(self) -> None:
        raise ScimError(501, _READ_ONLY)

    @put("/", operation_id="scimReplaceMe", status_code=501)
    async def replace(self) -> None:
        raise ScimError(501, _READ_ONLY)

    @patch("/", operation_id="scimPatchMe", status_code=501)
    async def update(self) -> None:
        raise ScimError(501, _READ_ONLY)

    @delete("/", operation_id="scimDeleteMe", status_code=501)
    async def remove(self) -> None:
        raise ScimError(501, _READ_ONLY)

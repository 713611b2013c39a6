"""Reading a bearer token from a request (RFC 6750 section 2.1), and the one check every
service endpoint (SCIM, admin) makes of it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from litestar import Request
from litestar.connection import ASGIConnection

from domain.bearer import resolve_bearer
from domain.entities import AccessToken
from domain.oauth import client_exists
from domain.scopes import allows_service
from entrypoints.http.services import Services


def bearer_from_header(request: Request[Any, Any, Any]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class ServiceTokenRefused(Exception):
    """Why a service guard refused a request: ``status`` 401 (no live token) or 403 (a
    user's token, or one without the scope), and the ``WWW-Authenticate`` challenge in
    ``headers``. Each endpoint answers it in its own error format."""

    def __init__(self, status: int, description: str, challenge: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.headers = {"WWW-Authenticate": challenge}


async def require_service_token(
    connection: ASGIConnection[Any, Any, Any, Any], *, scopes: Sequence[str], realm: str,
    service: str,
) -> AccessToken:
    """The live bearer token of a client acting for itself (``client_credentials``: no user
    ``sub``) that holds one of ``scopes``; raises :class:`ServiceTokenRefused` otherwise.

    A user's token is refused whatever scope it carries (``domain.scopes.allows_service``).
    ``scopes[0]`` is the scope named in the challenge; ``service`` names the endpoint in
    the refusal of a user's token. Raises ``StoreUnavailable`` when the store cannot say
    (callers fail closed).
    """
    services = cast(Services, connection.app.state.services)
    token = bearer_from_header(cast(Request[Any, Any, Any], connection))
    record = None
    if token is not None:
        record = await resolve_bearer(services.store, token, services.clock.now())
    if record is not None and not await client_exists(services.clients, record.client_id):
        record = None  # the token's client was deleted: its tokens are worth nothing
    if record is None:
        challenge = f'Bearer realm="{realm}"'
        if token is not None:
            challenge += ', error="invalid_token"'
        raise ServiceTokenRefused(401, "a valid bearer access token is required", challenge)
    insufficient = f'Bearer realm="{realm}", error="insufficient_scope", scope="{scopes[0]}"'
    if record.sub is not None:
        raise ServiceTokenRefused(
            403, f"{service} needs a service token (client_credentials); a token issued for "
            "a user is refused", insufficient)
    if not any(allows_service(record, scope) for scope in scopes):
        raise ServiceTokenRefused(403, f"the access token lacks the scope {scopes[0]}",
                                  insufficient)
    return record

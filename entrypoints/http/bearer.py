"""Reading a bearer token from a request (RFC 6750 section 2.1), and the one check every
service endpoint (SCIM, admin) makes of it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from litestar import Request
from litestar.connection import ASGIConnection

from domain.bearer import resolve_bearer
from domain.dpop import (
    INVALID_DPOP_PROOF,
    USE_DPOP_NONCE,
    DpopRefused,
    check_presentation,
    current_nonce,
)
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


def dpop_from_header(request: Request[Any, Any, Any]) -> str | None:
    """The token of an ``Authorization: DPoP <token>`` header (RFC 9449 section 7.1)."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "dpop" or not token:
        return None
    return token


async def _check_dpop(
    services: Services, request: Request[Any, Any, Any], record: AccessToken, scheme: str,
    token: str, realm: str, now: int,
) -> None:
    """A DPoP-bound token only with its proof; an unbound one only as Bearer."""
    proofs = [value for key, value in request.scope["headers"] if key == b"dpop"]
    try:
        if len(proofs) > 1:
            raise DpopRefused(INVALID_DPOP_PROOF, "send exactly one DPoP header")
        await check_presentation(
            services.dpop, binding=record.token_binding, scheme=scheme,
            proof=proofs[0].decode("latin-1").strip() if proofs else None,
            access_token=token, method=request.scope["method"],
            url=services.settings.external_base_url + request.scope["path"], now=now)
    except DpopRefused as exc:
        refused = ServiceTokenRefused(401, exc.description,
                                      f'DPoP realm="{realm}", error="{exc.error}"')
        if exc.error == USE_DPOP_NONCE:
            refused.headers["DPoP-Nonce"] = current_nonce(services.dpop, now)
        raise refused from None


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
    request = cast(Request[Any, Any, Any], connection)
    scheme, token = "DPoP", dpop_from_header(request)
    if token is None:
        scheme, token = "Bearer", bearer_from_header(request)
    record = None
    now = services.clock.now()
    if token is not None:
        record = await resolve_bearer(services.store, token, now, allow_dpop_bound=True)
    if record is not None and not await client_exists(services.clients, record.client_id):
        record = None  # the token's client was deleted: its tokens are worth nothing
    if record is not None and token is not None:
        await _check_dpop(services, request, record, scheme, token, realm, now)
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

"""``POST /admin/initial-access-tokens``: an initial access token for dynamic registration
with ``CLIENT_REGISTRATION=token`` (what ``auth-service client initial-token`` does).

Authorized by the ``admin`` service scope on a client's own token (``client_credentials``);
a token with a user ``sub`` is refused whatever its scope (``domain.scopes.allows_service``).
The body is optional JSON: ``uses`` (default 1) and ``expires_in`` (seconds, default a
day; ``null``: never). The token is in the answer only: the store keeps its SHA-256.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post

from domain.client_registration import DEFAULT_INITIAL_TOKEN_SECONDS, issue_initial_access_token
from domain.scopes import ADMIN
from entrypoints.http.bearer import ServiceTokenRefused, bearer_from_header, require_service_token
from entrypoints.http.services import ServicesDependency
from entrypoints.http.userinfo import bearer_error

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_encoder = msgspec.json.Encoder()
_object = msgspec.json.Decoder(dict[str, Any])


class InitialAccessTokenCreated(msgspec.Struct, frozen=True):
    initial_access_token: str
    uses: int
    created_at: int
    expires_at: int | None


async def admin_guard(request: Request[Any, Any, Any]) -> Response[bytes] | None:
    """None when the request carries a live client token with the ``admin`` service scope
    (the admin API's guard, :func:`entrypoints.http.bearer.require_service_token`); else
    the RFC 6750 error to answer."""
    try:
        await require_service_token(request, scopes=(ADMIN,), realm="admin",
                                    service="the admin API")
    except ServiceTokenRefused as refused:
        error = "invalid_token" if refused.status == 401 else "insufficient_scope"
        if bearer_from_header(request) is None:
            return bearer_error(401, None, refused.description)
        return bearer_error(refused.status, error, refused.description)
    return None


def _bad(description: str) -> Response[bytes]:
    return Response(_encoder.encode({"error": "invalid_request",
                                     "error_description": description}),
                    status_code=400, media_type="application/json", headers=_NO_STORE)


@post("/admin/initial-access-tokens", operation_id="createInitialAccessToken",
      status_code=201, tags=["admin"],
      summary="Create an initial access token for dynamic client registration",
      description="Needs the admin service scope. Optional JSON body: uses (default 1), "
      "expires_in (seconds; default 86400; null: no expiry). The token is shown once.")
async def create_initial_access_token(
    request: Request[Any, Any, Any], services: ServicesDependency
) -> Response[bytes]:
    refused = await admin_guard(request)
    if refused is not None:
        return refused
    raw = await request.body()
    try:
        document = _object.decode(raw) if raw.strip() else {}
    except (msgspec.DecodeError, RecursionError):
        return _bad("the body must be a JSON object: {\"uses\": 1, \"expires_in\": 86400}")
    unknown = sorted(set(document) - {"uses", "expires_in"})
    if unknown:
        return _bad(f"unknown key(s): {', '.join(unknown)}")
    try:
        issued = await issue_initial_access_token(
            services.store, services.clock, services.token_generator, services.events,
            uses=document.get("uses", 1),
            expires_in=document.get("expires_in", DEFAULT_INITIAL_TOKEN_SECONDS))
    except ValueError as exc:
        return _bad(str(exc))
    body = InitialAccessTokenCreated(
        initial_access_token=issued.value, uses=issued.token.uses_left,
        created_at=issued.token.created_at, expires_at=issued.token.expires_at)
    return Response(_encoder.encode(body), status_code=201, media_type="application/json",
                    headers=_NO_STORE)

"""``GET``/``POST /oauth/userinfo`` (OpenID Connect Core 5.3): claims of the token's user.

The access token comes from the ``Authorization`` header or, on POST, from a form body's
``access_token`` (RFC 6750 sections 2.1 and 2.2); sending it both ways is refused (section
2). Query-string tokens (2.3) are not accepted: they end up in logs.

A DPoP-bound token (RFC 9449) comes as ``Authorization: DPoP <token>`` with a ``DPoP``
proof for this request (``ath`` included, ``domain.dpop.check_presentation``); as
``Bearer`` it is refused. DPoP failures are 401 with a ``WWW-Authenticate: DPoP``
challenge (``invalid_dpop_proof``, ``use_dpop_nonce`` with a ``DPoP-Nonce`` header,
``invalid_token``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post

from domain.bearer import has_scope, resolve_bearer
from domain.dpop import (
    DPOP_ALGORITHMS,
    USE_DPOP_NONCE,
    DpopRefused,
    check_presentation,
    current_nonce,
)
from domain.email_verification import email_claims
from domain.entities import User
from domain.errors import NotFound
from domain.oauth import OAuthError, client_exists, groups_claim
from domain.scopes import EMAIL, GROUPS
from entrypoints.http.bearer import bearer_from_header
from entrypoints.http.cors import request_origin, response_headers
from entrypoints.http.oauth import dpop_proof
from entrypoints.http.services import Services, ServicesDependency

REALM = 'realm="auth-service"'
USERINFO_PATH = "/oauth/userinfo"
_DPOP_ALGS = f'algs="{" ".join(DPOP_ALGORITHMS)}"'
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_encoder = msgspec.json.Encoder()


def bearer_error(status_code: int, error: str | None, description: str) -> Response[bytes]:
    """An RFC 6750 section 3 error: the challenge in ``WWW-Authenticate`` and a JSON body.

    Without ``error`` (no credentials were sent) the challenge carries only the realm.
    """
    challenge = f"Bearer {REALM}"
    if error is not None:
        challenge += f', error="{error}", error_description="{description}"'
    body = {"error": error or "invalid_request", "error_description": description}
    return Response(
        _encoder.encode(body), status_code=status_code, media_type="application/json",
        headers={**_NO_STORE, "WWW-Authenticate": challenge},
    )


def dpop_error(exc: DpopRefused, nonce: str | None) -> Response[bytes]:
    """A DPoP refusal at a resource (RFC 9449 section 7.1): 401 with a ``DPoP`` challenge,
    and ``DPoP-Nonce`` when there is one to use."""
    description = exc.description.replace('"', "'")
    challenge = (f'DPoP {REALM}, error="{exc.error}", error_description="{description}", '
                 f"{_DPOP_ALGS}")
    headers = {**_NO_STORE, "WWW-Authenticate": challenge}
    if nonce is not None:
        headers["DPoP-Nonce"] = nonce
    body = {"error": exc.error, "error_description": exc.description}
    return Response(_encoder.encode(body), status_code=401, media_type="application/json",
                    headers=headers)


def _dpop_token(request: Request[Any, Any, Any]) -> str | None:
    """The token of an ``Authorization: DPoP <token>`` header (scheme case-insensitive)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "dpop" and token else None


async def bearer_token(request: Request[Any, Any, Any]) -> str | Response[bytes] | None:
    """The bearer token of the request (header, or a form body's ``access_token``).

    Returns an error response when the request is malformed (the token sent twice).
    """
    from_header = bearer_from_header(request)
    from_body: str | None = None
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if request.method == "POST" and content_type == "application/x-www-form-urlencoded":
        values = (await request.form()).getall("access_token", [])
        if len(values) > 1:
            return bearer_error(400, "invalid_request", "access_token is repeated")
        from_body = values[0] if values and isinstance(values[0], str) and values[0] else None
    if from_header is not None and from_body is not None:
        return bearer_error(400, "invalid_request", "send the token in one place only")
    return from_header or from_body


def user_claims(user: User, scopes: list[str], email: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """OIDC standard claims of ``user`` released for ``scopes`` (OIDC Core 5.4); ``email``:
    the user's ``email`` claims (``domain.email_verification.email_claims``), released
    with the ``email`` scope."""
    claims: dict[str, Any] = {"sub": user.id}
    if "profile" in scopes:
        claims["preferred_username"] = user.user_name
        name = user.display_name or (user.name.formatted if user.name else None)
        if name is None and user.name and (user.name.given_name or user.name.family_name):
            name = " ".join(p for p in (user.name.given_name, user.name.family_name) if p)
        claims["name"] = name or user.user_name
        if user.name and user.name.given_name:
            claims["given_name"] = user.name.given_name
        if user.name and user.name.family_name:
            claims["family_name"] = user.name.family_name
    if EMAIL in scopes and email:
        # Verified only by a link the user used (domain.email_verification).
        claims.update(email)
    if GROUPS in scopes:
        claims["groups"] = groups_claim(user)
    return claims


class UserinfoController(Controller):
    """The OpenID Connect userinfo endpoint."""

    path = "/oauth/userinfo"

    @get(operation_id="userinfo")
    async def userinfo_get(self,
        request: Request[Any, Any, Any], services: ServicesDependency
    ) -> Response[bytes]:
        """Claims of the bearer token's user, by the token's scope."""
        return await _userinfo(request, services)

    @post(operation_id="userinfoPost", status_code=200)
    async def userinfo_post(self,
        request: Request[Any, Any, Any], services: ServicesDependency
    ) -> Response[bytes]:
        """As GET; the token may also come as ``access_token`` in a form body."""
        return await _userinfo(request, services)


async def _userinfo(request: Request[Any, Any, Any], services: Services) -> Response[bytes]:
    response, client_id = await _answer(request, services)
    origin = request_origin(request.scope)
    if origin is not None:
        # CORS for the browser app the token was issued to (entrypoints.http.cors).
        client = await services.clients.find(client_id) if client_id is not None else None
        for name, value in response_headers(origin, client):
            response.headers[name.decode("ascii")] = value.decode("latin-1")
    return response


async def _answer(
    request: Request[Any, Any, Any], services: Services
) -> tuple[Response[bytes], str | None]:
    """The response, and the id of the client the token was issued to (None: no token)."""
    now = services.clock.now()
    scheme = "DPoP"
    token: str | Response[bytes] | None = _dpop_token(request)
    if token is None:
        scheme = "Bearer"
        token = await bearer_token(request)
    if isinstance(token, Response):
        return token, None
    if token is None:
        return bearer_error(401, None, "a bearer access token is required"), None
    record = await resolve_bearer(services.store, token, now, allow_dpop_bound=True)
    if record is None or record.sub is None:
        if scheme == "DPoP":
            refused = DpopRefused("invalid_token", "the access token is invalid or expired")
            return dpop_error(refused, None), None
        return bearer_error(401, "invalid_token", "the access token is invalid or expired"), None
    try:
        await check_presentation(
            services.dpop, binding=record.token_binding, scheme=scheme,
            proof=dpop_proof(request), access_token=token, method=request.method,
            url=services.settings.external_base_url + USERINFO_PATH, now=now)
    except DpopRefused as exc:
        nonce = current_nonce(services.dpop, now) if exc.error == USE_DPOP_NONCE else None
        return dpop_error(exc, nonce), record.client_id
    except OAuthError as exc:  # more than one DPoP header
        return dpop_error(DpopRefused(exc.error, exc.description), None), record.client_id
    if not await client_exists(services.clients, record.client_id):
        # A deleted client's (a revoked registration's) tokens are worth nothing.
        return bearer_error(401, "invalid_token", "the access token is invalid or expired"), None
    if not has_scope(record, "openid"):
        return (bearer_error(403, "insufficient_scope", "the token lacks the openid scope"),
                record.client_id)
    try:
        user = await services.store.get_user(record.sub)
    except NotFound:
        return (bearer_error(401, "invalid_token", "the token's user no longer exists"),
                record.client_id)
    if not user.active:
        return bearer_error(401, "invalid_token", "the token's user is inactive"), record.client_id
    scopes = record.scope.split()
    # The credentials are read only when their claim is asked for.
    email = await email_claims(services.store, user) if EMAIL in scopes else None
    return Response(
        _encoder.encode(user_claims(user, scopes, email)),
        media_type="application/json", headers=_NO_STORE,
    ), record.client_id

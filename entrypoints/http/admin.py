"""The admin API: ``/admin/clients`` (JSON), over the client use cases (domain.client_admin).

Authorization: a bearer token with the service scope ``admin``, issued by
``client_credentials`` to a client acting for itself (the shared guard of
entrypoints/http/bearer.py, as SCIM's). No token or a dead one is 401 with
``WWW-Authenticate: Bearer``; a user's token (whatever its scope) or one without ``admin``
is 403 ``insufficient_scope``.

Errors are ``{"error", "error_description"}``: 400 ``invalid_client_metadata`` /
``invalid_redirect_uri`` (RFC 7591 codes, naming the key) or ``invalid_request``, 404
``not_found``, 409 ``conflict`` / ``static_client``, 412 ``precondition_failed``, 415
``unsupported_media_type``, 503 ``temporarily_unavailable``. Static clients
(``CLIENTS_FILE``, ``CLIENT_CREDENTIALS``) are listed and read, marked ``"static": true``,
and never changed here. A PUT is compare-and-set when it names a version (``If-Match``
with the ETag of a GET, or a ``version`` member): 412 when the client changed since.
Every change writes one security-event log line (``client_created``, ``client_updated``,
``client_deleted``, ``client_secret_added``) naming the admin client as ``actor``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Annotated, Any, cast

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import Parameter

from domain import client_admin
from domain.client_admin import StaticClient, client_view
from domain.client_metadata import ClientMetadataError, MetadataSource, parse_client_metadata
from domain.clients import Client
from domain.errors import (
    Conflict,
    DomainError,
    InvalidReference,
    InvalidValue,
    NotFound,
    PreconditionFailed,
    StoreUnavailable,
)
from domain.scopes import ADMIN
from domain.text import is_storable
from entrypoints.http.bearer import ServiceTokenRefused, require_service_token
from entrypoints.http.errors import UNAVAILABLE_DESCRIPTION
from entrypoints.http.services import Services, ServicesDependency

JSON = "application/json"
MAX_BODY_BYTES = 1024 * 1024
DEFAULT_PAGE = 50
MAX_PAGE = 200
#: Seconds: the longest a secret may be set to live, or the old ones to stay (ten years).
MAX_SECRET_SECONDS = 10 * 365 * 86_400
NO_STORE = {"Cache-Control": "no-store"}

log = logging.getLogger("auth_service.admin")
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()
# The version in an ETag or If-Match: W/"3" or "3".
_ETAG = re.compile(r'\s*(?:W/)?"(\d{1,18})"\s*')


class AdminError(Exception):
    """An error answered as ``{"error", "error_description"}`` with ``status``."""

    def __init__(self, status: int, error: str, description: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers or {}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None
          ) -> Response[bytes]:
    return Response(_encoder.encode(body), status_code=status, media_type=JSON,
                    headers={**NO_STORE, **(headers or {})})


def _error_response(exc: AdminError) -> Response[bytes]:
    return _json({"error": exc.error, "error_description": exc.description}, exc.status,
                 exc.headers)


# Errors

_DOMAIN_ERRORS: tuple[tuple[type[DomainError], int, str], ...] = (
    (StaticClient, 409, "static_client"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (PreconditionFailed, 412, "precondition_failed"),
    (InvalidValue, 400, "invalid_request"),
    (InvalidReference, 400, "invalid_request"),
)


def _domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[bytes]:
    if isinstance(exc, StoreUnavailable):
        log.warning("store unavailable on %s %s", request.method, request.url.path)
        return _error_response(AdminError(503, "temporarily_unavailable",
                                          UNAVAILABLE_DESCRIPTION, {"Retry-After": "1"}))
    for kind, status, error in _DOMAIN_ERRORS:
        if isinstance(exc, kind):
            description = str(exc)
            if isinstance(exc, PreconditionFailed):
                description = ("the client was changed since that version (If-Match or "
                               "version); read it again and retry")
            return _error_response(AdminError(status, error, description))
    return _error_response(AdminError(400, "invalid_request", str(exc)))


def _metadata_error(request: Request[Any, Any, Any], exc: ClientMetadataError
                    ) -> Response[bytes]:
    return _error_response(AdminError(400, exc.error, exc.description))


def _admin_error(request: Request[Any, Any, Any], exc: AdminError) -> Response[bytes]:
    return _error_response(exc)


def _refused(request: Request[Any, Any, Any], exc: ServiceTokenRefused) -> Response[bytes]:
    error = "invalid_token" if exc.status == 401 else "insufficient_scope"
    return _error_response(AdminError(exc.status, error, exc.description, exc.headers))


_HTTP_DESCRIPTIONS = {
    400: "the request is malformed (check the query parameters)",
    404: "no such endpoint",
    405: "method not allowed on this endpoint",
    413: "the request body is too large",
}


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    description = _HTTP_DESCRIPTIONS.get(status, "the request cannot be processed")
    error = "invalid_request" if status < 500 else "server_error"
    return _error_response(AdminError(status, error, description, dict(exc.headers or {})))


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error_response(AdminError(500, "server_error", "internal error"))


# Authorization


async def _authorize(connection: ASGIConnection[Any, Any, Any, Any],
                     handler: BaseRouteHandler) -> None:
    """Guard: the service scope ``admin`` on a client's own token; the client's id is kept
    for the events, as their ``actor``."""
    record = await require_service_token(connection, scopes=(ADMIN,), realm="admin",
                                         service="the admin API")
    connection.state.admin_client_id = record.client_id


def _actor(request: Request[Any, Any, Any]) -> str | None:
    return cast(str | None, getattr(request.state, "admin_client_id", None))


# Request helpers


async def _body(request: Request[Any, Any, Any], *, optional: bool = False) -> dict[str, Any]:
    """The JSON object of the body (``{}`` for an empty optional body)."""
    raw = await request.body()
    if optional and not raw.strip():
        return {}
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != JSON:
        raise AdminError(415, "unsupported_media_type", "the body must be application/json")
    if len(raw) > MAX_BODY_BYTES:
        raise AdminError(413, "invalid_request", _HTTP_DESCRIPTIONS[413])
    try:
        document = _decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise AdminError(400, "invalid_request", "the body is not valid JSON") from None
    if not isinstance(document, dict):
        raise AdminError(400, "invalid_request", "the body must be a JSON object")
    # Member names are echoed in errors ("unknown key"): they must be text we can show.
    if not all(is_storable(key) for key in document):
        raise AdminError(400, "invalid_client_metadata",
                         "a member name contains a character that is not allowed (NUL)")
    return document


def _client_id(value: str) -> str:
    if not is_storable(value) or not value or len(value) > 255:
        raise AdminError(400, "invalid_request", "the client id in the path is not one a "
                         "client can have")
    return value


def _etag(client: Client) -> dict[str, str]:
    return {} if client.static else {"ETag": f'W/"{client.version}"'}


def _expected_version(request: Request[Any, Any, Any], document: dict[str, Any]) -> int | None:
    """The version a PUT is conditional on: ``If-Match``, else the body's ``version``."""
    header = request.headers.get("if-match")
    from_header = None
    if header is not None and header.strip() != "*":
        match = _ETAG.fullmatch(header)
        if match is None:
            raise AdminError(400, "invalid_request",
                             'If-Match must be the ETag of the client (W/"<version>")')
        from_header = int(match.group(1))
    from_body = document.get("version")
    if from_body is not None and (isinstance(from_body, bool) or not isinstance(from_body, int)
                                  or from_body < 0):
        raise AdminError(400, "invalid_client_metadata",
                         "version must be the whole number a GET returned")
    if from_header is not None and from_body is not None and from_header != from_body:
        raise AdminError(400, "invalid_request", "If-Match and version name different "
                         "versions")
    return from_header if from_header is not None else from_body


def _seconds(document: dict[str, Any], key: str, minimum: int) -> int | None:
    value = document.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not (
            minimum <= value <= MAX_SECRET_SECONDS):
        raise AdminError(400, "invalid_request", f"{key} must be a whole number of seconds "
                         f"from {minimum} to {MAX_SECRET_SECONDS}")
    return value


def _created(client: Client, secret: str | None) -> dict[str, Any]:
    """The view of a client just created or changed, with its new secret shown once."""
    body = client_view(client)
    if secret is not None:
        body["client_secret"] = secret
        # RFC 7591 section 3.2.1: 0 is "does not expire".
        body["client_secret_expires_at"] = 0
    return body


# OpenAPI: the body is read by the metadata reader (its errors name the key), not by
# Litestar, so the request body is described here.

def _metadata_schema() -> Schema:
    string = Schema(type=OpenAPIType.STRING)
    strings = Schema(type=OpenAPIType.ARRAY, items=string)
    boolean = Schema(type=OpenAPIType.BOOLEAN)
    seconds = Schema(type=OpenAPIType.INTEGER, minimum=60)
    return Schema(
        type=OpenAPIType.OBJECT,
        description="Client metadata (RFC 7591 names; docs/clients.md). Unknown members are "
                    "refused; the members a GET adds (version, static, secrets, ...) are "
                    "ignored.",
        properties={
            "client_id": string, "client_name": string,
            "client_secret": Schema(type=OpenAPIType.STRING, min_length=32),
            "redirect_uris": strings, "post_logout_redirect_uris": strings,
            "grant_types": strings, "response_types": strings, "scope": string,
            "token_endpoint_auth_method": string,
            "jwks": Schema(type=OpenAPIType.OBJECT), "jwks_uri": string,
            "backchannel_logout_uri": string,
            "backchannel_logout_session_required": boolean,
            "access_token_lifetime": seconds, "refresh_token_lifetime": seconds,
            "require_pkce": boolean, "require_mfa": boolean, "first_party": boolean,
            "allowed_cors_origins": strings, "revoke_tokens_on_logout": boolean,
            "token_exchange_audiences": strings,
            "version": Schema(type=OpenAPIType.INTEGER, minimum=0),
        },
    )


def _rotation_schema() -> Schema:
    return Schema(type=OpenAPIType.OBJECT, properties={
        "expires_in": Schema(type=OpenAPIType.INTEGER, minimum=1,
                             description="seconds the new secret lives (default: no expiry)"),
        "retire_old_after": Schema(type=OpenAPIType.INTEGER, minimum=0,
                                   description="seconds the other secrets stay valid "
                                               "(default: until their own expiry)"),
    })


@dataclass
class _MetadataBody(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={JSON: OpenAPIMediaType(schema=_metadata_schema())}, required=True)


@dataclass
class _RotationBody(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={JSON: OpenAPIMediaType(schema=_rotation_schema())}, required=False)


ClientIdPath = Annotated[str, Parameter(description="the client's client_id", max_length=255)]


class AdminController(Controller):
    """``/admin/clients``: list, create, read, replace, delete clients; rotate secrets."""

    path = "/admin"
    tags = ["admin"]
    guards = [_authorize]
    request_max_body_size = MAX_BODY_BYTES
    # Responses without a body of ours (204 after DELETE) get it here.
    response_headers = NO_STORE
    exception_handlers = {
        AdminError: _admin_error,
        ServiceTokenRefused: _refused,
        ClientMetadataError: _metadata_error,
        DomainError: _domain_error,
        HTTPException: _http_error,
        Exception: _internal_error,
    }

    @get("/clients", operation_id="listClients", summary="List clients (static and stored)")
    async def list_clients(
        self,
        services: ServicesDependency,
        cursor: Annotated[str | None, Parameter(
            description="next_cursor of the previous page", max_length=1000)] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    ) -> Response[bytes]:
        """The static clients (marked ``"static": true``), then the stored ones; pass
        ``next_cursor`` back as ``cursor`` for the next page."""
        if cursor is not None and not is_storable(cursor):
            raise AdminError(400, "invalid_request", "cursor is not one this server returned")
        clients, next_cursor = await _page(services, cursor, limit)
        return _json({"clients": [client_view(c) for c in clients], "next_cursor": next_cursor})

    @post("/clients", operation_id="createClient", summary="Create a client",
          operation_class=_MetadataBody, status_code=201)
    async def create_client(self, request: Request[Any, Any, Any],
                            services: ServicesDependency) -> Response[bytes]:
        """Create a stored client from its metadata; the answer shows its ``client_secret``
        once (generated for a confidential client that gave none)."""
        ports = services.client_ports
        document = await _body(request)
        draft = parse_client_metadata(
            document, source=MetadataSource.ADMIN, client_id=client_admin.new_client_id(ports),
            allow_loopback_http=services.settings.outbound_allow_loopback,
            check_keys=ports.check_keys, signing_algs=ports.signing_algs)
        client, secret = await client_admin.create_client(ports, draft, actor=_actor(request))
        location = f"{services.settings.issuer}/admin/clients/{client.client_id}"
        return _json(_created(client, secret), 201, {**_etag(client), "Location": location})

    @get("/clients/{client_id:str}", operation_id="getClient", summary="Read a client")
    async def get_client(self, client_id: ClientIdPath,
                         services: ServicesDependency) -> Response[bytes]:
        client = await services.clients.find(_client_id(client_id))
        if client is None:
            raise NotFound(f"no client {client_id!r}")
        return _json(client_view(client), headers=_etag(client))

    @put("/clients/{client_id:str}", operation_id="replaceClient",
         summary="Replace a stored client's metadata", operation_class=_MetadataBody)
    async def replace_client(self, client_id: ClientIdPath, request: Request[Any, Any, Any],
                             services: ServicesDependency) -> Response[bytes]:
        """Replace the metadata (its secrets stay; a ``client_secret`` given is added).
        Conditional on ``If-Match`` or ``version`` when given: 412 when stale."""
        client_id = _client_id(client_id)
        ports = services.client_ports
        if client_id in ports.static:
            await client_admin.get_stored_client(ports, client_id)  # raises StaticClient
        document = await _body(request)
        expected = _expected_version(request, document)
        named = document.get("client_id", client_id)
        if named != client_id:
            raise AdminError(400, "invalid_client_metadata",
                             "client_id in the body must be the one in the path (a client "
                             "cannot be renamed)")
        draft = parse_client_metadata(
            document, source=MetadataSource.ADMIN, client_id=client_id,
            allow_loopback_http=services.settings.outbound_allow_loopback,
            check_keys=ports.check_keys, signing_algs=ports.signing_algs)
        client, secret = await client_admin.update_client(
            ports, draft, expected_version=expected, actor=_actor(request))
        return _json(_created(client, secret), headers=_etag(client))

    @delete("/clients/{client_id:str}", operation_id="deleteClient",
            summary="Delete a stored client", status_code=204)
    async def delete_client(self, client_id: ClientIdPath, request: Request[Any, Any, Any],
                            services: ServicesDependency) -> None:
        await client_admin.delete_client(services.client_ports, _client_id(client_id),
                                         actor=_actor(request))

    @post("/clients/{client_id:str}/secrets", operation_id="addClientSecret",
          summary="Rotate: add a secret", operation_class=_RotationBody, status_code=201)
    async def add_secret(self, client_id: ClientIdPath, request: Request[Any, Any, Any],
                         services: ServicesDependency) -> Response[bytes]:
        """Add a secret (shown once). The others stay valid until their own expiry, or
        for ``retire_old_after`` more seconds; the new one lives ``expires_in`` seconds
        (default: until removed)."""
        client_id = _client_id(client_id)
        ports = services.client_ports
        document = await _body(request, optional=True)
        unknown = sorted(set(document) - {"expires_in", "retire_old_after"})
        if unknown:
            raise AdminError(400, "invalid_request", f"unknown key(s): {', '.join(unknown)}")
        expires_in = _seconds(document, "expires_in", 1)
        retire_after = _seconds(document, "retire_old_after", 0)
        now = ports.clock.now()
        client, secret = await client_admin.add_secret(
            ports, client_id,
            expires_at=None if expires_in is None else now + expires_in,
            retire_others_at=None if retire_after is None else now + retire_after,
            actor=_actor(request))
        held = client.secrets[-1]
        return _json({
            "client_id": client.client_id,
            "client_secret": secret,
            "secret_id": held.id,
            "client_secret_expires_at": held.expires_at or 0,
            "version": client.version,
            "secrets": client_view(client)["secrets"],
        }, 201, _etag(client))


_STATIC_CURSOR = "static:"
_STORED_CURSOR = "stored:"


async def _page(services: Services, cursor: str | None, limit: int
                ) -> tuple[list[Client], str | None]:
    """One page of clients: the static ones first (by ``client_id``), then the stored ones
    in the store's order (a stored client with a static client's id is hidden: the static
    one wins), and the cursor of the next page (None after the last).

    The cursor says which list it continues: ``static:<last id>`` or ``stored:<the store's
    own cursor>``, which is passed back to the store unchanged (it may be opaque).
    """
    static = services.clients.static
    page: list[Client] = []
    store_cursor: str | None = None
    if cursor is None or cursor.startswith(_STATIC_CURSOR):
        after = None if cursor is None else cursor[len(_STATIC_CURSOR):]
        remaining = sorted((c for c in static if after is None or c.client_id > after),
                           key=lambda c: c.client_id)
        page = remaining[:limit]
        if len(remaining) > limit:
            return page, _STATIC_CURSOR + page[-1].client_id
    elif cursor.startswith(_STORED_CURSOR):
        store_cursor = cursor[len(_STORED_CURSOR):] or None
    else:
        raise AdminError(400, "invalid_request", "cursor is not one this server returned "
                         "(use next_cursor)")
    room = limit - len(page)
    store = services.clients.store
    if room == 0:
        # The static clients fill this page exactly: is there a stored one after them?
        peek = await store.list_clients(None, 1)
        return page, _STORED_CURSOR if peek.records else None
    batch = await store.list_clients(store_cursor, room)
    page.extend(c for c in batch.records if c.client_id not in static)
    return page, None if batch.cursor is None else _STORED_CURSOR + batch.cursor

"""SCIM 2.0 over HTTP (RFC 7644): ``/scim/v2/Users``, ``/Groups`` and discovery.

Thin handlers over ``domain.identities``. Bodies are read and written as JSON by msgspec,
whatever the media type (``application/scim+json`` or ``application/json``); responses
are ``application/scim+json``. Every error under ``/scim/v2`` is an RFC 7644 error resource,
through this router's own exception handlers.

Authorization (RFC 6750 bearer tokens): reads need scope ``scim:read`` or ``scim:write``
(write implies read), writes need ``scim:write``; both are service scopes, so only a
client's own token (``client_credentials``, no user ``sub``) passes. A missing or invalid
token is 401 with ``WWW-Authenticate: Bearer``; a user's token, or one without the scope,
is 403 ``insufficient_scope``.
Discovery (``ServiceProviderConfig``, ``ResourceTypes``, ``Schemas``) is public: it holds
nothing secret and tells a client how to authenticate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, cast

import msgspec
from litestar import Controller, Request, Response, Router, delete, get, patch, post, put
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, QueryParameter

from domain import identities
from domain.entities import Group, Page, User
from domain.errors import (
    Conflict,
    DomainError,
    InvalidReference,
    InvalidValue,
    NotFound,
    PreconditionFailed,
    StoreUnavailable,
)
from domain.password_policy import PasswordPolicy
from domain.scim import bulk, writes
from domain.scim.errors import InvalidFilter, InvalidPath, InvalidSyntax, Mutability, NoTarget
from domain.scim.projection import project, split_names
from domain.scim.resources import etag, group_to_json, user_to_json, versions_of
from domain.scim.schema import (
    ERROR,
    GROUP,
    GROUP_SCHEMA,
    LIST_RESPONSE,
    RESOURCES,
    SCHEMAS,
    SERVICE_PROVIDER_CONFIG,
    USER,
    ResourceSchema,
)
from domain.scim.search import SearchRequest, read_search_request, search_all
from domain.scopes import SCIM_READ, SCIM_WRITE
from entrypoints.http.account_email import verification_ports
from entrypoints.http.bearer import ServiceTokenRefused, require_service_token
from entrypoints.http.services import Services, ServicesDependency

SCIM_MEDIA_TYPE = "application/scim+json"
MAX_BODY_BYTES = 1024 * 1024
READ = SCIM_READ
WRITE = SCIM_WRITE
_ACCEPTED_TYPES = ("application/scim+json", "application/json")

log = logging.getLogger("auth_service.scim")
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class ScimError(Exception):
    """An error answered as an RFC 7644 error resource."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = headers or {}


#: On every SCIM response: resources hold personal data, and a shared cache (a proxy, the
#: provisioning client's HTTP library) must keep none of it.
NO_STORE = {"Cache-Control": "no-store"}


def scim_response(body: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response[bytes]:
    """A ``application/scim+json`` response, never stored by a cache."""
    return Response(_encoder.encode(body), status_code=status, media_type=SCIM_MEDIA_TYPE,
                    headers={**NO_STORE, **(headers or {})})


def error_body(error: ScimError) -> dict[str, Any]:
    """The RFC 7644 error resource of ``error``."""
    body: dict[str, Any] = {"schemas": [ERROR], "status": str(error.status)}
    if error.scim_type:
        body["scimType"] = error.scim_type
    body["detail"] = error.detail
    return body


def _error_response(error: ScimError) -> Response[bytes]:
    return scim_response(error_body(error), error.status, error.headers)


# Errors

_SCIM_TYPES: tuple[tuple[type[DomainError], int, str | None], ...] = (
    (InvalidFilter, 400, "invalidFilter"),
    (InvalidPath, 400, "invalidPath"),
    (InvalidSyntax, 400, "invalidSyntax"),
    (Mutability, 400, "mutability"),
    (NoTarget, 400, "noTarget"),
    (InvalidValue, 400, "invalidValue"),
    (InvalidReference, 400, "invalidValue"),
    (NotFound, 404, None),
    (Conflict, 409, "uniqueness"),
    (PreconditionFailed, 412, None),
)


def scim_error_of(exc: DomainError) -> ScimError:
    """The SCIM error a domain error is answered with (also in a Bulk response)."""
    if isinstance(exc, StoreUnavailable):
        return ScimError(503, "the service is temporarily unavailable; retry later",
                         headers={"Retry-After": "1"})
    for kind, status, scim_type in _SCIM_TYPES:
        if isinstance(exc, kind):
            detail = str(exc)
            if isinstance(exc, PreconditionFailed):
                detail = "the resource was modified: its version does not match If-Match"
            return ScimError(status, detail, scim_type)
    return ScimError(400, str(exc), "invalidValue")


def _domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[bytes]:
    if isinstance(exc, StoreUnavailable):
        log.warning("store unavailable on %s %s", request.method, request.url.path)
    return _error_response(scim_error_of(exc))


def _scim_error(request: Request[Any, Any, Any], exc: ScimError) -> Response[bytes]:
    return _error_response(exc)


_HTTP_DETAILS = {
    400: "the request is malformed (check the query parameters)",
    404: "no such endpoint",
    405: "method not allowed on this endpoint",
    406: "this endpoint answers application/scim+json (or application/json) only",
    413: "the request body is too large",
    415: "the body must be application/scim+json or application/json",
}


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    detail = _HTTP_DETAILS.get(status, "the request cannot be processed")
    return _error_response(ScimError(status, detail, "invalidValue" if status == 400 else None,
                                     headers=dict(exc.headers or {})))


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error_response(ScimError(500, "internal error"))


# Authorization


async def _authorize(connection: ASGIConnection[Any, Any, Any, Any],
                     handler: BaseRouteHandler) -> None:
    """Guard (service scopes): a client's own live bearer token with the scope the handler's
    ``opt["scim_scope"]`` names. A user's token is refused whatever its scope."""
    # Litestar's automatic OPTIONS handlers carry no opt: they need a reader's token.
    needed = cast(str, handler.opt.get("scim_scope", READ))
    try:
        await require_service_token(connection, scopes=(READ, WRITE) if needed == READ
                                    else (needed,), realm="scim", service="SCIM")
    except ServiceTokenRefused as refused:
        raise ScimError(refused.status, refused.description, headers=refused.headers) from None


# Request helpers


async def _body(request: Request[Any, Any, Any]) -> Any:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and media not in _ACCEPTED_TYPES:
        raise ScimError(415, _HTTP_DETAILS[415])
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ScimError(413, _HTTP_DETAILS[413])
    try:
        return _decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise ScimError(400, "the body is not valid JSON", "invalidSyntax") from None


def _versions(header: str | None) -> set[int] | None:
    return versions_of(header)


async def _expected_version(
    request: Request[Any, Any, Any], current: Callable[[], Any]
) -> int | None:
    """The ``expected_version`` an ``If-Match`` asks for (None without one)."""
    return await writes.expected_version(request.headers.get("if-match"), current)


def _split(value: str | None) -> list[str]:
    return split_names(value)


def _project(resource: dict[str, Any], schema: ResourceSchema, attributes: list[str],
             excluded: list[str]) -> dict[str, Any]:
    """``attributes``/``excludedAttributes`` and ``returned`` (:mod:`domain.scim.projection`)."""
    return project(resource, schema, attributes, excluded)


def _wants_members(attributes: str | None, excluded: str | None) -> bool:
    """Whether a group answer shows ``members``: if not, the store does not read them (a
    group of 100,000 members with ``excludedAttributes=members`` costs one row)."""
    def names(value: str | None) -> set[str]:
        return {name.removeprefix(GROUP_SCHEMA.lower() + ":").split(".", 1)[0]
                for name in _split(value)}
    if "members" in names(excluded):
        return False
    wanted = names(attributes)
    return not wanted or "members" in wanted


def _password_policy(services: Services) -> PasswordPolicy:
    return PasswordPolicy(min_length=services.settings.password_min_length)


def write_ports(services: Services) -> writes.WritePorts:
    """The ports of a SCIM write (single or Bulk)."""
    verification = (verification_ports(services)
                    if services.settings.email_verification_on_provision else None)
    return writes.WritePorts(services.store, services.clock, services.password_hasher,
                             services.events, services.logout, _password_policy(services),
                             verification)


def _base_url(services: Services) -> str:
    return services.settings.external_base_url + "/scim/v2"


def _user_response(services: Services, user: User, status: int = 200,
                   attributes: str | None = None, excluded: str | None = None,
                   location: bool = False) -> Response[bytes]:
    base = _base_url(services)
    headers = {"ETag": etag(user.version)}
    if location:
        headers["Location"] = f"{base}/Users/{user.id}"
    body = _project(user_to_json(user, base), USER, _split(attributes), _split(excluded))
    return scim_response(body, status, headers)


def _group_response(services: Services, group: Group, status: int = 200,
                    attributes: str | None = None, excluded: str | None = None,
                    location: bool = False) -> Response[bytes]:
    base = _base_url(services)
    headers = {"ETag": etag(group.version)}
    if location:
        headers["Location"] = f"{base}/Groups/{group.id}"
    body = _project(group_to_json(group, base), GROUP, _split(attributes), _split(excluded))
    return scim_response(body, status, headers)


def _list_response(page: Page[Any], resources: list[dict[str, Any]]) -> Response[bytes]:
    return scim_response({
        "schemas": [LIST_RESPONSE],
        "totalResults": page.total,
        "itemsPerPage": len(resources),
        "startIndex": page.start_index,
        "Resources": resources,
    })


def _not_modified(request: Request[Any, Any, Any], version: int) -> Response[bytes] | None:
    header = request.headers.get("if-none-match")
    if header is None:
        return None
    versions = _versions(header)
    if versions is None or version in versions:
        return Response(b"", status_code=304, headers={"ETag": etag(version), **NO_STORE})
    return None


_Filter = Annotated[str | None, QueryParameter(name="filter",
                                                description="RFC 7644 filter expression")]
_Start = Annotated[int | None, QueryParameter(name="startIndex",
                                              description="1-based first result")]
_Count = Annotated[int | None, QueryParameter(name="count", description="page size, at most 200")]
_Attributes = Annotated[str | None, QueryParameter(name="attributes")]
_Excluded = Annotated[str | None, QueryParameter(name="excludedAttributes")]
_SortBy = Annotated[str | None, QueryParameter(name="sortBy",
                                               description="attribute to sort by")]
_SortOrder = Annotated[str | None, QueryParameter(name="sortOrder",
                                                  description="ascending or descending")]


# Lists and searches (GET with query parameters, POST .search with the same in a body)


async def _list_users(services: Services, search: SearchRequest) -> Response[bytes]:
    page = await identities.list_users(services.store, search.filter, search.start_index,
                                       search.count, sort_by=search.sort_by,
                                       sort_order=search.sort_order)
    base = _base_url(services)
    wanted, unwanted = list(search.attributes), list(search.excluded_attributes)
    return _list_response(page, [_project(user_to_json(u, base), USER, wanted, unwanted)
                                 for u in page.items])


async def _list_groups(services: Services, search: SearchRequest) -> Response[bytes]:
    members = _wants_members(",".join(search.attributes) or None,
                             ",".join(search.excluded_attributes) or None)
    page = await identities.list_groups(services.store, search.filter, search.start_index,
                                        search.count, sort_by=search.sort_by,
                                        sort_order=search.sort_order, members=members)
    base = _base_url(services)
    wanted, unwanted = list(search.attributes), list(search.excluded_attributes)
    return _list_response(page, [_project(group_to_json(g, base), GROUP, wanted, unwanted)
                                 for g in page.items])


async def _search_root(services: Services, search: SearchRequest) -> Response[bytes]:
    page = await search_all(services.store, search.filter, search.start_index, search.count,
                            sort_by=search.sort_by, sort_order=search.sort_order)
    base = _base_url(services)
    wanted, unwanted = list(search.attributes), list(search.excluded_attributes)
    resources = [
        _project(user_to_json(item, base), USER, wanted, unwanted) if isinstance(item, User)
        else _project(group_to_json(item, base), GROUP, wanted, unwanted)
        for item in page.items
    ]
    return _list_response(Page(items=page.items, total=page.total,
                               start_index=page.start_index), resources)


class UsersController(Controller):
    """``/scim/v2/Users``."""

    path = "/Users"
    tags = ["scim"]
    guards = [_authorize]

    @post("/", operation_id="scimCreateUser", opt={"scim_scope": WRITE}, status_code=201)
    async def create(self, request: Request[Any, Any, Any], services: ServicesDependency,
                     attributes: _Attributes = None, excluded: _Excluded = None
                     ) -> Response[bytes]:
        user = await writes.create_user(write_ports(services), await _body(request))
        return _user_response(services, user, 201, attributes, excluded, location=True)

    @get("/", operation_id="scimListUsers", opt={"scim_scope": READ})
    async def index(self, services: ServicesDependency, filter_text: _Filter = None,
                   start_index: _Start = None, count: _Count = None,
                   attributes: _Attributes = None, excluded: _Excluded = None,
                   sort_by: _SortBy = None, sort_order: _SortOrder = None,
                   ) -> Response[bytes]:
        return await _list_users(services, SearchRequest(
            filter=filter_text, start_index=start_index, count=count, sort_by=sort_by,
            sort_order=sort_order, attributes=tuple(_split(attributes)),
            excluded_attributes=tuple(_split(excluded))))

    @post("/.search", operation_id="scimSearchUsers", opt={"scim_scope": READ},
          status_code=200)
    async def search(self, request: Request[Any, Any, Any], services: ServicesDependency
                     ) -> Response[bytes]:
        """RFC 7644 3.4.3: the GET list's parameters in a body (kept out of URLs and logs)."""
        return await _list_users(services, read_search_request(await _body(request)))

    @get("/{user_id:str}", operation_id="scimGetUser", opt={"scim_scope": READ})
    async def read(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDependency,
        user_id: FromPath[str],
        attributes: _Attributes = None,
        excluded: _Excluded = None,
    ) -> Response[bytes]:
        user = await identities.get_user(services.store, user_id)
        return _not_modified(request, user.version) or _user_response(
            services, user, 200, attributes, excluded)

    @put("/{user_id:str}", operation_id="scimReplaceUser", opt={"scim_scope": WRITE})
    async def replace(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDependency,
        user_id: FromPath[str],
        attributes: _Attributes = None,
        excluded: _Excluded = None,
    ) -> Response[bytes]:
        body = await _body(request)
        expected = await _expected_version(
            request, lambda: identities.get_user(services.store, user_id))
        user = await writes.replace_user(write_ports(services), user_id, body, expected)
        return _user_response(services, user, 200, attributes, excluded)

    @patch("/{user_id:str}", operation_id="scimPatchUser", opt={"scim_scope": WRITE})
    async def patch(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDependency,
        user_id: FromPath[str],
        attributes: _Attributes = None,
        excluded: _Excluded = None,
    ) -> Response[bytes]:
        body = await _body(request)
        expected = await _expected_version(
            request, lambda: identities.get_user(services.store, user_id))
        user = await writes.patch_user(write_ports(services), user_id, body, expected)
        return _user_response(services, user, 200, attributes, excluded)

    @delete("/{user_id:str}", operation_id="scimDeleteUser", opt={"scim_scope": WRITE},
            status_code=204)
    async def remove(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDependency,
        user_id: FromPath[str],
    ) -> None:
        expected = await _expected_version(
            request, lambda: identities.get_user(services.store, user_id))
        await writes.delete_user(write_ports(services), user_id, expected)


class GroupsController(Controller):
    """``/scim/v2/Groups``."""

    path = "/Groups"
    tags = ["scim"]
    guards = [_authorize]

    @post("/", operation_id="scimCreateGroup", opt={"scim_scope": WRITE}, status_code=201)
    async def create(self, request: Request[Any, Any, Any], services: ServicesDependency,
                     attributes: _Attributes = None, excluded: _Excluded = None
                     ) -> Response[bytes]:
        group = await writes.create_group(write_ports(services), await _body(request))
        return _group_response(services, group, 201, attributes, excluded, location=True)

    @get("/", operation_id="scimListGroups", opt={"scim_scope": READ})
    async def index(self, services: ServicesDependency, filter_text: _Filter = None,
                   start_index: _Start = None, count: _Count = None,
                   attributes: _Attributes = None, excluded: _Excluded = None,
                   sort_by: _SortBy = None, sort_order: _SortOrder = None,
                   ) -> Response[bytes]:
        return await _list_groups(services, SearchRequest(
            filter=filter_text, start_index=start_index, count=count, sort_by=sort_by,
            sort_order=sort_order, attributes=tuple(_split(attributes)),
            excluded_attributes=tuple(_split(excluded))))

    @post("/.search", operation_id="scimSearchGroups", opt={"scim_scope": READ},
          status_code=200)
    async def search(self, request: Request[Any, Any, Any], services: ServicesDependency
                     ) -> Response[bytes]:
        """RFC 7644 3.4.3: the GET list's parameters in a body."""
        return await _list_groups(services, read_search_request(await _body(request)))

    @get("/{group_id:str}", operation_id="scimGetGroup", opt={"scim_scope": READ})
    async def read(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDependency,
        group_id: FromPath[str],
        attributes: _Attributes = None,
        excluded: _Excluded = None,
    ) -> Response[bytes]:
        group = await identities.get_group(services.store, group_id,
                                           members=_wants_members(attributes, excluded))
        return _not_modified(request, group.version) or _group_response(
            services, group, 200, attributes, excluded)

    @put("/{group_id:str}", operation_id="scimReplaceGroup", opt={"scim_scope": WRITE})
    async def replace(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDependency,
        group_id: FromPath[str],
        attributes: _Attributes = None,
        excluded: _Excluded = None,
    ) -> Response[bytes]:
        body = await _body(request)
        expected = await _expected_version(
            request, lambda: identities.get_group(services.store, group_id, members=False))
        group = await writes.replace_group(write_ports(services), group_id, body, expected)
        return _group_response(services, group, 200, attributes, excluded)

    @patch("/{group_id:str}", operation_id="scimPatchGroup", opt={"scim_scope": WRITE})
    async def patch(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDependency,
        group_id: FromPath[str],
        attributes: _Attributes = None,
        excluded: _Excluded = None,
    ) -> Response[bytes]:
        body = await _body(request)
        expected = await _expected_version(
            request, lambda: identities.get_group(services.store, group_id, members=False))
        group = await writes.patch_group(write_ports(services), group_id, body, expected,
                                         members=_wants_members(attributes, excluded))
        return _group_response(services, group, 200, attributes, excluded)

    @delete("/{group_id:str}", operation_id="scimDeleteGroup", opt={"scim_scope": WRITE},
            status_code=204)
    async def remove(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDependency,
        group_id: FromPath[str],
    ) -> None:
        expected = await _expected_version(
            request, lambda: identities.get_group(services.store, group_id, members=False))
        await writes.delete_group(write_ports(services), group_id, expected)


# Discovery


def service_provider_config(base_url: str) -> dict[str, Any]:
    """What this service supports, honestly (RFC 7643 section 5)."""
    return {
        "schemas": [SERVICE_PROVIDER_CONFIG],
        "documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
        "patch": {"supported": True},
        "bulk": {"supported": True, "maxOperations": bulk.MAX_OPERATIONS,
                 "maxPayloadSize": bulk.MAX_PAYLOAD_SIZE},
        "filter": {"supported": True, "maxResults": identities.MAX_RESULTS},
        "changePassword": {"supported": True},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "An access token from this service's /oauth/token with scope "
                           "scim:read (reads) or scim:write (reads and writes).",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": True,
        }],
        "meta": {"resourceType": "ServiceProviderConfig",
                 "location": f"{base_url}/ServiceProviderConfig"},
    }


class ScimDiscoveryController(Controller):
    """``/ServiceProviderConfig``, ``/ResourceTypes`` and ``/Schemas`` (public)."""

    path = "/"
    tags = ["scim"]

    @get("/ServiceProviderConfig", operation_id="scimServiceProviderConfig")
    async def config(self, services: ServicesDependency) -> Response[bytes]:
        return scim_response(service_provider_config(_base_url(services)))

    @get("/ResourceTypes", operation_id="scimResourceTypes")
    async def resource_types(self, services: ServicesDependency) -> Response[bytes]:
        base = _base_url(services)
        items = [resource.resource_type_json(base) for resource in RESOURCES]
        return _list_response(Page(items=tuple(items), total=len(items), start_index=1), items)

    @get("/ResourceTypes/{name:str}", operation_id="scimResourceType")
    async def resource_type(
        self, services: ServicesDependency, name: FromPath[str]
    ) -> Response[bytes]:
        for resource in RESOURCES:
            if resource.name == name:
                return scim_response(resource.resource_type_json(_base_url(services)))
        raise ScimError(404, f"no resource type {name}")

    @get("/Schemas", operation_id="scimSchemas")
    async def schemas(self, services: ServicesDependency) -> Response[bytes]:
        base = _base_url(services)
        items = [schema.schema_json(base) for schema in SCHEMAS]
        return _list_response(Page(items=tuple(items), total=len(items), start_index=1), items)

    @get("/Schemas/{schema_id:str}", operation_id="scimSchema")
    async def schema(
        self, services: ServicesDependency, schema_id: FromPath[str]
    ) -> Response[bytes]:
        for schema in SCHEMAS:
            if schema.schema == schema_id:
                return scim_response(schema.schema_json(_base_url(services)))
        raise ScimError(404, f"no schema {schema_id}")


class ScimRootSearchController(Controller):
    """``POST /scim/v2/.search``: users and groups at once (RFC 7644 3.4.3)."""

    path = "/"
    tags = ["scim"]
    guards = [_authorize]

    @post("/.search", operation_id="scimSearch", opt={"scim_scope": READ}, status_code=200)
    async def search(self, request: Request[Any, Any, Any], services: ServicesDependency
                     ) -> Response[bytes]:
        return await _search_root(services, read_search_request(await _body(request)))


async def _acceptable(connection: ASGIConnection[Any, Any, Any, Any],
                      handler: BaseRouteHandler) -> None:
    """Guard: an ``Accept`` header must allow ``application/scim+json`` (or JSON); 406 with
    a SCIM error otherwise (RFC 7644 3.8). No header, or ``*/*``, accepts anything."""
    if not accepts_scim(connection.headers.get("accept")):
        raise ScimError(406, "this endpoint answers application/scim+json (or "
                             "application/json) only; check the Accept header")


def accepts_scim(header: str | None) -> bool:
    """Whether an ``Accept`` header admits a SCIM body (quality 0 excludes a type)."""
    if header is None or not header.strip():
        return True
    for part in header.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and media.lower() in (*_ACCEPTED_TYPES, "*/*", "application/*"):
            return True
    return False


scim_router = Router(
    path="/scim/v2",
    route_handlers=[UsersController, GroupsController, ScimDiscoveryController,
                    ScimRootSearchController],
    guards=[_acceptable],
    exception_handlers={
        ScimError: _scim_error,
        DomainError: _domain_error,
        HTTPException: _http_error,
        Exception: _internal_error,
    },
    request_max_body_size=MAX_BODY_BYTES,
    # Responses without a body of ours (204 after DELETE) get it here.
    response_headers=NO_STORE,
)

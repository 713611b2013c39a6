"""``POST /scim/v2/Bulk`` (RFC 7644 section 3.7) over :mod:`domain.scim.bulk`.

The endpoint takes any SCIM service token (``scim:read`` or ``scim:write``, the guard of
:mod:`entrypoints.http.scim`); each operation then needs ``scim:write``, as its single
request would, and fails alone with 403 without it. Limits (section 3.7.4): a body over
``maxPayloadSize`` or a request over ``maxOperations`` is 413 with a SCIM error whose
``detail`` names the limit; the edge middleware answers a declared or streamed body over
the limit the same way before the application reads it (``entrypoints.middleware``).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.exceptions import HTTPException

from domain.bearer import resolve_bearer
from domain.scim.bulk import (
    BULK_RESPONSE,
    MAX_PAYLOAD_SIZE,
    BulkLimitExceeded,
    OperationFailed,
    Outcome,
    read_bulk_request,
    run_bulk,
)
from domain.scim.resources import etag
from domain.scopes import allows_service
from entrypoints.http.bearer import bearer_from_header
from entrypoints.http.scim import (
    READ,
    WRITE,
    ScimError,
    _authorize,
    _base_url,
    _body,
    _http_error,
    _scim_error,
    error_body,
    scim_error_of,
    scim_response,
    write_ports,
)
from entrypoints.http.services import ServicesDependency

#: RFC 7644 section 3.7.4's wording, so that a client's message names the limit.
PAYLOAD_TOO_LARGE = (f"The size of the bulk operation exceeds the maxPayloadSize "
                     f"({MAX_PAYLOAD_SIZE}).")


def too_large() -> ScimError:
    return ScimError(413, PAYLOAD_TOO_LARGE)


def _entry(outcome: Outcome, base_url: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"method": outcome.method}
    if outcome.bulk_id is not None:
        entry["bulkId"] = outcome.bulk_id
    if outcome.resource is not None and outcome.resource_id is not None:
        entry["location"] = f"{base_url}/{outcome.resource}/{outcome.resource_id}"
    if outcome.version is not None:
        entry["version"] = etag(outcome.version)
    if outcome.error is None:
        entry["status"] = str(outcome.status)
        return entry
    if isinstance(outcome.error, OperationFailed):
        error = ScimError(outcome.error.status, str(outcome.error), outcome.error.scim_type)
    else:
        error = scim_error_of(outcome.error)
    entry["status"] = str(error.status)
    entry["response"] = error_body(error)
    return entry


class BulkController(Controller):
    """``/scim/v2/Bulk``."""

    path = "/Bulk"
    tags = ["scim"]
    guards = [_authorize]

    @post("/", operation_id="scimBulk", opt={"scim_scope": READ}, status_code=200)
    async def bulk(self, request: Request[Any, Any, Any], services: ServicesDependency
                   ) -> Response[bytes]:
        if len(await request.body()) > MAX_PAYLOAD_SIZE:
            raise too_large()
        try:
            bulk_request = read_bulk_request(await _body(request))
        except BulkLimitExceeded as exc:
            raise ScimError(413, str(exc)) from None
        # The guard resolved the token already; it is read again for its scopes, which
        # decide each operation rather than the whole request.
        token = bearer_from_header(request)
        record = None if token is None else await resolve_bearer(
            services.store, token, services.clock.now())
        if record is None:
            raise ScimError(401, "a valid bearer access token is required",
                            headers={"WWW-Authenticate": 'Bearer realm="scim"'})
        outcomes = await run_bulk(write_ports(services), bulk_request,
                                  may_write=allows_service(record, WRITE))
        base = _base_url(services)
        return scim_response({"schemas": [BULK_RESPONSE],
                              "Operations": [_entry(o, base) for o in outcomes]})


def bulk_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Litestar's own 413 (its body size limit) in the words of section 3.7.4."""
    if exc.status_code == 413:
        return _scim_error(request, too_large())
    return _http_error(request, exc)

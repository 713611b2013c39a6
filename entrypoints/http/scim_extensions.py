"""The SCIM endpoints built on :mod:`entrypoints.http.scim`'s helpers, ``/Bulk`` and
``/Me``, under ``/scim/v2`` with the same error handling as the rest of SCIM."""

from __future__ import annotations

from litestar import Router
from litestar.exceptions import HTTPException

from entrypoints.http.scim import NO_STORE, scim_router
from entrypoints.http.scim_bulk import BulkController, bulk_http_error
from entrypoints.http.scim_me import MeController

scim_extensions_router = Router(
    path="/scim/v2",
    route_handlers=[BulkController, MeController],
    exception_handlers={**scim_router.exception_handlers, HTTPException: bulk_http_error},
    request_max_body_size=scim_router.request_max_body_size,
    response_headers=NO_STORE,
)

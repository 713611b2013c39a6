"""Errors that Litestar raises before any SCIM handler runs (no route for the path: 404; a
route without the method: 405) answered, under ``/scim/v2``, as RFC 7644 error resources.

The SCIM router's own exception handlers cover everything raised inside its routes; these
two arise in the application's routing, so the application's ``HTTPException`` handler is
wrapped (:func:`scim_aware`) and hands paths under ``/scim/v2`` to the SCIM error format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException

from entrypoints.http.scim import _http_error

SCIM_PREFIX = "/scim/v2"

HttpErrorHandler = Callable[[Request[Any, Any, Any], HTTPException], Response[Any]]


def under_scim(path: str) -> bool:
    return path == SCIM_PREFIX or path.startswith(SCIM_PREFIX + "/")


def scim_aware(fallback: HttpErrorHandler) -> HttpErrorHandler:
    """``fallback`` for every path but those under ``/scim/v2``, which get a SCIM error
    resource with the same status (and headers, such as ``Allow`` on a 405)."""

    def handle(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        if under_scim(request.url.path):
            return _http_error(request, exc)
        return fallback(request, exc)

    return handle

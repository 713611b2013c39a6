"""The one place where exceptions become responses, for routes without a format of their own.

OAuth and SCIM routers install their own handlers (RFC 6749 and RFC 7644 error bodies);
these are the defaults. No response carries a stack trace or an internal component's name.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE

from domain.errors import (
    Conflict,
    DomainError,
    InvalidReference,
    InvalidValue,
    NotFound,
    PreconditionFailed,
    StoreUnavailable,
)

log = logging.getLogger("auth_service.http")

DOMAIN_STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    Conflict: 409,
    PreconditionFailed: 412,
    InvalidReference: 400,
    InvalidValue: 400,
    StoreUnavailable: 503,
}

UNAVAILABLE_DESCRIPTION = "the service is temporarily unavailable; retry later"


def status_of(exc: DomainError) -> int:
    for kind, status in DOMAIN_STATUS.items():
        if isinstance(exc, kind):
            return status
    return 400


def domain_error_handler(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    status = status_of(exc)
    if isinstance(exc, StoreUnavailable):
        log.warning("store unavailable on %s %s", request.method, request.url.path)
        return Response(
            {"error": "temporarily_unavailable", "error_description": UNAVAILABLE_DESCRIPTION},
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "1", "Cache-Control": "no-store"},
        )
    return Response({"error": type(exc).__name__.lower(), "error_description": str(exc)},
                    status_code=status)


def http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    body: dict[str, Any] = {"status_code": exc.status_code, "detail": exc.detail}
    if exc.extra:
        body["extra"] = exc.extra
    return Response(body, status_code=exc.status_code, headers=exc.headers)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response(
        {"error": "server_error", "error_description": "internal error"},
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )

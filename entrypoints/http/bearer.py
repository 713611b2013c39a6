"""Reading a bearer token from a request (RFC 6750 section 2.1)."""

from __future__ import annotations

from typing import Any

from litestar import Request


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

"""CORS for browser apps, on the token, revocation and userinfo endpoints only.

A single-page app calls these three from its own origin; nothing else of this server is
for scripts on other origins (the sign-in pages are navigated to, ``/admin`` and SCIM are
for back ends, and introspection is for resource servers, which are not browsers: RFC 7662
section 4), so no other path ever answers with CORS headers.

- **Preflight** (``OPTIONS`` with ``Access-Control-Request-Method``) carries no
  credentials, so the client is not known yet: an origin is allowed when *any* client lists
  it in ``allowed_cors_origins`` (as node-oidc-provider's ``clientBasedCORS`` does). The
  static clients' origins are a set computed once; the stored clients' origins are a
  snapshot of the store, read again on a miss at most every
  :data:`STORED_ORIGINS_MISS_SECONDS` (so a client registered on another instance is
  allowed within that time, and a flood of unknown origins costs one scan per that time),
  and at least every :data:`STORED_ORIGINS_MAX_AGE_SECONDS`. Answered by
  :class:`EdgeMiddleware <entrypoints.middleware.EdgeMiddleware>` before the application.
- **The actual response** gets ``Access-Control-Allow-Origin`` only when the client the
  request authenticated (for userinfo: the client the access token was issued to) lists the
  origin, read from the store at that moment, never from the snapshot. Errors before a
  client is known get no CORS headers. No ``Access-Control-Allow-Credentials``: these
  endpoints take credentials in headers and bodies, never cookies.

Requests without an ``Origin`` header (every back-end client) pay nothing beyond one
comparison per request header in the middleware's existing header scan and one dictionary
lookup in the handler; the origin is handed on in the ASGI scope under :data:`ORIGIN_KEY`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from litestar.utils.path import normalize_path

from domain.clients import Client
from domain.errors import StoreUnavailable
from entrypoints.http.services import Services
from entrypoints.metrics import Metrics

#: Where the middleware leaves the request's ``Origin`` for the three handlers (only set
#: when there is one, on one of their paths).
ORIGIN_KEY = "auth_service.cors_origin"
#: How long a browser may cache a preflight answer (Chromium caps it at 7200).
MAX_AGE_SECONDS = 3600
STORED_ORIGINS_MISS_SECONDS = 5
STORED_ORIGINS_MAX_AGE_SECONDS = 60
_PAGE = 500

_POST = b"POST"
#: The CORS paths and the methods each allows.
CORS_METHODS: dict[str, bytes] = {
    "/oauth/token": _POST,
    "/oauth/revoke": _POST,
    "/oauth/userinfo": b"GET, POST",
}
#: Request headers a browser app may send: Basic credentials or a bearer token, and a body;
#: a DPoP proof (RFC 9449).
ALLOWED_HEADERS = b"Authorization, Content-Type, DPoP"
#: Response headers a script may read besides the safelisted ones (RFC 6750 challenges,
#: rate-limit hints, the DPoP nonce to use next).
EXPOSED_HEADERS = b"WWW-Authenticate, Retry-After, DPoP-Nonce"
_VARY = (b"vary", b"Origin")

log = logging.getLogger("auth_service.http")


def request_origin(scope: Any) -> str | None:
    """The ``Origin`` of a request to a CORS endpoint, as the middleware left it."""
    origin: str | None = scope.get(ORIGIN_KEY)
    return origin


def cors_methods(path: str) -> bytes | None:
    """The methods of the CORS endpoint at ``path``, or None when ``path`` is not one."""
    methods = CORS_METHODS.get(path)
    if methods is None and "oauth" in path:
        # Litestar routes "/oauth/token/" and "//oauth//token" to the same handler.
        methods = CORS_METHODS.get(normalize_path(path))
    return methods


def response_headers(origin: str, client: Client | None) -> tuple[tuple[bytes, bytes], ...]:
    """The CORS headers of an actual response to a request from ``origin``: the origin is
    allowed when ``client`` (authenticated, or the token's) lists it."""
    if client is None or origin not in client.allowed_cors_origins:
        return (_VARY,)
    return (_VARY, (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-expose-headers", EXPOSED_HEADERS))


def static_origins(clients: Iterable[Client]) -> frozenset[str]:
    return frozenset(origin for client in clients for origin in client.allowed_cors_origins)


class Preflight:
    """Answers CORS preflight requests (module docstring)."""

    def __init__(self, services: Callable[[], Services], metrics: Metrics) -> None:
        self._services = services
        self._metrics = metrics
        self._static: frozenset[str] | None = None
        self._stored: frozenset[str] = frozenset()
        self._stored_at: int | None = None
        self._lock = asyncio.Lock()

    async def answer(self, send: Callable[[Any], Any], origin: bytes, methods: bytes) -> None:
        headers = [_VARY, (b"cache-control", b"no-store")]
        try:
            allowed = await self.origin_allowed(origin.decode("latin-1"))
        except Exception:
            # Outside Litestar's exception handling: refuse (fail closed), never a 500.
            log.exception("CORS preflight check failed")
            allowed = False
        if allowed:
            headers += [
                (b"access-control-allow-origin", origin),
                (b"access-control-allow-methods", methods),
                (b"access-control-allow-headers", ALLOWED_HEADERS),
                (b"access-control-max-age", str(MAX_AGE_SECONDS).encode("ascii")),
            ]
        # Refused: the same 204 without CORS headers; the browser then blocks the request.
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def origin_allowed(self, origin: str) -> bool:
        """Whether any client lists ``origin``."""
        services = self._services()
        if self._static is None:
            self._static = static_origins(services.clients.static)
        if origin in self._static:
            return True
        now = services.clock.now()
        age = None if self._stored_at is None else now - self._stored_at
        stale = age is None or age >= STORED_ORIGINS_MAX_AGE_SECONDS
        if not stale and origin in self._stored:
            return True
        if not stale and age is not None and age < STORED_ORIGINS_MISS_SECONDS:
            return False
        await self._refresh(services, now)
        return origin in self._stored

    async def _refresh(self, services: Services, now: int) -> None:
        async with self._lock:
            if self._stored_at is not None and now - self._stored_at < \
                    STORED_ORIGINS_MISS_SECONDS:
                return  # another preflight read it while this one waited
            origins: set[str] = set()
            cursor: str | None = None
            try:
                while True:
                    batch = await services.clients.store.list_clients(cursor, _PAGE)
                    origins.update(static_origins(batch.records))
                    cursor = batch.cursor
                    if cursor is None:
                        break
            except StoreUnavailable:
                # Keep the last snapshot and wait the miss interval before trying again: an
                # outage must not turn every preflight into a store call. Never a 503 here.
                self._stored_at = now
                self._metrics.store_error()
                log.warning("cannot read the clients' CORS origins: the store is unavailable")
                return
            self._stored = frozenset(origins)
            self._stored_at = now

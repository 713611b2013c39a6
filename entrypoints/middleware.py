"""Pure ASGI middlewares around the whole application, and :func:`instrument` to fit them.

They wrap Litestar's own ASGI handler (outside its router), so that they also see requests
that match no route (404s get a request id, security headers and a metrics line). The hot
path costs a scan of the request headers and a few dictionary lookups; no body is parsed.

:class:`EdgeMiddleware` does, in one layer: request id, metrics timing, security headers,
the body size limit, CORS preflight answers (``entrypoints.http.cors``), then the
per-address rate limits (:class:`RateLimiter`) and Litestar.
With ``TRUSTED_PROXIES``, uvicorn's ``ProxyHeadersMiddleware`` goes around it all, so that
every limit and log sees the client's address rather than the load balancer's. The
per-client token limit is not here: it counts a client only once it has authenticated
(``entrypoints.http.oauth``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

import msgspec
from litestar import Litestar
from litestar.utils.path import normalize_path

from domain.errors import StoreUnavailable
from domain.ratelimit import RateLimit, check_rate, rate_key
from domain.scim.bulk import MAX_PAYLOAD_SIZE
from domain.scim.schema import ERROR
from entrypoints.http.cors import ORIGIN_KEY, Preflight, cors_methods
from entrypoints.http.errors import UNAVAILABLE_DESCRIPTION
from entrypoints.http.services import Services
from entrypoints.logging import REQUEST_ID, accept_request_id
from entrypoints.metrics import UNMATCHED_ROUTE, Metrics
from entrypoints.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 1024 * 1024
TOKEN_PATH = "/oauth/token"
SIGNIN_PATH = "/oauth/authorize"
#: The plain sign-in page: the same password checks, so the same per-address limit.
PLAIN_SIGNIN_PATH = "/signin"
_LIMITED_PATHS = frozenset({TOKEN_PATH, SIGNIN_PATH, PLAIN_SIGNIN_PATH})
BULK_PATH = "/scim/v2/Bulk"
SCIM_MEDIA_TYPE = b"application/scim+json"

access_log = logging.getLogger("auth_service.access")
log = logging.getLogger("auth_service.http")
_json = msgspec.json.Encoder()


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: tuple[tuple[bytes, bytes], ...] = (),
    media_type: bytes = b"application/json",
) -> None:
    """Answer with a JSON body; used for refusals made before the application runs."""
    payload = _json.encode(body)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", media_type),
            (b"content-length", str(len(payload)).encode()),
            (b"cache-control", b"no-store"),
            *headers,
        ],
    })
    await send({"type": "http.response.body", "body": payload})


class EdgeMiddleware:
    """Request id, metrics timing, security headers and the body limit, in one layer.

    One wrapper instead of four keeps the per-request cost to one scan of the request
    headers, one ``send`` wrapper and two clock reads:

    - request id: a sane ``x-request-id`` is kept (else one is generated), echoed in the
      response, and set in :data:`entrypoints.logging.REQUEST_ID` for every log line;
    - metrics: each request is counted and timed by method, route template and status;
    - headers: :func:`secure_headers` on every response (HSTS when the issuer is https);
    - body limit: :func:`check_body` (413 over ``body_limit`` bytes);
    - CORS: a request with an ``Origin`` to a CORS endpoint has a preflight answered here
      (``preflight``), or its origin handed to the handler in the scope
      (:data:`~entrypoints.http.cors.ORIGIN_KEY`). Without an ``Origin``, nothing happens.

    Then the rate limiter, when configured, and the application.
    """

    def __init__(
        self, app: ASGIApp, metrics: Metrics, limiter: RateLimiter | None = None,
        body_limit: int = MAX_BODY_BYTES, hsts: bool = False,
        preflight: Preflight | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.limiter = limiter
        self.body_limit = body_limit
        self.hsts = hsts
        self.preflight = preflight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        raw_id: bytes | None = None
        length: bytes | None = None
        origin: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                raw_id = value
            elif name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"origin":
                origin = value
        request_id = accept_request_id(raw_id)
        id_header = (b"x-request-id", request_id.encode("ascii"))
        status = 500

        async def send_wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = secure_headers(list(message.get("headers", ())), self.hsts)
                headers.append(id_header)
                message["headers"] = headers
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            checked = await check_body(receive, length, chunked, self.body_limit)
            if checked is None:
                if scope["path"].rstrip("/") == BULK_PATH:
                    await send_json(send_wrapped, 413, _too_large_bulk(),
                                    ((b"connection", b"close"),), SCIM_MEDIA_TYPE)
                    return
                await send_json(send_wrapped, 413, _too_large_body(self.body_limit),
                                ((b"connection", b"close"),))
                return
            receive = checked
            if origin is not None and self.preflight is not None:
                methods = cors_methods(scope["path"])
                if methods is not None:
                    if scope["method"] == "OPTIONS" and _asks_method(scope):
                        await self.preflight.answer(send_wrapped, origin, methods)
                        return
                    scope[ORIGIN_KEY] = origin.decode("latin-1")
            if self.limiter is not None and scope["method"] == "POST":
                allowed, receive = await self.limiter.check(scope, receive, send_wrapped)
                if not allowed:
                    return
            await self.app(scope, receive, send_wrapped)
        finally:
            # Litestar's router records the matched template in the scope; raw paths would
            # put ids and tokens into labels.
            route = scope.get("path_template") or UNMATCHED_ROUTE
            elapsed = time.perf_counter() - start
            self.metrics.observe_request(scope["method"], route, status, elapsed)
            if access_log.isEnabledFor(logging.DEBUG):
                access_log.debug(
                    "request",
                    extra={"method": scope["method"], "route": route, "status": status,
                           "duration_ms": round(elapsed * 1000, 3)},
                )
            REQUEST_ID.reset(token)


def _asks_method(scope: Scope) -> bool:
    """Whether the request is a CORS preflight (Fetch standard: it names the method)."""
    return any(name == b"access-control-request-method" for name, _ in scope["headers"])


_NOSNIFF = (b"x-content-type-options", b"nosniff")
_NO_REFERRER = (b"referrer-policy", b"no-referrer")
_FRAME_ANCESTORS = b"frame-ancestors 'none'"
#: For every response that brings no policy of its own: nothing may load, run, submit or
#: frame. Pages that need more (the sign-in pages: their inline styles, their form) send
#: their own policy (``entrypoints.http.html``), which then only gains ``frame-ancestors``.
DEFAULT_CSP = (b"content-security-policy",
               b"default-src 'none'; base-uri 'none'; form-action 'none'; " + _FRAME_ANCESTORS)
#: One year, the usual preload minimum; no ``includeSubDomains``: the issuer's host says
#: nothing about its siblings.
HSTS = (b"strict-transport-security", b"max-age=31536000")


def secure_headers(
    headers: list[tuple[bytes, bytes]], hsts: bool = False
) -> list[tuple[bytes, bytes]]:
    """``headers`` with the security headers added where the application set none.

    ``hsts`` (the issuer is https) adds ``Strict-Transport-Security``.
    """
    html = nosniff = referrer = frame_options = transport = False
    csp_at = -1
    for index, (name, value) in enumerate(headers):
        lower = name.lower()
        if lower == b"content-type":
            html = value[:9].lower() == b"text/html"
        elif lower == b"x-content-type-options":
            nosniff = True
        elif lower == b"referrer-policy":
            referrer = True
        elif lower == b"content-security-policy":
            csp_at = index
        elif lower == b"x-frame-options":
            frame_options = True
        elif lower == b"strict-transport-security":
            transport = True
    if not nosniff:
        headers.append(_NOSNIFF)
    if not referrer:
        headers.append(_NO_REFERRER)
    if csp_at < 0:
        headers.append(DEFAULT_CSP)
    elif html and b"frame-ancestors" not in headers[csp_at][1]:
        name, value = headers[csp_at]
        headers[csp_at] = (name, value + b"; " + _FRAME_ANCESTORS)
    if html and not frame_options:
        headers.append((b"x-frame-options", b"DENY"))
    if hsts and not transport:
        headers.append(HSTS)
    return headers


def _too_large_body(limit: int) -> dict[str, Any]:
    return {
        "error": "invalid_request",
        "error_description": f"the request body is larger than the limit of {limit} bytes",
    }


def _too_large_bulk() -> dict[str, Any]:
    # RFC 7644 section 3.7.4: a SCIM error whose detail names the limit the client exceeded.
    return {"schemas": [ERROR], "status": "413",
            "detail": f"The size of the bulk operation exceeds the maxPayloadSize "
                      f"({MAX_PAYLOAD_SIZE})."}


async def check_body(
    receive: Receive, length: bytes | None, chunked: bool, limit: int
) -> Receive | None:
    """The ``receive`` to hand on, or None when the body is over ``limit`` bytes (413).

    A declared ``Content-Length`` is checked before anything is read (the server holds the
    body to that length). A chunked body is read up to the limit first and then replayed,
    so the application never sees part of an oversized body.
    """
    if chunked:
        body = await read_body(receive, limit)
        return None if body is None else replay(body, receive)
    if length is not None and (not length.strip().isdigit() or int(length) > limit):
        return None
    return receive


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; what was read is handed on and the app sees it end
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields ``body`` once, then defers to the server's (disconnects)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


_UNAVAILABLE = {"error": "temporarily_unavailable", "error_description": UNAVAILABLE_DESCRIPTION}


class RateLimitRules(msgspec.Struct, frozen=True):
    """The configured per-address limits; a rule with ``limit`` 0 is off and costs nothing."""

    token_per_ip: RateLimit
    signin_per_ip: RateLimit

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimitRules:
        return cls(
            token_per_ip=RateLimit(settings.rate_limit_token_ip_per_minute),
            signin_per_ip=RateLimit(settings.rate_limit_signin_per_minute),
        )


class RateLimiter:
    """429 with ``Retry-After`` over the limits on ``POST /oauth/token`` and the sign-in POST.

    Counters live in the store (``hit``), so every instance sharing it shares the limits.
    Each enabled rule costs one store call on its route; other routes cost a comparison.
    A store failure answers 503: the limiter never lets traffic through unchecked.
    """

    def __init__(
        self, rules: RateLimitRules, services: Callable[[], Services], metrics: Metrics,
    ) -> None:
        self.rules = rules
        self.services = services
        self.metrics = metrics
        self._token_on = rules.token_per_ip.enabled
        self._signin_on = rules.signin_per_ip.enabled

    @property
    def enabled(self) -> bool:
        return self._token_on or self._signin_on

    async def check(self, scope: Scope, receive: Receive, send: Send) -> tuple[bool, Receive]:
        """Count a POST against its rules. ``(False, _)`` when it was refused (answer sent);
        else ``(True, receive)``: the ``receive`` to hand on."""
        path = scope["path"]
        if path not in _LIMITED_PATHS:
            # Litestar routes "/oauth/token/" and "//oauth//token" to the same handler.
            if "oauth" not in path and "signin" not in path:
                return True, receive
            path = normalize_path(path)
        if path == TOKEN_PATH and self._token_on:
            checks = [("token_ip", self.rules.token_per_ip, _client_ip(scope))]
        elif path in (SIGNIN_PATH, PLAIN_SIGNIN_PATH) and self._signin_on:
            checks = [("signin_ip", self.rules.signin_per_ip, _client_ip(scope))]
        else:
            return True, receive
        services = self.services()
        now = services.clock.now()
        for rule_name, rule, subject in checks:
            try:
                verdict = await check_rate(services.store, rate_key(rule_name, subject), rule, now)
            except Exception as exc:
                # Outside Litestar's exception handling: answer here, and fail closed.
                if isinstance(exc, StoreUnavailable):
                    self.metrics.store_error()
                else:
                    log.exception("rate limit check failed")
                await send_json(send, 503, _UNAVAILABLE, ((b"retry-after", b"1"),))
                return False, receive
            if not verdict.allowed:
                self.metrics.rate_limited.labels(rule_name).inc()
                await send_json(
                    send, 429,
                    {"error": "too_many_requests",
                     "error_description": "rate limit exceeded; retry after "
                     f"{verdict.retry_after} seconds"},
                    ((b"retry-after", str(verdict.retry_after).encode()),),
                )
                return False, receive
        return True, receive


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def instrument(app: Litestar, settings: Settings, metrics: Metrics) -> None:
    """Wrap ``app``'s ASGI handler in the middlewares and count store failures.

    Called once by ``create_app``; the services are read from ``app.state`` per request
    because the lifespan builds them after this runs.
    """
    limiter = RateLimiter(
        RateLimitRules.from_settings(settings), lambda: cast(Services, app.state.services),
        metrics,
    )
    handler: ASGIApp = EdgeMiddleware(
        cast(ASGIApp, app.asgi_handler), metrics, limiter if limiter.enabled else None,
        hsts=settings.external_base_url.startswith("https://"),
        preflight=Preflight(lambda: cast(Services, app.state.services), metrics),
    )
    if settings.trusted_proxies:
        # uvicorn's own middleware (what ``--proxy-headers`` installs), applied here so that
        # any ASGI server, and the tests, resolve addresses the same way. It takes the
        # right-most X-Forwarded-For entry that is not a trusted proxy.
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        handler = cast(ASGIApp, ProxyHeadersMiddleware(
            cast(Any, handler), trusted_hosts=list(settings.trusted_proxies)))
    app.asgi_handler = cast(Any, handler)
    app.state.metrics = metrics

    async def count_store_error(exc: Exception, scope: Any) -> None:
        if isinstance(exc, StoreUnavailable):
            metrics.store_error()

    app.after_exception.append(count_store_error)

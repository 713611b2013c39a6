"""Pure ASGI middlewares around the whole application, and :func:`instrument` to fit them.

They wrap Litestar's own ASGI handler (outside its router), so that they also see requests
that match no route (404s get a request id, security headers and a metrics line). Each
one is a couple of dictionary lookups on the hot path; none parses a body unless it must.

Order, outermost first: request id, metrics timing, security headers, body size limit,
rate limits, then Litestar.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast
from urllib.parse import parse_qs, unquote_plus

import msgspec
from litestar import Litestar
from litestar.utils.path import normalize_path

from domain.errors import StoreUnavailable
from domain.ratelimit import RateLimit, check_rate, rate_key
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

access_log = logging.getLogger("auth_service.access")
_json = msgspec.json.Encoder()


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Answer with a JSON body; used for refusals made before the application runs."""
    payload = _json.encode(body)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"cache-control", b"no-store"),
            *headers,
        ],
    })
    await send({"type": "http.response.body", "body": payload})


class RequestIdMiddleware:
    """Keeps a sane ``x-request-id`` (or makes one), echoes it, and exposes it to logging."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                raw = value
                break
        request_id = accept_request_id(raw)
        header = (b"x-request-id", request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


class MetricsMiddleware:
    """Counts each request and its latency by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
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


_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
_FRAME_ANCESTORS = b"frame-ancestors 'none'"


class SecurityHeadersMiddleware:
    """``nosniff`` and ``no-referrer`` everywhere; on HTML, no framing (clickjacking)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = secure_headers(list(message.get("headers", ())))
            await send(message)

        await self.app(scope, receive, send_secured)


def secure_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with the security headers added where the application set none."""
    present: set[bytes] = set()
    html = False
    csp_at = -1
    for index, (name, value) in enumerate(headers):
        lower = name.lower()
        present.add(lower)
        if lower == b"content-type":
            html = value.lower().startswith(b"text/html")
        elif lower == b"content-security-policy":
            csp_at = index
    headers.extend(header for header in _ALWAYS if header[0] not in present)
    if html:
        if csp_at < 0:
            headers.append((b"content-security-policy", _FRAME_ANCESTORS))
        elif b"frame-ancestors" not in headers[csp_at][1]:
            name, value = headers[csp_at]
            headers[csp_at] = (name, value + b"; " + _FRAME_ANCESTORS)
        if b"x-frame-options" not in present:
            headers.append((b"x-frame-options", b"DENY"))
    return headers


def _too_large_body(limit: int) -> dict[str, Any]:
    return {
        "error": "invalid_request",
        "error_description": f"the request body is larger than the limit of {limit} bytes",
    }


class BodyLimitMiddleware:
    """Refuses request bodies over ``limit`` bytes with 413.

    A declared ``Content-Length`` is checked before anything is read (the server holds the
    body to that length). A chunked body is read up to the limit first and then handed on,
    so the application never sees part of an oversized body.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if chunked:
            body = await read_body(receive, self.limit)
            if body is None:
                await self._refuse(send)
                return
            receive = replay(body, receive)
        elif length is not None and (not length.strip().isdigit() or int(length) > self.limit):
            await self._refuse(send)
            return
        await self.app(scope, receive, send)

    async def _refuse(self, send: Send) -> None:
        await send_json(send, 413, _too_large_body(self.limit), ((b"connection", b"close"),))


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
    """The configured limits; a rule with ``limit`` 0 is off and costs nothing."""

    token_per_client: RateLimit
    token_per_ip: RateLimit
    signin_per_ip: RateLimit

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimitRules:
        return cls(
            token_per_client=RateLimit(settings.rate_limit_token_per_minute),
            token_per_ip=RateLimit(settings.rate_limit_token_ip_per_minute),
            signin_per_ip=RateLimit(settings.rate_limit_signin_per_minute),
        )


class RateLimitMiddleware:
    """429 with ``Retry-After`` over the limits on ``POST /oauth/token`` and the sign-in POST.

    Counters live in the store (``hit``), so every instance sharing it shares the limits.
    Each enabled rule costs one store call on its route; other routes cost a comparison.
    A store failure answers 503: the limiter never lets traffic through unchecked.
    """

    def __init__(
        self, app: ASGIApp, rules: RateLimitRules, services: Callable[[], Services],
        metrics: Metrics,
    ) -> None:
        self.app = app
        self.rules = rules
        self.services = services
        self.metrics = metrics
        self._token_on = rules.token_per_client.enabled or rules.token_per_ip.enabled
        self._signin_on = rules.signin_per_ip.enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not (
            self._token_on or self._signin_on
        ):
            await self.app(scope, receive, send)
            return
        path = normalize_path(scope["path"])
        if path == TOKEN_PATH and self._token_on:
            checks, receive = await self._token_checks(scope, receive)
        elif path == SIGNIN_PATH and self._signin_on:
            checks = [("signin_ip", self.rules.signin_per_ip, _client_ip(scope))]
        else:
            await self.app(scope, receive, send)
            return
        services = self.services()
        now = services.clock.now()
        for rule_name, rule, subject in checks:
            try:
                verdict = await check_rate(services.store, rate_key(rule_name, subject), rule, now)
            except StoreUnavailable:
                self.metrics.store_error()
                await send_json(send, 503, _UNAVAILABLE, ((b"retry-after", b"1"),))
                return
            if not verdict.allowed:
                self.metrics.rate_limited.labels(rule_name).inc()
                await send_json(
                    send, 429,
                    {"error": "too_many_requests",
                     "error_description": "rate limit exceeded; retry after "
                     f"{verdict.retry_after} seconds"},
                    ((b"retry-after", str(verdict.retry_after).encode()),),
                )
                return
        await self.app(scope, receive, send)

    async def _token_checks(
        self, scope: Scope, receive: Receive
    ) -> tuple[list[tuple[str, RateLimit, str]], Receive]:
        checks: list[tuple[str, RateLimit, str]] = []
        if self.rules.token_per_ip.enabled:
            checks.append(("token_ip", self.rules.token_per_ip, _client_ip(scope)))
        if self.rules.token_per_client.enabled:
            client_id, receive = await _client_id(scope, receive)
            if client_id:
                checks.append(("token_client", self.rules.token_per_client, client_id))
        return checks, receive


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _client_id(scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
    """The client id a token request claims: HTTP Basic first, else the form's ``client_id``.

    The body is read only when there is no Basic header, and replayed for the application.
    """
    form = False
    for name, value in scope["headers"]:
        if name == b"authorization" and value[:6].lower() == b"basic ":
            return _basic_client_id(value[6:]), receive
        if name == b"content-type":
            form = value.lower().startswith(b"application/x-www-form-urlencoded")
    if not form:
        return None, receive
    body = await read_body(receive, MAX_BODY_BYTES)
    if body is None:
        return None, replay(b"", receive)
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=50)
    values = fields.get("client_id")
    return (values[0] if values else None), replay(body, receive)


def _basic_client_id(encoded: bytes) -> str | None:
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, _ = decoded.partition(":")
    return unquote_plus(client_id) if sep and client_id else None


def instrument(app: Litestar, settings: Settings, metrics: Metrics) -> None:
    """Wrap ``app``'s ASGI handler in the middlewares and count store failures.

    Called once by ``create_app``; the services are read from ``app.state`` per request
    because the lifespan builds them after this runs.
    """
    handler = cast(ASGIApp, app.asgi_handler)
    handler = RateLimitMiddleware(
        handler, RateLimitRules.from_settings(settings),
        lambda: cast(Services, app.state.services), metrics,
    )
    handler = BodyLimitMiddleware(handler)
    handler = SecurityHeadersMiddleware(handler)
    handler = MetricsMiddleware(handler, metrics)
    handler = RequestIdMiddleware(handler)
    app.asgi_handler = cast(Any, handler)
    app.state.metrics = metrics

    async def count_store_error(exc: Exception, scope: Any) -> None:
        if isinstance(exc, StoreUnavailable):
            metrics.store_error()

    app.after_exception.append(count_store_error)

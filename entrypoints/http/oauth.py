"""POST /oauth/token, /oauth/introspect and /oauth/revoke.

Thin handlers: parse the body, authenticate the client, call one use case from
``domain.oauth``, encode. These are hot paths, so the form is parsed straight from the raw
body, responses are encoded with a prebuilt msgspec encoder and sent as
:class:`JsonAnswer` (two ASGI messages, no ``Response`` object per request); Litestar's own
body parsing and signature models are bypassed. The OpenAPI document still describes each
answer (``responses=``).

Error bodies follow RFC 6749 section 5.2. ``invalid_client`` is always 401 with
``WWW-Authenticate: Basic realm="auth-service"``: section 5.2 requires it when Basic was
tried, and HTTP (RFC 9110 section 15.5.2) requires the header on every 401, where it also
tells the client which scheme to use. Every other OAuth error is 400. A store failure is
not caught here: the application's handler answers 503 ``temporarily_unavailable``.

Throttling (429 ``too_many_requests`` with ``Retry-After``) happens once the request is
parsed, so it counts what was proved, not what was claimed: failed client authentications
per (client id, address) at all three endpoints, and ``RATE_LIMIT_TOKEN_PER_MINUTE`` per
client at the token endpoint only after the client authenticated (anyone can *name* a
client, so counting names would let a stranger use up a client's allowance).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable
from itertools import chain
from typing import Any, cast
from urllib.parse import parse_qsl, unquote_plus

import msgspec
from litestar import Request, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import Receive, Scope, Send

from domain.client_assertion import ClientAssertionRefused, authenticate_with_assertion
from domain.clients import (
    AUTH_BASIC,
    AUTH_NONE,
    AUTH_POST,
    GRANT_AUTHORIZATION_CODE,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_DEVICE_CODE,
    GRANT_REFRESH_TOKEN,
    GRANT_TOKEN_EXCHANGE,
    Client,
)
from domain.device_grant import redeem_device_code
from domain.dpop import INVALID_DPOP_PROOF, current_nonce, token_request_binding
from domain.oauth import (
    Introspection,
    OAuthError,
    TokenResponse,
    exchange_authorization_code,
    introspect,
    issue_client_credentials,
    refresh,
    revoke,
)
from domain.ratelimit import RateLimit, check_rate, rate_key
from domain.resources import (
    INTROSPECTION_JWT_TYPE,
    ResourceRefused,
    parse_resources,
    signed_introspection_claims,
)
from domain.text import UNSTORABLE
from domain.token_exchange import ExchangeRequest, ExchangeResponse, exchange_token
from entrypoints.http.cors import ORIGIN_KEY, response_headers
from entrypoints.http.services import Services, services_of

FORM = "application/x-www-form-urlencoded"
#: The media type of a signed introspection response (RFC 9701 section 4).
INTROSPECTION_JWT = "application/token-introspection+jwt"
JSON = "application/json"
#: More than any OAuth request needs; bounds the work an abusive body can cause.
MAX_FORM_FIELDS = 20
WWW_AUTHENTICATE = 'Basic realm="auth-service"'
_NO_STORE_RAW = ((b"cache-control", b"no-store"), (b"pragma", b"no-cache"))
_UNAUTHORIZED_RAW = (*_NO_STORE_RAW, (b"www-authenticate", WWW_AUTHENTICATE.encode("ascii")))
TOKEN_PATH = "/oauth/token"
#: The window of ``RATE_LIMIT_CLIENT_AUTH_FAILURES``, as for failed sign-ins.
CLIENT_AUTH_FAILURE_WINDOW = 900

_encoder = msgspec.json.Encoder()
_unstorable = UNSTORABLE.search
_json_body = msgspec.json.Decoder(dict[str, Any])


class OAuthErrorBody(msgspec.Struct, frozen=True):
    """An error of the token, introspection or revocation endpoint (RFC 6749 section 5.2)."""

    error: str
    error_description: str


_ERROR_SPEC = ResponseSpec(OAuthErrorBody, description="an OAuth error (RFC 6749 section 5.2)",
                           generate_examples=False)


class TooManyRequests(OAuthError):
    """Over a rate limit: answered 429 with ``Retry-After: retry_after``."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too_many_requests",
                         f"rate limit exceeded; retry after {retry_after} seconds")
        self.retry_after = retry_after


class JsonAnswer:
    """A JSON answer sent as it is: the two ASGI messages Litestar's ``Response`` would send,
    without building one per request (a fifth of an introspection's cost,
    bench/inprocess.py). A handler annotated to return it is passed through by Litestar."""

    __slots__ = ("_body", "_headers", "_media_type", "_status")

    def __init__(
        self, status: int, body: bytes, headers: tuple[tuple[bytes, bytes], ...] = _NO_STORE_RAW,
        media_type: bytes = b"application/json",
    ) -> None:
        self._status = status
        self._body = body
        self._headers = headers
        self._media_type = media_type

    def with_header(self, name: bytes, value: str) -> JsonAnswer:
        """This answer with one more header."""
        return JsonAnswer(self._status, self._body,
                          (*self._headers, (name, value.encode("latin-1"))))

    def with_cors(self, origin: str, client: Client | None) -> JsonAnswer:
        """This answer with the CORS headers for ``origin`` (entrypoints.http.cors)."""
        return JsonAnswer(self._status, self._body,
                          (*self._headers, *response_headers(origin, client)), self._media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({
            "type": "http.response.start",
            "status": self._status,
            "headers": [(b"content-type", self._media_type),
                        (b"content-length", str(len(self._body)).encode("ascii")),
                        *self._headers],
        })
        await send({"type": "http.response.body", "body": self._body, "more_body": False})


def error_response(exc: OAuthError) -> JsonAnswer:
    """The RFC 6749 section 5.2 response for an OAuth error."""
    body = _encoder.encode(OAuthErrorBody(exc.error, exc.description))
    if isinstance(exc, TooManyRequests):
        return JsonAnswer(429, body, (*_NO_STORE_RAW,
                                      (b"retry-after", str(exc.retry_after).encode("ascii"))))
    if exc.error == "invalid_client":
        return JsonAnswer(401, body, _UNAUTHORIZED_RAW)
    return JsonAnswer(400, body)


def _json_response(body: msgspec.Struct) -> JsonAnswer:
    return JsonAnswer(200, _encoder.encode(body))


def _header(request: Request[Any, Any, Any], name: bytes) -> str | None:
    # Straight from the ASGI scope (names arrive lowercased): building Litestar's Headers
    # object for the two lookups these endpoints make cost about 6% of an introspection.
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _media_type(request: Request[Any, Any, Any]) -> str:
    return (_header(request, b"content-type") or "").partition(";")[0].strip().lower()


#: The parameters that may be repeated (RFC 8707 section 2: ``resource``; RFC 8693 section
#: 2.1: ``audience``); their values are joined by spaces, which no URI or client id holds.
MULTI_VALUED = frozenset({"resource", "audience"})


def parse_form(body: bytes) -> dict[str, str]:
    """The parameters of a form body. Empty values count as omitted (RFC 6749 section 3.1);
    a repeated parameter is ``invalid_request`` (section 3.2), except those of
    :data:`MULTI_VALUED` (read them with :func:`form_resources`)."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,  # "a=&a=x" is a repeat too, whichever value is empty
            strict_parsing=False,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "the form body is malformed") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in MULTI_VALUED:
            if any(c.isspace() for c in value):
                raise OAuthError("invalid_target", f"{name} must be an absolute URI")
            if value:
                form[name] = f"{form[name]} {value}" if name in form else value
            continue
        if name in form:
            raise OAuthError("invalid_request", f"parameter {name!r} is repeated")
        form[name] = value
    return _storable({name: value for name, value in form.items() if value})


def _storable(form: dict[str, str]) -> dict[str, str]:
    """``form``, or ``invalid_request`` when a parameter holds what no store keeps (``%00``).

    One search over every name and value together: this runs on every token request.
    """
    if _unstorable("".join(chain(form, form.values()))) is not None:
        raise OAuthError("invalid_request",
                         "a parameter contains a character that is not allowed (NUL)")
    return form


async def _body(request: Request[Any, Any, Any]) -> bytes:
    # Straight from ASGI receive: Litestar's Request.body() first parses every header into a
    # Headers object to check Content-Length against its own limit, which BodyLimitMiddleware
    # has already enforced (1 MiB) for every request. Saves ~15% of an introspection's CPU
    # (bench/inprocess.py: 144 -> 122 us, 397 -> 355 Python calls per request).
    chunks: list[bytes] = []
    while True:
        message = await request.receive()
        if message["type"] != "http.request":
            break  # the client left; what arrived is parsed and the answer goes nowhere
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    if _media_type(request) != FORM:
        raise OAuthError("invalid_request", f"the body must be {FORM}")
    return parse_form(await _body(request))


def form_resources(form: dict[str, str]) -> tuple[str, ...]:
    """The ``resource`` values of a parsed form (RFC 8707), checked: ``invalid_target``
    for one that is not an absolute URI without fragment."""
    value = form.get("resource")
    if value is None:
        return ()
    try:
        return parse_resources(value.split(" "))
    except ResourceRefused as exc:
        raise OAuthError(exc.error, exc.description) from None


async def _form_or_json(request: Request[Any, Any, Any]) -> dict[str, str]:
    media_type = _media_type(request)
    if media_type == FORM:
        return parse_form(await _body(request))
    if media_type != JSON:
        raise OAuthError("invalid_request", f"the body must be {FORM} or {JSON}")
    try:
        document = _json_body.decode(await _body(request))
    except (msgspec.DecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise OAuthError("invalid_request", "the JSON body is malformed") from None
    if not all(isinstance(value, str) for value in document.values()):
        raise OAuthError("invalid_request", "every parameter must be a string")
    return _storable({name: value for name, value in document.items() if value})


def client_credentials(
    request: Request[Any, Any, Any], form: dict[str, str]
) -> tuple[str, str | None, str]:
    """The client id, secret and method a request authenticates with: HTTP Basic,
    ``client_id`` and ``client_secret`` in the body, or, for a public client, ``client_id``
    alone (secret None, method ``none``).

    Using two methods at once is ``invalid_request``; no credentials, ``invalid_client``.
    """
    header = _header(request, b"authorization")
    scheme, _, credentials = (header or "").partition(" ")
    if scheme.lower() == "basic":
        if "client_secret" in form:
            raise OAuthError("invalid_request", "use one client authentication method, not two")
        client_id, secret = _basic_credentials(credentials.strip())
        if form.get("client_id", client_id) != client_id:
            raise OAuthError("invalid_request", "client_id differs from the Basic credentials")
        return client_id, secret, AUTH_BASIC
    client_id_or_none = form.get("client_id")
    if client_id_or_none is None:
        raise OAuthError("invalid_client", "client authentication is required")
    secret_or_none = form.get("client_secret")
    if secret_or_none is None:
        return client_id_or_none, None, AUTH_NONE
    return client_id_or_none, secret_or_none, AUTH_POST


_AUTH_FAILED = "client authentication failed"


def throttled_authentication(
    request: Request[Any, Any, Any], form: dict[str, str], services: Services
) -> Client | Awaitable[Client]:
    """The authenticated client (:func:`client_credentials` checked by the client
    directory), with failures counted per (client id, address).

    Past ``RATE_LIMIT_CLIENT_AUTH_FAILURES`` failures in the window, a failing attempt of
    that client id from that address is answered 429 instead of 401, until the window ends.
    The right secret is never refused: client secrets have at least 32 random characters,
    so they cannot be guessed, and refusing it would let a stranger lock a client out (behind
    a load balancer, from the one address everyone shares). So a static client's success
    costs nothing here: it returns the client itself; anything else returns an awaitable
    (a stored client's lookup, or a failure that counts itself and raises).
    """
    if "client_assertion" in form or "client_assertion_type" in form:
        return _asserted_client(request, form, services)
    try:
        client_id, secret, method = client_credentials(request, form)
    except OAuthError as exc:
        return _count_failure(request, form, services, exc)
    found = services.clients.authenticate(client_id, secret, method, services.clock.now())
    if isinstance(found, Client):
        return found
    if found is None:
        return _count_failure(request, form, services,
                              OAuthError("invalid_client", _AUTH_FAILED))
    return _stored_client(request, form, services, found)


async def _asserted_client(
    request: Request[Any, Any, Any], form: dict[str, str], services: Services
) -> Client:
    """The client a ``client_assertion`` (RFC 7523: ``private_key_jwt``,
    ``client_secret_jwt``) proves; its failures count as the client it named."""
    if "client_secret" in form or _header(request, b"authorization") is not None:
        return await _count_failure(request, form, services, OAuthError(
            "invalid_request", "use one client authentication method, not two"))
    try:
        return await authenticate_with_assertion(
            services.client_assertions,
            assertion_type=form.get("client_assertion_type"),
            assertion=form.get("client_assertion"),
            client_id=form.get("client_id"),
            endpoint=services.settings.external_base_url + request.scope["path"],
            now=services.clock.now(),
        )
    except ClientAssertionRefused as exc:
        return await _count_failure(request, form, services, exc, exc.client_id)


async def _stored_client(
    request: Request[Any, Any, Any], form: dict[str, str], services: Services,
    found: Awaitable[Client | None],
) -> Client:
    client = await found
    if client is None:
        return await _count_failure(request, form, services,
                                    OAuthError("invalid_client", _AUTH_FAILED))
    return client


async def _count_failure(
    request: Request[Any, Any, Any], form: dict[str, str], services: Services, exc: OAuthError,
    client_id: str | None = None,
) -> Client:
    limit = services.settings.rate_limit_client_auth_failures
    if exc.error == "invalid_client" and limit:
        claimed = _claimed_client_id(request, form) if client_id is None else client_id
        key = _failure_key(request, claimed)
        now = services.clock.now()
        if await services.store.hit(key, CLIENT_AUTH_FAILURE_WINDOW, now) > limit:
            raise _throttled(request, now) from None
    raise exc


def _failure_key(request: Request[Any, Any, Any], client_id: str) -> str:
    peer = request.scope.get("client")
    # The address first: it holds no space, so the pair reads back unambiguously.
    return rate_key("client_auth", f"{peer[0] if peer else 'unknown'} {client_id}")


def _claimed_client_id(request: Request[Any, Any, Any], form: dict[str, str]) -> str:
    # Only on the failure path: the id the caller named, however malformed its credentials.
    scheme, _, credentials = (_header(request, b"authorization") or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            return _basic_credentials(credentials.strip())[0]
        except OAuthError:
            return ""
    return form.get("client_id", "")


def _throttled(request: Request[Any, Any, Any], now: int) -> TooManyRequests:
    request.app.state.metrics.rate_limited.labels("client_auth").inc()
    return TooManyRequests(CLIENT_AUTH_FAILURE_WINDOW - now % CLIENT_AUTH_FAILURE_WINDOW)


async def _count_client_request(
    request: Request[Any, Any, Any], client: Client, services: Services
) -> None:
    """``RATE_LIMIT_TOKEN_PER_MINUTE``, counted for an authenticated client."""
    per_minute = services.settings.rate_limit_token_per_minute
    verdict = await check_rate(services.store, rate_key("token_client", client.client_id),
                               RateLimit(per_minute), services.clock.now())
    if not verdict.allowed:
        request.app.state.metrics.rate_limited.labels("token_client").inc()
        raise TooManyRequests(verdict.retry_after)


def _basic_credentials(encoded: str) -> tuple[str, str]:
    # RFC 6749 section 2.3.1: id and secret are form-urlencoded before Basic encoding.
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise OAuthError("invalid_client", "malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        raise OAuthError("invalid_client", "malformed Basic credentials")
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if _unstorable(client_id + secret) is not None:
        raise OAuthError("invalid_request",
                         "the Basic credentials contain a character that is not allowed (NUL)")
    return client_id, secret


def dpop_proof(request: Request[Any, Any, Any]) -> str | None:
    """The request's ``DPoP`` header; ``invalid_dpop_proof`` when it is sent more than once
    (RFC 9449 section 4.3: exactly one proof)."""
    values = [value for key, value in request.scope["headers"] if key == b"dpop"]
    if not values:
        return None
    if len(values) > 1:
        raise OAuthError(INVALID_DPOP_PROOF, "send exactly one DPoP header")
    try:
        return values[0].decode("ascii").strip()
    except UnicodeDecodeError:
        raise OAuthError(INVALID_DPOP_PROOF, "the DPoP proof is malformed") from None


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if value is None:
        raise OAuthError("invalid_request", f"{name} is required")
    return value


@post(
    "/oauth/token",
    operation_id="token",
    summary="Token endpoint (RFC 6749 section 3.2)",
    description="Grants authorization_code (with PKCE), client_credentials, refresh_token, "
    "urn:ietf:params:oauth:grant-type:device_code (RFC 8628) and token exchange (RFC 8693). "
    "Form body; client authentication by HTTP Basic or client_secret_post. `resource` "
    "(RFC 8707, repeatable) names the resource servers the token is for.",
    tags=["oauth"],
    status_code=200,
    responses={200: ResponseSpec(TokenResponse, description="the issued tokens",
                                 generate_examples=False),
               400: _ERROR_SPEC, 401: _ERROR_SPEC, 429: _ERROR_SPEC},
)
async def token_endpoint(request: Request[Any, Any, Any]) -> JsonAnswer:
    services = services_of(request)
    client: Client | None = None
    proof: str | None = None
    try:
        form = await _form(request)
        grant_type = _required(form, "grant_type")
        found = throttled_authentication(request, form, services)
        # An awaitable: a stored client's lookup, or a failure that counts itself and raises.
        client = found if isinstance(found, Client) else await found
        if services.settings.rate_limit_token_per_minute:
            await _count_client_request(request, client, services)
        ports = services.oauth
        proof = dpop_proof(request)
        # Checked before the grant, so that a bad proof never spends a code or a refresh token.
        binding = await token_request_binding(
            services.dpop, client, proof, now=services.clock.now(),
            url=services.settings.external_base_url + TOKEN_PATH)
        result: TokenResponse | ExchangeResponse
        if grant_type == GRANT_CLIENT_CREDENTIALS:
            result = await issue_client_credentials(ports, client, form.get("scope"),
                                                    resources=form_resources(form),
                                                    binding=binding)
        elif grant_type == GRANT_REFRESH_TOKEN:
            result = await refresh(
                ports, client, _required(form, "refresh_token"), form.get("scope"),
                binding=binding, resources=form_resources(form),
            )
        elif grant_type == GRANT_AUTHORIZATION_CODE:
            result = await exchange_authorization_code(
                ports,
                client,
                _required(form, "code"),
                form.get("redirect_uri"),
                form.get("code_verifier"),
                binding=binding,
                resources=form_resources(form),
            )
        elif grant_type == GRANT_DEVICE_CODE:
            result = await redeem_device_code(services.device, client,
                                              _required(form, "device_code"))
        elif grant_type == GRANT_TOKEN_EXCHANGE:
            result = await exchange_token(ports, client, ExchangeRequest(
                subject_token=form.get("subject_token"),
                subject_token_type=form.get("subject_token_type"),
                actor_token=form.get("actor_token"),
                actor_token_type=form.get("actor_token_type"),
                resources=form_resources(form),
                audiences=tuple(form.get("audience", "").split()),
                scope=form.get("scope"),
                requested_token_type=form.get("requested_token_type"),
            ), binding=binding)
        else:
            raise OAuthError("unsupported_grant_type", "the grant type is not supported")
        answer = _json_response(result)
    except OAuthError as exc:
        answer = error_response(exc)
    if proof is not None or (client is not None and client.dpop_bound_access_tokens):
        # RFC 9449 section 8: the nonce to put in the next proof, on success and failure.
        answer = answer.with_header(b"dpop-nonce",
                                    current_nonce(services.dpop, services.clock.now()))
    # Set by the middleware only for a request with an Origin (entrypoints.http.cors).
    origin = request.scope.get(ORIGIN_KEY)
    return answer if origin is None else answer.with_cors(cast(str, origin), client)


@post(
    "/oauth/introspect",
    operation_id="introspect",
    summary="Token introspection (RFC 7662)",
    description="Form body (JSON accepted). The caller authenticates as a confidential client. "
    "Unknown, expired or revoked tokens give {\"active\": false}.",
    tags=["oauth"],
    status_code=200,
    responses={200: ResponseSpec(Introspection, description="what the token is",
                                 generate_examples=False),
               400: _ERROR_SPEC, 401: _ERROR_SPEC, 429: _ERROR_SPEC},
)
async def introspection_endpoint(
    request: Request[Any, Any, Any]
) -> JsonAnswer:
    services = services_of(request)
    try:
        form = await _form_or_json(request)
        client = throttled_authentication(request, form, services)
        if not isinstance(client, Client):  # a failure: counted, then raised
            client = await client
        # RFC 7662 section 4: the endpoint must not answer anyone who merely names a client.
        if client.is_public:
            raise OAuthError("invalid_client", "public clients may not introspect tokens")
        result = await introspect(
            services.oauth, client, _required(form, "token"), form.get("token_type_hint")
        )
    except OAuthError as exc:
        return error_response(exc)
    if INTROSPECTION_JWT in (_header(request, b"accept") or ""):
        # RFC 9701: the answer signed by us, for the caller (its aud) to rely on.
        claims = signed_introspection_claims(
            issuer=services.settings.issuer, client_id=client.client_id,
            now=services.clock.now(), introspection=msgspec.to_builtins(result))
        signed = services.signer.sign(claims, typ=INTROSPECTION_JWT_TYPE)
        return JsonAnswer(200, signed.encode("ascii"), media_type=INTROSPECTION_JWT.encode())
    return _json_response(result)


@post(
    "/oauth/revoke",
    operation_id="revoke",
    summary="Token revocation (RFC 7009)",
    description="Form body. A client revokes only its own tokens; a refresh token revokes "
    "its whole family. Unknown tokens give 200 too.",
    tags=["oauth"],
    status_code=200,
    responses={200: ResponseSpec(None, description="revoked, or nothing to revoke",
                                 generate_examples=False),
               400: _ERROR_SPEC, 401: _ERROR_SPEC, 429: _ERROR_SPEC},
)
async def revocation_endpoint(
    request: Request[Any, Any, Any]
) -> JsonAnswer:
    services = services_of(request)
    client: Client | None = None
    try:
        form = await _form(request)
        found = throttled_authentication(request, form, services)
        # An awaitable: a stored client's lookup, or a failure that counts itself and raises.
        client = found if isinstance(found, Client) else await found
        await revoke(
            services.oauth, client, _required(form, "token"), form.get("token_type_hint")
        )
        answer = JsonAnswer(200, b"")
    except OAuthError as exc:
        answer = error_response(exc)
    # Set by the middleware only for a request with an Origin (entrypoints.http.cors).
    origin = request.scope.get(ORIGIN_KEY)
    return answer if origin is None else answer.with_cors(cast(str, origin), client)


#: The OAuth endpoints, for ``create_app``'s route handlers.
OAUTH_HANDLERS = [token_endpoint, introspection_endpoint, revocation_endpoint]

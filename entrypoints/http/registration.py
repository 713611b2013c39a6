"""``POST /oauth/register`` (RFC 7591) and ``GET``/``PUT``/``DELETE
/oauth/register/{client_id}`` (RFC 7592): dynamic client registration.

Thin handlers over ``domain.client_registration``. Bodies are JSON objects, read here
rather than by Litestar so that every malformed body gets the RFC 7591 section 3.2.2 error
(400 ``invalid_client_metadata``) and not a framework error. Tokens come as ``Authorization:
Bearer``: the initial access token for a registration when ``CLIENT_REGISTRATION=token``,
the registration access token for the management endpoints. A missing or wrong one is 401
with ``WWW-Authenticate: Bearer`` (RFC 6750 section 3).

With ``CLIENT_REGISTRATION=off`` (the default) ``POST /oauth/register`` answers 404, as a
server without the feature would, and discovery does not list it. The management endpoints
keep working for clients registered earlier, each with its own registration access token:
turning registration off stops new clients, it does not strand existing ones.

Registrations are counted per client address (``RATE_LIMIT_REGISTRATION_PER_MINUTE``,
through the store, so every instance shares the count), whether they succeed or not:
open registration is an easy target for someone filling the client store.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath

from domain.client_registration import (
    INVALID_METADATA,
    INVALID_TOKEN,
    Registration,
    RegistrationDisabled,
    RegistrationError,
    delete_registration,
    read_registration,
    register_client,
    update_registration,
)
from domain.ratelimit import RateLimit, check_rate, rate_key
from domain.text import is_storable
from entrypoints.http.bearer import bearer_from_header
from entrypoints.http.services import Services, ServicesDependency

REGISTER_PATH = "/oauth/register"
REALM = 'realm="auth-service"'
JSON = "application/json"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_encoder = msgspec.json.Encoder()
_object = msgspec.json.Decoder(dict[str, Any])


def registration_client_uri(services: Services, client_id: str) -> str:
    return f"{services.settings.external_base_url}{REGISTER_PATH}/{client_id}"


def _answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(_encoder.encode(body) if body is not None else b"", status_code=status,
                    media_type=JSON, headers={**_NO_STORE, **(headers or {})})


def registration_error(exc: RegistrationError, token_sent: bool) -> Response[bytes]:
    body = {"error": exc.error, "error_description": exc.description}
    if isinstance(exc, RegistrationDisabled):
        return _answer(404, body)
    if exc.error == INVALID_TOKEN:
        # RFC 6750 section 3.1: no error code in the challenge when no token was sent.
        challenge = f"Bearer {REALM}"
        if token_sent:
            challenge += f', error="{INVALID_TOKEN}"'
        return _answer(401, body, {"WWW-Authenticate": challenge})
    return _answer(400, body)


async def _document(request: Request[Any, Any, Any]) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != JSON:
        raise RegistrationError(INVALID_METADATA, f"the body must be {JSON}")
    try:
        return _object.decode(await request.body())
    except (msgspec.DecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise RegistrationError(INVALID_METADATA, "the body must be a JSON object of client "
                                "metadata") from None


def _address(request: Request[Any, Any, Any]) -> str:
    # The TCP peer, or the address TRUSTED_PROXIES vouch for (entrypoints.middleware).
    peer = request.scope.get("client")
    return str(peer[0]) if peer else "unknown"


async def _throttled(request: Request[Any, Any, Any], services: Services) -> Response[bytes] | None:
    rule = RateLimit(services.settings.rate_limit_registration_per_minute)
    if not rule.enabled:
        return None
    verdict = await check_rate(services.store, rate_key("registration", _address(request)),
                               rule, services.clock.now())
    if verdict.allowed:
        return None
    request.app.state.metrics.rate_limited.labels("registration").inc()
    return _answer(429, {"error": "too_many_requests",
                         "error_description": "rate limit exceeded; retry after "
                         f"{verdict.retry_after} seconds"},
                   {"Retry-After": str(verdict.retry_after)})


def _check_path(client_id: str) -> None:
    if not is_storable(client_id):
        raise RegistrationError("invalid_request", "the client id in the path contains a "
                                "character that is not allowed (NUL)")


def _shown(services: Services, registration: Registration, status: int = 200
           ) -> Response[bytes]:
    uri = registration_client_uri(services, registration.client.client_id)
    return _answer(status, registration.response(uri))


class RegistrationController(Controller):
    """Dynamic client registration (RFC 7591) and management (RFC 7592)."""

    path = REGISTER_PATH
    tags = ["registration"]

    @post(operation_id="registerClient", status_code=201,
          summary="Register a client (RFC 7591)",
          description="A JSON object of client metadata (RFC 7591 section 2; unknown metadata "
          "is ignored). With CLIENT_REGISTRATION=token, an initial access token as Bearer. "
          "Answers the client's metadata with its client_id, client_secret (confidential "
          "clients), registration_access_token and registration_client_uri, shown once.")
    async def register(self, request: Request[Any, Any, Any], services: ServicesDependency
                       ) -> Response[bytes]:
        token = bearer_from_header(request)
        mode = services.settings.client_registration
        try:
            if mode == "off":
                raise RegistrationDisabled
            refused = await _throttled(request, services)
            if refused is not None:
                return refused
            registration = await register_client(
                services.client_ports, await _document(request), mode=mode,
                initial_token=token,
                allow_loopback_http=services.settings.outbound_allow_loopback)
        except RegistrationError as exc:
            return registration_error(exc, token is not None)
        return _shown(services, registration, 201)

    @get("/{client_id:str}", operation_id="readClientRegistration",
         summary="Read a client's registration (RFC 7592 section 2.1)",
         description="Authorized by the client's registration access token (Bearer).")
    async def read(self, request: Request[Any, Any, Any], services: ServicesDependency,
                   client_id: FromPath[str]) -> Response[bytes]:
        token = bearer_from_header(request)
        try:
            _check_path(client_id)
            client = await read_registration(services.client_ports, client_id, token)
        except RegistrationError as exc:
            return registration_error(exc, token is not None)
        return _shown(services, Registration(client=client))

    @put("/{client_id:str}", operation_id="updateClientRegistration",
         summary="Replace a client's registration (RFC 7592 section 2.2)",
         description="The full metadata, including client_id; omitted fields take their "
         "defaults. Answers a new registration_access_token: the old one stops working.")
    async def update(self, request: Request[Any, Any, Any], services: ServicesDependency,
                     client_id: FromPath[str]) -> Response[bytes]:
        token = bearer_from_header(request)
        try:
            _check_path(client_id)
            try:
                document = await _document(request)
            except RegistrationError:
                # A stranger learns nothing from the body's fate: authorization comes first.
                await read_registration(services.client_ports, client_id, token)
                raise
            registration = await update_registration(
                services.client_ports, client_id, token, document,
                allow_loopback_http=services.settings.outbound_allow_loopback)
        except RegistrationError as exc:
            return registration_error(exc, token is not None)
        return _shown(services, registration)

    # Declared 200 because Litestar refuses a body-typed handler declared 204; every
    # answer is a Response carrying its own status (204 on success).
    @delete("/{client_id:str}", operation_id="deleteClientRegistration", status_code=200,
            responses={204: ResponseSpec(None, description="deleted")},
            summary="Delete a client's registration (RFC 7592 section 2.3)",
            description="The client and every token issued to it stop working at once.")
    async def remove(self, request: Request[Any, Any, Any], services: ServicesDependency,
                     client_id: FromPath[str]) -> Response[bytes]:
        token = bearer_from_header(request)
        try:
            _check_path(client_id)
            await delete_registration(services.client_ports, client_id, token)
        except RegistrationError as exc:
            return registration_error(exc, token is not None)
        return Response(b"", status_code=204, headers=_NO_STORE)

"""The device authorization grant (RFC 8628) over HTTP: ``POST /oauth/device_authorization``
for the device, and the verification page ``GET``/``POST /device`` for the user.

The device endpoint authenticates the client exactly as the token endpoint does
(``entrypoints.http.oauth``: a public client sends its ``client_id``), answers JSON with
``Cache-Control: no-store``, and counts every request per client address
(``RATE_LIMIT_DEVICE_AUTHORIZATION_PER_MINUTE``, through the store, so every instance
shares the count). ``resource`` may be repeated (RFC 8707); every other parameter once.

The verification page needs a signed-in browser (the session cookie); without one it
sends the browser to ``/signin?return_to=<this page, with the user code>``. It runs in two
steps, each a form whose CSRF token is sealed in a short ``SameSite=Lax`` cookie bound to
the session (as the logout confirmation is), so a cross-site page can neither read the
token nor send the cookies with its POST:

1. the user types (or finds prefilled, from ``verification_uri_complete``) the user code
   and continues; a ``GET`` never looks a code up, so links cannot be used to guess, and
   the user always sees the code to compare with the device's screen (section 5.4);
2. the page names the client and the scopes; Approve or Deny decides, once.

Wrong, expired and already used codes get one message, and wrong codes are throttled
(``domain.device_grant.look_up_user_code``).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_303_SEE_OTHER

from domain.clients import Client
from domain.device import display_user_code
from domain.device_grant import (
    DeviceAuthorizationResponse,
    GuessesThrottled,
    MfaRequired,
    PendingRequest,
    UnknownUserCode,
    approve_device_authorization,
    deny_device_authorization,
    look_up_user_code,
    read_resources,
    start_device_authorization,
    well_formed_user_code,
)
from domain.errors import DomainError, InvalidValue, NotFound
from domain.oauth import OAuthError
from domain.ratelimit import RateLimit, check_rate, rate_key
from domain.sessions import Session
from domain.text import UNSTORABLE, is_storable
from entrypoints.http.authorize import SCOPE_DESCRIPTIONS
from entrypoints.http.html import page
from entrypoints.http.oauth import (
    FORM,
    MAX_FORM_FIELDS,
    JsonAnswer,
    OAuthErrorBody,
    TooManyRequests,
    error_response,
    throttled_authentication,
)
from entrypoints.http.sealed_cookie import SealedCookie
from entrypoints.http.services import (
    DEVICE_PAGE_PATH,
    Services,
    ServicesDependency,
    services_of,
)
from entrypoints.http.session_cookie import current_session

ENDPOINT_PATH = "/oauth/device_authorization"
SIGNIN_PATH = "/signin"
#: How long each step of the verification page may wait for its answer.
FORM_SECONDS = 600
#: Longer than any user code typed with dashes and spaces; a longer field is refused.
_MAX_USER_CODE_FIELD = 64
_MAX_FIELD = 1024

WRONG_CODE = ("That code is not valid. Check the code shown on your device and type it "
              "again; if it has expired, start again on the device.")
EXPIRED_FORM = ("This page had expired or was opened in another window. Enter the code "
                "again.")
_NO_STORE = ((b"cache-control", b"no-store"), (b"pragma", b"no-cache"))
_encoder = msgspec.json.Encoder()


# POST /oauth/device_authorization


def _address(request: Request[Any, Any, Any]) -> str:
    # The TCP peer, or the address TRUSTED_PROXIES vouch for (entrypoints.middleware).
    peer = request.scope.get("client")
    return str(peer[0]) if peer else "unknown"


async def _count_request(request: Request[Any, Any, Any], services: Services) -> None:
    rule = RateLimit(services.settings.rate_limit_device_authorization_per_minute)
    if not rule.enabled:
        return
    verdict = await check_rate(services.store,
                               rate_key("device_authorization", _address(request)), rule,
                               services.clock.now())
    if not verdict.allowed:
        request.app.state.metrics.rate_limited.labels("device_authorization").inc()
        raise TooManyRequests(verdict.retry_after)


async def _device_form(request: Request[Any, Any, Any]) -> tuple[dict[str, str], list[str]]:
    """The parameters, and the ``resource`` values (the one parameter that may repeat).
    Empty values count as omitted, as at the token endpoint."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != FORM:
        raise OAuthError("invalid_request", f"the body must be {FORM}")
    try:
        pairs = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True,
                          max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "the form body is malformed") from None
    form: dict[str, str] = {}
    resources: list[str] = []
    for name, value in pairs:
        if UNSTORABLE.search(name + value) is not None:
            raise OAuthError("invalid_request",
                             "a parameter contains a character that is not allowed (NUL)")
        if name == "resource":
            if value:
                resources.append(value)
        elif name in form:
            raise OAuthError("invalid_request", f"parameter {name!r} is repeated")
        else:
            form[name] = value
    return {name: value for name, value in form.items() if value}, resources


_ERROR_SPEC = ResponseSpec(OAuthErrorBody, description="an OAuth error (RFC 6749 section 5.2)",
                           generate_examples=False)


@post(
    ENDPOINT_PATH,
    operation_id="deviceAuthorization",
    summary="Device authorization endpoint (RFC 8628 section 3.1)",
    description="Form body: scope (required), resource (RFC 8707, may repeat) and client "
    "authentication as at the token endpoint (a public client sends client_id). Answers a "
    "device_code to poll the token endpoint with and a user_code to show the user.",
    tags=["oauth"],
    status_code=200,
    responses={200: ResponseSpec(DeviceAuthorizationResponse,
                                 description="the device and user codes",
                                 generate_examples=False),
               400: _ERROR_SPEC, 401: _ERROR_SPEC, 429: _ERROR_SPEC, 503: _ERROR_SPEC},
)
async def device_authorization_endpoint(request: Request[Any, Any, Any]) -> JsonAnswer:
    services = services_of(request)
    try:
        # Every request counts, refused ones included: it is how codes are minted.
        await _count_request(request, services)
        form, resource_values = await _device_form(request)
        found = throttled_authentication(request, form, services)
        # An awaitable: a stored client's lookup, or a failure that counts itself and raises.
        client = found if isinstance(found, Client) else await found
        result = await start_device_authorization(
            services.device, client, scope=form.get("scope"),
            resources=read_resources(resource_values))
    except OAuthError as exc:
        if exc.error == "temporarily_unavailable":
            return JsonAnswer(503, _encoder.encode(OAuthErrorBody(exc.error, exc.description)),
                              (*_NO_STORE, (b"retry-after", b"1")))
        return error_response(exc)
    return JsonAnswer(200, _encoder.encode(result), _NO_STORE)


# GET/POST /device


class DeviceForm(msgspec.Struct, frozen=True, kw_only=True):
    """A step of the verification page waiting for its answer, sealed in the browser's
    cookie. ``purpose`` keeps a sign-in transaction or a logout confirmation (sealed with
    the same key) from passing for one; ``sid`` binds it to the session that saw the
    page; ``user_code_hash`` is the request shown, once a code was found."""

    purpose: Literal["device"]
    csrf: str
    exp: int
    sid: str
    user_code_hash: str | None = None




class BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message










def _new_form(services: Services, session: Session, user_code_hash: str | None = None
              ) -> DeviceForm:
    return DeviceForm(purpose="device", csrf=secrets.token_urlsafe(32),
                      exp=services.clock.now() + FORM_SECONDS, sid=session.sid,
                      user_code_hash=user_code_hash)


def _multi(items: list[tuple[str, Any]]) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in items:
        if isinstance(value, str):
            params.setdefault(key, []).append(value)
    return params


def _single(params: dict[str, list[str]], name: str, limit: int = _MAX_FIELD) -> str:
    """The parameter's value ("" when absent); :class:`BadRequest` when it is repeated,
    too long, or holds what no store keeps."""
    values = params.get(name, [])
    if len(values) > 1:
        raise BadRequest(f"The field {name} was sent more than once.")
    value = values[0] if values else ""
    if len(value) > limit or not is_storable(value):
        raise BadRequest(f"The field {name} is too long or holds a character that is not "
                         "allowed.")
    return value


def _shown_code(text: str) -> str:
    """A typed code as the page shows it back: ``XXXX-XXXX`` when it can be a user code."""
    code = well_formed_user_code(text)
    return display_user_code(code) if code is not None else ""


def _page_target(user_code: str) -> str:
    """This page's local URL, with the user code when one was given."""
    shown = _shown_code(user_code)
    return f"{DEVICE_PAGE_PATH}?{urlencode({'user_code': shown})}" if shown else DEVICE_PAGE_PATH


def _signin_url(user_code: str) -> str:
    return f"{SIGNIN_PATH}?{urlencode({'return_to': _page_target(user_code)})}"


def _see_other(location: str) -> Response[None]:
    return Response(None, status_code=HTTP_303_SEE_OTHER, headers={
        "Location": location, "Cache-Control": "no-store", "Pragma": "no-cache",
        "Referrer-Policy": "no-referrer"})


def _error_page(title: str, message: str, status_code: int = 400,
                retry_after: int | None = None) -> Response[str]:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return page("error.html", status_code, headers, title=title, message=message,
                retry_after=retry_after)


def _domain_error_page(exc: DomainError) -> Response[str]:
    if isinstance(exc, InvalidValue):
        return _error_page("Invalid request", "The request contains a value that is not "
                           "allowed.")
    return _error_page("Service unavailable", "Connecting devices is temporarily "
                       "unavailable. Please try again shortly.", 503, retry_after=1)


async def _user_name(services: Services, user_id: str) -> str | None:
    try:
        return (await services.store.get_user(user_id)).user_name
    except NotFound:
        return None


def _wait(seconds: int) -> str:
    seconds = max(1, seconds)
    return f"{seconds} second(s)" if seconds < 60 else f"{-(-seconds // 60)} minute(s)"


async def _code_page(
    services: Services, session: Session, *, user_code: str = "", error: str | None = None,
    status_code: int = 200, retry_after: int | None = None,
) -> Response[str]:
    form = _new_form(services, session)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    response = page("device.html", status_code, headers, action=DEVICE_PAGE_PATH,
                    csrf_token=form.csrf, user_code=_shown_code(user_code), error=error,
                    user_name=await _user_name(services, session.user_id))
    response.set_cookie(_FORM.cookie(services, form))
    return response


async def _confirm_page(
    services: Services, session: Session, pending: PendingRequest, user_code: str
) -> Response[str]:
    authorization, client = pending.authorization, pending.client
    form = _new_form(services, session, authorization.user_code_hash)
    mfa_required = client.require_mfa and not session.mfa_verified
    response = page(
        "device_confirm.html", action=DEVICE_PAGE_PATH, csrf_token=form.csrf,
        client_name=client.name, user_code=_shown_code(user_code),
        user_name=await _user_name(services, session.user_id),
        scopes=[{"name": s, "description": SCOPE_DESCRIPTIONS.get(s, "Access to " + s)}
                for s in authorization.scope.split()],
        resources=authorization.resources, mfa_required=mfa_required,
        signin_url=_signin_url(user_code))
    response.set_cookie(_FORM.cookie(services, form))
    return response


def _done_page(services: Services, *, approved: bool, client_name: str | None
               ) -> Response[str]:
    response = page("device_done.html", approved=approved, client_name=client_name)
    response.set_cookie(_FORM.cookie(services, None))
    return response


class DeviceController(Controller):
    """The verification page (RFC 8628 ``verification_uri``)."""

    path = DEVICE_PAGE_PATH
    include_in_schema = False
    exception_handlers = {DomainError: lambda request, exc: _domain_error_page(exc)}

    @get(operation_id="deviceVerification")
    async def show(
        self, request: Request[Any, Any, Any], services: ServicesDependency
    ) -> Response[Any]:
        """The form to type the user code (``?user_code=`` prefills it)."""
        try:
            user_code = _single(_multi(list(request.query_params.multi_items())), "user_code",
                                _MAX_USER_CODE_FIELD)
        except BadRequest as exc:
            return _error_page("Invalid request", exc.message)
        session = await current_session(request, services)
        if session is None:
            return _see_other(_signin_url(user_code))
        return await _code_page(services, session, user_code=user_code)

    @post(operation_id="deviceVerificationSubmit", status_code=200)
    async def submit(
        self, request: Request[Any, Any, Any], services: ServicesDependency
    ) -> Response[Any]:
        """A step of the page: look the code up, then approve or deny."""
        fields = _multi(list((await request.form()).multi_items()))
        try:
            user_code = _single(fields, "user_code", _MAX_USER_CODE_FIELD)
            csrf_token = _single(fields, "csrf_token")
            action = _single(fields, "action")
        except BadRequest as exc:
            return _error_page("Invalid request", exc.message)
        session = await current_session(request, services)
        if session is None:
            return _see_other(_signin_url(user_code))
        form = _FORM.read(request, services)
        if form is None or form.sid != session.sid:
            return await _code_page(services, session, user_code=user_code, error=EXPIRED_FORM,
                                    status_code=400)
        if not hmac.compare_digest(csrf_token.encode(), form.csrf.encode()):
            return _error_page("Invalid form", "The form was not the one we sent; please "
                               "start again.", 403)
        if action in ("approve", "deny"):
            return await self._decide(services, session, form, approve=action == "approve")
        return await self._look_up(request, services, session, user_code)

    async def _look_up(
        self, request: Request[Any, Any, Any], services: Services, session: Session,
        user_code: str,
    ) -> Response[Any]:
        outcome = await look_up_user_code(services.device, user_code,
                                          client_ip=_address(request))
        if isinstance(outcome, GuessesThrottled):
            request.app.state.metrics.rate_limited.labels("device_code").inc()
            return await _code_page(
                services, session, user_code=user_code, status_code=429,
                retry_after=outcome.retry_after,
                error="Too many wrong codes were typed. For your security, codes are not "
                      f"checked for now; try again in {_wait(outcome.retry_after)}.")
        if isinstance(outcome, UnknownUserCode):
            return await _code_page(services, session, user_code=user_code, error=WRONG_CODE,
                                    status_code=400)
        return await _confirm_page(services, session, outcome, user_code)

    async def _decide(
        self, services: Services, session: Session, form: DeviceForm, *, approve: bool
    ) -> Response[Any]:
        if form.user_code_hash is None:
            return await _code_page(services, session, error=EXPIRED_FORM, status_code=400)
        if approve:
            outcome = await approve_device_authorization(services.device, form.user_code_hash,
                                                         session)
            if isinstance(outcome, MfaRequired):
                return _error_page(
                    "Two-factor sign-in required",
                    f"{outcome.client.name} requires two-factor authentication. Sign in "
                    "again with your authenticator app, then enter the code again.", 403)
        else:
            outcome = await deny_device_authorization(services.device, form.user_code_hash,
                                                      session)
        if isinstance(outcome, UnknownUserCode):
            return await _code_page(services, session, error=WRONG_CODE, status_code=400)
        client = await services.clients.find(outcome.client_id)
        return _done_page(services, approved=approve,
                          client_name=client.name if client is not None else None)


#: The device flow's handlers, for ``create_app``.
DEVICE_HANDLERS = [device_authorization_endpoint, DeviceController]


#: The verification form's state (its CSRF token, bound to the session that saw it).
_FORM = SealedCookie("device", DeviceForm, seconds=FORM_SECONDS, path=DEVICE_PAGE_PATH)

"""``GET``/``POST /oauth/authorize``: the authorization code flow with a sign-in.

The request is validated first (``domain.authorization_request``); the sign-in then runs
over one or two pages (password, then a TOTP code when the user has a confirmed factor).
Between pages, the transaction (the validated request, the step reached, the CSRF token)
lives in a short-lived cookie sealed with a key derived from the signing key, so any
instance can carry on a sign-in another one started. The form's CSRF token must equal the
one sealed in the cookie, and the cookie is ``SameSite=Lax``: a cross-site form can neither
read the token nor send the cookie with its POST.

A TOTP-step transaction is single use: each code submitted claims its ``id`` in the store
(``claim_once``, until the transaction expires), so a copy of the cookie cannot be replayed
to try more codes without the password; a wrong code comes with a fresh transaction.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.status_codes import HTTP_303_SEE_OTHER

from domain.authorization_request import (
    AuthorizationRequest,
    RedirectError,
    ShowError,
    redirect_location,
    validate_authorization_request,
)
from domain.clients import Client
from domain.errors import DomainError, InvalidValue
from domain.oauth import OAuthError, create_authorization_code
from domain.redirects import redirect_uri_registered
from domain.signin import (
    PasswordAccepted,
    Throttled,
    ThrottlePolicy,
    TotpAccepted,
    check_password,
    check_totp,
)
from domain.text import is_storable
from entrypoints.http.html import page
from entrypoints.http.services import Services, ServicesDependency

PATH = "/oauth/authorize"
#: How long a sign-in may take, from the first page to the redirect.
TRANSACTION_SECONDS = 600
_MAX_FIELD = 1024

SCOPE_DESCRIPTIONS = {
    "openid": "Confirm your identity",
    "profile": "Your user name and display name",
    "email": "Your email address",
    "offline_access": "Access while you are not signed in",
}


class Transaction(msgspec.Struct, frozen=True, kw_only=True):
    """The sign-in in progress, sealed in the browser's cookie between pages.

    ``id`` names this transaction in the store: the TOTP step claims it once.
    """

    id: str
    request: AuthorizationRequest
    csrf: str
    exp: int
    step: Literal["password", "totp"] = "password"
    user_id: str | None = None
    auth_time: int | None = None


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Transaction).decode


def _cookie_name(services: Services) -> str:
    # The __Host- prefix makes browsers refuse the cookie unless Secure, host-only, Path=/.
    return "__Host-signin" if _secure(services) else "signin"


def _secure(services: Services) -> bool:
    return services.settings.external_base_url.startswith("https://")


def _transaction_cookie(services: Services, transaction: Transaction | None) -> Cookie:
    secure = _secure(services)
    return Cookie(
        key=_cookie_name(services),
        value=services.signin_sealer.seal(_encode(transaction)) if transaction else "",
        max_age=TRANSACTION_SECONDS if transaction else 0,
        path="/" if secure else PATH,
        httponly=True,
        secure=secure,
        samesite="lax",
    )


def _open_transaction(request: Request[Any, Any, Any], services: Services) -> Transaction | None:
    sealed = request.cookies.get(_cookie_name(services))
    if not sealed:
        return None
    payload = services.signin_sealer.unseal(sealed)
    if payload is None:
        return None
    try:
        transaction = _decode(payload)
    except msgspec.ValidationError:
        return None
    if transaction.exp <= services.clock.now():
        return None
    return transaction


def _redirect(location: str, transaction_done: Services | None = None) -> Response[None]:
    response: Response[None] = Response(
        None,
        status_code=HTTP_303_SEE_OTHER,
        headers={"Location": location, "Cache-Control": "no-store", "Pragma": "no-cache",
                 "Referrer-Policy": "no-referrer"},
    )
    if transaction_done is not None:
        response.set_cookie(_transaction_cookie(transaction_done, None))
    return response


def _error_redirect(services: Services, error: RedirectError) -> Response[None]:
    return _redirect(redirect_location(error.redirect_uri, {
        "error": error.error,
        "error_description": error.description,
        "state": error.state,
        "iss": services.settings.issuer,
    }), services)


def _error_page(
    title: str, message: str, status_code: int = 400, retry_after: int | None = None
) -> Response[str]:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return page("error.html", status_code, headers, title=title, message=message,
                retry_after=retry_after)


def _domain_error_page(exc: DomainError) -> Response[str]:
    if isinstance(exc, InvalidValue):  # input the store refused: the request's fault
        return _error_page("Invalid request", "The request contains a value that is not "
                           "allowed; return to the application and start again.")
    return _error_page(
        "Service unavailable", "Sign-in is temporarily unavailable. Please try again shortly.",
        503, retry_after=1)


def _scopes(request: AuthorizationRequest) -> list[dict[str, str]]:
    return [
        {"name": s, "description": SCOPE_DESCRIPTIONS.get(s, "Access to " + s)}
        for s in request.scope.split()
    ]


def _signin_page(
    client: Client, transaction: Transaction, *, error: str | None = None, username: str = "",
    status_code: int = 200, retry_after: int | None = None,
) -> Response[str]:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    template = "totp.html" if transaction.step == "totp" else "signin.html"
    return page(
        template, status_code, headers, form_target=transaction.request.redirect_uri,
        action=PATH, client_name=client.name, scopes=_scopes(transaction.request),
        csrf_token=transaction.csrf, error=error, username=username,
    )


def _throttled_message(throttled: Throttled) -> str:
    seconds = max(1, throttled.retry_after)
    wait = f"{seconds} second(s)" if seconds < 60 else f"{-(-seconds // 60)} minute(s)"
    return (f"Too many failed sign-in attempts. For your security, sign-in is paused; "
            f"try again in {wait}.")


def _throttle_policy(services: Services) -> ThrottlePolicy:
    return ThrottlePolicy(ip_limit=services.settings.rate_limit_signin_failures_per_address)


def _new_id() -> str:
    return secrets.token_urlsafe(18)


def _multi(items: list[tuple[str, Any]]) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in items:
        if isinstance(value, str):
            params.setdefault(key, []).append(value)
    return params


class AuthorizeController(Controller):
    """The authorization endpoint (RFC 6749 section 3.1, OpenID Connect Core 3.1.2)."""

    path = PATH
    include_in_schema = False
    exception_handlers = {DomainError: lambda request, exc: _domain_error_page(exc)}

    @get(operation_id="authorize")
    async def authorize(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDependency,
    ) -> Response[Any]:
        """Validate an authorization request and show the sign-in page."""
        return await self._start(services, _multi(list(request.query_params.multi_items())))

    @post(operation_id="authorizeSubmit", status_code=200)
    async def submit(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDependency,
    ) -> Response[Any]:
        """A sign-in step (a form with ``csrf_token``), or an authorization request by POST."""
        form = await request.form()
        fields = _multi(list(form.multi_items()))
        if "csrf_token" not in fields:
            return await self._start(services, fields)
        return await self._step(request, services, fields)

    async def _start(self, services: Services, params: dict[str, list[str]]) -> Response[Any]:
        outcome = await validate_authorization_request(services.clients, params,
                                                       services.oauth.resources)
        if isinstance(outcome, ShowError):
            return _error_page("Invalid request", outcome.description)
        if isinstance(outcome, RedirectError):
            return _error_redirect(services, outcome)
        client = await services.clients.find(outcome.client_id)
        assert client is not None  # validated just above
        transaction = Transaction(
            id=_new_id(), request=outcome, csrf=secrets.token_urlsafe(32),
            exp=services.clock.now() + TRANSACTION_SECONDS,
        )
        response = _signin_page(client, transaction)
        response.set_cookie(_transaction_cookie(services, transaction))
        return response

    async def _step(
        self, request: Request[Any, Any, Any], services: Services, fields: dict[str, list[str]]
    ) -> Response[Any]:
        def field(name: str) -> str:
            values = fields.get(name, [])
            return values[0][:_MAX_FIELD] if len(values) == 1 else ""

        transaction = _open_transaction(request, services)
        if transaction is None:
            return _error_page(
                "Sign-in expired",
                "This sign-in has expired or was started in another browser window.")
        if not hmac.compare_digest(field("csrf_token").encode(), transaction.csrf.encode()):
            return _error_page("Invalid form", "The form was not the one we sent; "
                               "please start again.", 403)
        client = await services.clients.find(transaction.request.client_id)
        if client is None:
            return _error_page("Invalid request",
                               "The application that sent you here is not registered.")
        auth_request = transaction.request
        if field("action") == "cancel":
            return _error_redirect(services, RedirectError(
                auth_request.redirect_uri, "access_denied", "the user cancelled the sign-in",
                auth_request.state))
        if field("step") != transaction.step:
            return _error_page("Invalid form", "This page is out of date; please start again.",
                               409)
        client_ip = request.client.host if request.client else "unknown"
        now = services.clock.now()
        policy = _throttle_policy(services)

        if transaction.step == "password":
            username = field("username").strip()
            if not is_storable(username):
                return _signin_page(client, transaction, status_code=400,
                                    error="The user name contains a character that is not "
                                          "allowed.")
            outcome = await check_password(
                services.store, services.password_hasher, services.events,
                user_name=username, password=field("password"), client_ip=client_ip, now=now,
                policy=policy)
            if isinstance(outcome, Throttled):
                return _signin_page(client, transaction, error=_throttled_message(outcome),
                                    username=username, status_code=429,
                                    retry_after=outcome.retry_after)
            if not isinstance(outcome, PasswordAccepted):
                return _signin_page(client, transaction, username=username,
                                    error="The user name or password is incorrect.")
            if outcome.totp_required:
                next_step = Transaction(
                    id=_new_id(), request=auth_request, csrf=secrets.token_urlsafe(32),
                    exp=transaction.exp, step="totp", user_id=outcome.user_id,
                    auth_time=outcome.auth_time)
                response = _signin_page(client, next_step)
                response.set_cookie(_transaction_cookie(services, next_step))
                return response
            return await self._issue(services, client, auth_request, outcome.user_id,
                                     outcome.auth_time, mfa_verified=False)

        assert transaction.user_id is not None and transaction.auth_time is not None
        # Claimed before the code is checked, so that parallel posts of one cookie cannot all
        # be checked. A replayed cookie starts the sign-in again, from the password.
        if not await services.store.claim_once(f"signin:step:{transaction.id}",
                                               transaction.exp, now):
            restart = Transaction(id=_new_id(), request=auth_request,
                                  csrf=secrets.token_urlsafe(32), exp=transaction.exp)
            response = _signin_page(client, restart, status_code=409, error=(
                "This verification page was already used. Please sign in again."))
            response.set_cookie(_transaction_cookie(services, restart))
            return response
        totp_outcome = await check_totp(
            services.store, services.totp, services.events, seeds=services.secret_sealer,
            user_id=transaction.user_id,
            code=field("code"), client_ip=client_ip, now=now, policy=policy)
        if isinstance(totp_outcome, TotpAccepted):
            return await self._issue(services, client, auth_request, transaction.user_id,
                                     transaction.auth_time, mfa_verified=True)
        # Another try needs another transaction: this one is spent.
        retry = msgspec.structs.replace(transaction, id=_new_id(), csrf=secrets.token_urlsafe(32))
        if isinstance(totp_outcome, Throttled):
            response = _signin_page(client, retry, error=_throttled_message(totp_outcome),
                                    status_code=429, retry_after=totp_outcome.retry_after)
        else:
            response = _signin_page(client, retry,
                                    error="The code is incorrect or was already used.")
        response.set_cookie(_transaction_cookie(services, retry))
        return response

    async def _issue(
        self, services: Services, client: Client, auth_request: AuthorizationRequest,
        user_id: str, auth_time: int, *, mfa_verified: bool,
    ) -> Response[Any]:
        try:
            code = await create_authorization_code(
                services.oauth, client=client, redirect_uri=auth_request.redirect_uri,
                scope=auth_request.scope, user_id=user_id, nonce=auth_request.nonce,
                code_challenge=auth_request.code_challenge,
                code_challenge_method=auth_request.code_challenge_method,
                auth_time=auth_time, mfa_verified=mfa_verified,
                resources=auth_request.resources)
        except OAuthError as exc:
            # The client's registration changed during the sign-in; the URI is still trusted
            # only if it is still registered.
            if not redirect_uri_registered(client.redirect_uris, auth_request.redirect_uri):
                return _error_page("Invalid request", exc.description)
            return _error_redirect(services, RedirectError(
                auth_request.redirect_uri, exc.error, exc.description, auth_request.state))
        return _redirect(redirect_location(auth_request.redirect_uri, {
            "code": code, "state": auth_request.state, "iss": services.settings.issuer,
        }), services)


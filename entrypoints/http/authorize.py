"""``GET``/``POST /oauth/authorize`` and the plain ``GET``/``POST /signin`` page.

The request is validated first (``domain.authorization_request``). Then the browser's
session (``entrypoints.http.session_cookie``) decides what comes next
(``domain.sso.next_step``): a code at once (single sign-on), the sign-in pages
(``entrypoints.http.signin_steps``), a second factor for a password-only session, or the
consent page (``entrypoints.http.consent``). A sign-in opens a session, or renews the one
of the same user; another user's session is ended first (reason ``switch_user``).

Every code is recorded as a grant of the session (so a logout can revoke it) and, for a
client that is not ``first_party``, under the user's consent (so withdrawing it can);
when the consent is gone by then, the user is asked again.

``/signin?return_to=/local/path`` runs the same sign-in steps without an authorization
request and goes back to the local path.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post

from domain.authorization_request import (
    PROMPT_NONE,
    AuthorizationRequest,
    RedirectError,
    ShowError,
    redirect_location,
    validate_authorization_request,
)
from domain.clients import Client
from domain.errors import DomainError, NotFound
from domain.logout import end_session
from domain.oauth import GRANT_ID_PREFIX, OAuthError, create_authorization_code
from domain.redirects import redirect_uri_registered
from domain.sessions import Session, SessionGrant, idle_expiry, open_session, reauthenticate
from domain.sso import AskConsent, Authorized, SignIn, Step, StepUp, Unmet, next_step
from entrypoints.http.consent import ALLOW, DENY, SWITCH_USER, consent_page
from entrypoints.http.services import Services, ServicesDependency
from entrypoints.http.session_cookie import current_session, session_cookie
from entrypoints.http.signin_steps import (
    AUTHORIZE_PATH,
    MAX_FIELD,
    MAX_PASSKEY_FIELD,
    PASSKEY_FIELD,
    SCOPE_DESCRIPTIONS,
    SIGNIN_PATH,
    SignedIn,
    Transaction,
    credentials_step,
    domain_error_page,
    error_page,
    expired_page,
    new_transaction,
    open_transaction,
    second_factor_page,
    see_other,
    signin_page,
    transaction_cookie,
)

__all__ = ["PATH", "SCOPE_DESCRIPTIONS", "AuthorizeController", "SigninController",
           "reauthentication_url", "signin_url"]

PATH = AUTHORIZE_PATH
#: Where the plain sign-in page goes without a ``return_to``.
DEFAULT_RETURN_TO = "/account"
_MAX_RETURN_TO = 2048

_NOTICES = {
    "prompt": "Please sign in again to continue.",
    "max_age": "Your sign-in is too old for this application: please sign in again.",
    "id_token_hint": "The application expects another account: please sign in.",
    "reauthenticate": "For your security, please sign in again to make this change.",
}
_STEP_UP_NOTICE = "This application asks for a second verification step."


def signin_url(return_to: str) -> str:
    """The plain sign-in page that comes back to the local path ``return_to``."""
    return f"{SIGNIN_PATH}?return_to={quote(return_to, safe='/')}"


def reauthentication_url(return_to: str) -> str:
    """The plain sign-in page even for a signed-in user (``prompt=login``): signing in
    again renews the session's ``auth_time`` (and ``amr``), then goes back to
    ``return_to``. For pages that need a recent sign-in (``/account`` changes)."""
    return f"{signin_url(return_to)}&prompt=login"


def local_path(value: str | None) -> str | None:
    """``value`` when it is a path on this server (one leading ``/``), else None.

    ``//host`` and ``/\\host`` are other hosts to a browser; control characters could
    split the Location header; a scheme is not a local path.
    """
    if not value or len(value) > _MAX_RETURN_TO or not value.startswith("/"):
        return None
    if value.startswith("//") or "\\" in value:
        return None
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return None
    return value


def _multi(items: list[tuple[str, Any]]) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in items:
        if isinstance(value, str):
            params.setdefault(key, []).append(value)
    return params


def _field_reader(fields: dict[str, list[str]]) -> Callable[[str], str]:
    def field(name: str) -> str:
        values = fields.get(name, [])
        limit = MAX_PASSKEY_FIELD if name == PASSKEY_FIELD else MAX_FIELD
        return values[0][:limit] if len(values) == 1 else ""

    return field


def _done(response: Response[Any], services: Services, transaction: Transaction | None,
          *, plain: bool = False, session_id: str | None = None) -> Response[Any]:
    """Clear the finished transaction's cookie; set the new session's."""
    response.set_cookie(transaction_cookie(
        services, None, plain=plain if transaction is None else transaction.request is None))
    if session_id is not None:
        response.set_cookie(session_cookie(services, session_id))
    return response


def _error_redirect(
    services: Services, error: RedirectError, transaction: Transaction | None = None,
    session_id: str | None = None,
) -> Response[Any]:
    return _done(see_other(redirect_location(error.redirect_uri, {
        "error": error.error,
        "error_description": error.description,
        "state": error.state,
        "iss": services.settings.issuer,
    })), services, transaction, session_id=session_id)


async def _user_name(services: Services, user_id: str) -> str:
    try:
        return (await services.store.get_user(user_id)).user_name
    except NotFound:
        return ""


class _Flow:
    """One authorization request being answered (the steps after validation)."""

    def __init__(self, request: Request[Any, Any, Any], services: Services, client: Client,
                 auth_request: AuthorizationRequest) -> None:
        self.request = request
        self.services = services
        self.client = client
        self.auth_request = auth_request

    def fail(self, error: str, description: str,
             session_id: str | None = None) -> Response[Any]:
        a = self.auth_request
        return _error_redirect(self.services, RedirectError(
            a.redirect_uri, error, description, a.state), None, session_id)

    async def proceed(
        self, session: Session | None, step: Step, session_id: str | None = None
    ) -> Response[Any]:
        """Answer ``step`` (``session_id``: a session just opened, for its cookie)."""
        services, client, auth_request = self.services, self.client, self.auth_request
        if isinstance(step, Unmet):
            return self.fail(step.error, step.description, session_id)
        if isinstance(step, Authorized):
            assert session is not None
            return await self.issue(session, session_id)
        response: Response[Any]
        if isinstance(step, SignIn):
            username = auth_request.login_hint or ""
            if not username and session is not None and step.reason in ("prompt", "max_age"):
                username = await _user_name(services, session.user_id)
            transaction = new_transaction(services, request=auth_request)
            response = signin_page(services, client, transaction, username=username[:256],
                                   notice=_NOTICES.get(step.reason))
        elif isinstance(step, StepUp):
            assert session is not None
            transaction = new_transaction(services, request=auth_request, step="totp",
                                          user_id=session.user_id, sid=session.sid,
                                          factors=step.factors)
            response = await second_factor_page(services, client, transaction,
                                                notice=_STEP_UP_NOTICE)
        else:
            assert isinstance(step, AskConsent) and session is not None
            transaction = new_transaction(services, request=auth_request, step="consent",
                                          user_id=session.user_id, sid=session.sid,
                                          scopes=step.scopes)
            response = consent_page(
                services, client, transaction,
                user_name=await _user_name(services, session.user_id),
                allowed_before=tuple(s for s in auth_request.scopes if s not in step.scopes))
        if session_id is not None:
            response.set_cookie(session_cookie(services, session_id))
        return response

    async def issue(self, session: Session, session_id: str | None = None) -> Response[Any]:
        """A code from ``session``, recorded as a grant of the session and of the consent."""
        services, client, auth_request = self.services, self.client, self.auth_request
        store = services.store
        now = services.clock.now()
        grant_id = services.token_generator.new(GRANT_ID_PREFIX)
        # Recorded before the code exists, so a logout from here on revokes what it gives.
        recorded = await store.add_session_grant(
            session.id_hash, SessionGrant(client.client_id, grant_id),
            idle_expiry(session, now, services.session_policy), now)
        if recorded is None:  # the session ended meanwhile (a logout elsewhere)
            return await self.proceed(None, await next_step(
                store, auth_request, client, None, now))
        if not client.first_party and not await store.record_consent_grant(
                session.user_id, client.client_id, grant_id,
                session.auth_time + services.oauth.policy.refresh_max_lifetime_seconds, now):
            # The consent was withdrawn since it was checked: ask again.
            if PROMPT_NONE in auth_request.prompt:
                return self.fail("consent_required", "the user must allow the requested scopes",
                                 session_id)
            return await self.proceed(recorded, AskConsent(auth_request.scopes), session_id)
        try:
            code = await create_authorization_code(
                services.oauth, client=client, redirect_uri=auth_request.redirect_uri,
                scope=auth_request.scope, user_id=session.user_id, nonce=auth_request.nonce,
                code_challenge=auth_request.code_challenge,
                code_challenge_method=auth_request.code_challenge_method,
                auth_time=session.auth_time, mfa_verified=session.mfa_verified,
                sid=session.sid, acr=session.acr, amr=session.amr, grant_id=grant_id,
                resources=auth_request.resources)
        except OAuthError as exc:
            # The client's registration changed during the sign-in; the URI is still trusted
            # only if it is still registered.
            if not redirect_uri_registered(client.redirect_uris, auth_request.redirect_uri):
                return _done(error_page("Invalid request", exc.description), services, None,
                             session_id=session_id)
            return self.fail(exc.error, exc.description, session_id)
        return _done(see_other(redirect_location(auth_request.redirect_uri, {
            "code": code, "state": auth_request.state, "iss": services.settings.issuer,
        })), services, None, session_id=session_id)


async def _establish_session(
    request: Request[Any, Any, Any], services: Services, signed_in: SignedIn
) -> tuple[Session, str]:
    """The session of the user who has just signed in, and its new cookie value (a
    renewed session of the same user gets a new one too: see
    :func:`domain.sessions.reauthenticate`)."""
    now = services.clock.now()
    policy = services.session_policy
    current = await current_session(request, services)
    if current is not None and current.user_id == signed_in.user_id:
        renewed = await reauthenticate(
            services.store, services.token_generator, current,
            auth_time=signed_in.auth_time, amr=signed_in.amr, now=now, policy=policy)
        if renewed is not None:
            session_id, session = renewed
            services.events.emit("session_reauthenticated", sid=session.sid,
                                 user_id=session.user_id, amr=" ".join(session.amr))
            return session, session_id
    elif current is not None:
        await end_session(services.logout, current.id_hash, reason="switch_user")
    session_id, session = await open_session(
        services.store, services.token_generator, user_id=signed_in.user_id,
        auth_time=signed_in.auth_time, amr=signed_in.amr, now=now, policy=policy)
    services.events.emit("session_started", sid=session.sid, user_id=session.user_id,
                         amr=" ".join(session.amr))
    return session, session_id


async def _handle_step(
    request: Request[Any, Any, Any], services: Services, fields: dict[str, list[str]]
) -> Response[Any]:
    """A form of one of the pages (sign-in, TOTP, consent), for either endpoint."""
    field = _field_reader(fields)
    transaction = open_transaction(request, services)
    if transaction is None:
        return expired_page()
    if not hmac.compare_digest(field("csrf_token").encode(), transaction.csrf.encode()):
        return error_page("Invalid form", "The form was not the one we sent; "
                          "please start again.", 403)
    auth_request = transaction.request
    client: Client | None = None
    if auth_request is not None:
        client = await services.clients.find(auth_request.client_id)
        if client is None:
            return error_page("Invalid request",
                              "The application that sent you here is not registered.")
        if field("action") in ("cancel", DENY):
            denial = ("the user denied access" if transaction.step == "consent"
                      else "the user cancelled the sign-in")
            return _error_redirect(services, RedirectError(
                auth_request.redirect_uri, "access_denied", denial, auth_request.state),
                transaction)
    if field("step") != transaction.step:
        return error_page("Invalid form", "This page is out of date; please start again.", 409)
    if transaction.step == "consent":
        assert auth_request is not None and client is not None
        return await _consent_step(request, services, _Flow(request, services, client,
                                                            auth_request), transaction, field)

    outcome = await credentials_step(request, services, client, transaction, field)
    if not isinstance(outcome, SignedIn):
        return outcome
    if transaction.sid is not None:
        # A step-up: it counts only in the session it was asked for.
        current = await current_session(request, services)
        if current is None or current.sid != transaction.sid or current.user_id != outcome.user_id:
            return expired_page()
        renewed = await reauthenticate(
            services.store, services.token_generator, current, auth_time=outcome.auth_time,
            amr=outcome.amr, now=services.clock.now(), policy=services.session_policy)
        if renewed is None:
            return expired_page()
        session_id, session = renewed
        services.events.emit("session_reauthenticated", sid=session.sid,
                             user_id=session.user_id, amr=" ".join(session.amr))
    else:
        session, session_id = await _establish_session(request, services, outcome)
    if auth_request is None:
        assert transaction.return_to is not None
        return _done(see_other(transaction.return_to), services, transaction,
                     session_id=session_id)
    assert client is not None
    flow = _Flow(request, services, client, auth_request)
    step = await next_step(services.store, auth_request, client, session,
                           services.clock.now(), signed_in_now=True)
    return await flow.proceed(session, step, session_id)


async def _consent_step(
    request: Request[Any, Any, Any], services: Services, flow: _Flow,
    transaction: Transaction, field: Callable[[str], str],
) -> Response[Any]:
    session = await current_session(request, services)
    action = field("action")
    if session is None or session.sid != transaction.sid or session.user_id != transaction.user_id:
        # Signed out (or in as someone else) since the page was shown: start again.
        return await flow.proceed(session, await next_step(
            services.store, flow.auth_request, flow.client, session, services.clock.now()))
    if action == SWITCH_USER:
        await end_session(services.logout, session.id_hash, reason="switch_user")
        restart = new_transaction(services, request=flow.auth_request)
        response = signin_page(services, flow.client, restart)
        response.set_cookie(session_cookie(services, None))
        return response
    if action != ALLOW:
        return error_page("Invalid form", "The form was not the one we sent; "
                          "please start again.", 400)
    if not flow.client.first_party:
        await services.store.grant_consent(session.user_id, flow.client.client_id,
                                           flow.auth_request.scopes, services.clock.now())
        services.events.emit("consent_granted", client_id=flow.client.client_id,
                             user_id=session.user_id, scope=" ".join(transaction.scopes))
    return await flow.issue(session)


class AuthorizeController(Controller):
    """The authorization endpoint (RFC 6749 section 3.1, OpenID Connect Core 3.1.2)."""

    path = PATH
    include_in_schema = False
    exception_handlers = {DomainError: lambda request, exc: domain_error_page(exc)}

    @get(operation_id="authorize")
    async def authorize(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDependency,
    ) -> Response[Any]:
        """Validate an authorization request; answer it from the session, or show a page."""
        return await self._start(request, services,
                                 _multi(list(request.query_params.multi_items())))

    @post(operation_id="authorizeSubmit", status_code=200)
    async def submit(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDependency,
    ) -> Response[Any]:
        """A page's form (with ``csrf_token``), or an authorization request by POST."""
        form = await request.form()
        fields = _multi(list(form.multi_items()))
        if "csrf_token" not in fields:
            return await self._start(request, services, fields)
        return await _handle_step(request, services, fields)

    async def _start(self, request: Request[Any, Any, Any], services: Services,
                     params: dict[str, list[str]]) -> Response[Any]:
        outcome = await validate_authorization_request(
            services.clients, params, signer=services.signer, issuer=services.settings.issuer,
            resource_servers=services.oauth.resources)
        if isinstance(outcome, ShowError):
            return error_page("Invalid request", outcome.description)
        if isinstance(outcome, RedirectError):
            return _error_redirect(services, outcome)
        client = await services.clients.find(outcome.client_id)
        assert client is not None  # validated just above
        session = await current_session(request, services)
        step = await next_step(services.store, outcome, client, session, services.clock.now())
        return await _Flow(request, services, client, outcome).proceed(session, step)


class SigninController(Controller):
    """The plain sign-in page: open a session, then go back to a page of this server."""

    path = SIGNIN_PATH
    include_in_schema = False
    exception_handlers = {DomainError: lambda request, exc: domain_error_page(exc)}

    @get(operation_id="signin")
    async def show(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDependency,
    ) -> Response[Any]:
        """The sign-in page for ``return_to`` (straight back there when signed in)."""
        values = request.query_params.getall("return_to", [])
        if len(values) > 1:
            return error_page("Invalid request", "return_to must not be repeated.")
        return_to = local_path(values[0]) if values else DEFAULT_RETURN_TO
        if return_to is None:
            return error_page("Invalid request",
                              "return_to must be a path on this server, starting with /.")
        prompts = request.query_params.getall("prompt", [])
        if prompts not in ([], ["login"]):
            return error_page("Invalid request", "prompt may only be login.")
        session = await current_session(request, services)
        if session is not None and not prompts:
            return see_other(return_to)
        transaction = new_transaction(services, return_to=return_to)
        if session is None:
            return signin_page(services, None, transaction)
        return signin_page(services, None, transaction,
                           username=await _user_name(services, session.user_id),
                           notice=_NOTICES["reauthenticate"])

    @post(operation_id="signinSubmit", status_code=200)
    async def submit(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDependency,
    ) -> Response[Any]:
        """A step of the sign-in started by :meth:`show`."""
        form = await request.form()
        return await _handle_step(request, services, _multi(list(form.multi_items())))

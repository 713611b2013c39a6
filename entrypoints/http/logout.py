"""``GET``/``POST /oauth/logout``: OpenID Connect RP-Initiated Logout 1.0.

A relying party sends the browser here with ``id_token_hint`` (an ID token we issued;
expired is fine), ``client_id``, ``post_logout_redirect_uri`` and ``state``
(``ui_locales`` and ``logout_hint`` are accepted and ignored). What happens:

- The request is *attributed* when the hint verifies (our signature and issuer), its
  ``sub`` is the signed-in user and, when it names one, its ``sid`` is this browser's
  session. Then the session ends at once (``domain.logout.end_session``: the grants issued
  in it are revoked per client policy and every client with a ``backchannel_logout_uri``
  is told, in the background).
- Otherwise (no valid hint, only a ``client_id``, a hint of another user or session) the
  user is asked first: "Sign out of <issuer>?", a form whose CSRF token is sealed in a
  short ``SameSite=Lax`` cookie bound to this browser (as the sign-in transaction is), so a
  cross-site page can neither read the token nor send the cookie with its POST. A ``GET``
  never ends a session that was not attributed.
- Then the browser goes to ``post_logout_redirect_uri`` with ``state``, when that URI is
  registered, exactly, for the client the hint's ``aud`` (or ``client_id``) names.
  Anything else is never redirected to: the signed-out page says why instead.

Signing out of a browser that has no session ends in the same page or redirect, so the
endpoint is idempotent. ``client_id`` and the hint's ``aud`` must agree when both are sent
(section 2); a request that breaks that, or repeats a parameter, is a 400 page.

The session cookie is ``SameSite=Lax``, so a relying party's cross-site form POST arrives
without it; such a POST is answered with a redirect to the same request by ``GET`` (a
top-level navigation, which carries the cookie) rather than read as "already signed out".
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.status_codes import HTTP_303_SEE_OTHER

from domain.authorization_request import redirect_location
from domain.clients import Client
from domain.errors import DomainError, InvalidValue, NotFound
from domain.logout import end_session
from domain.sessions import Session
from domain.text import is_storable
from entrypoints.http.html import page
from entrypoints.http.sealed_cookie import SealedCookie
from entrypoints.http.services import Services, ServicesDependency
from entrypoints.http.session_cookie import current_session, session_cookie, session_id_of

PATH = "/oauth/logout"
#: How long the confirmation page may wait for its answer.
CONFIRMATION_SECONDS = 600
#: The request parameters (RP-Initiated Logout 1.0 section 2) this endpoint reads.
READ = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state")
#: Those it passes on (a POST answered by a GET) but ignores.
PARAMETERS = (*READ, "logout_hint", "ui_locales")
_MAX_FIELD = 2048
_MAX_HINT = 16 * 1024

NOT_ATTRIBUTED = ("We could not tell which application sent you here, so you were not sent "
                  "back to it.")
UNREGISTERED_REDIRECT = ("The application asked to send you back to an address that is not "
                         "registered for it, so you were not sent there.")
UNKNOWN_CLIENT = ("The application that sent you here is not registered, so you were not "
                  "sent back to it.")


class Confirmation(msgspec.Struct, frozen=True, kw_only=True):
    """A sign-out waiting for the user's answer, sealed in the browser's cookie.
    ``purpose`` keeps a sign-in transaction (sealed with the same key) from passing for
    one."""

    purpose: Literal["logout"]
    csrf: str
    exp: int
    client_id: str | None = None
    redirect_uri: str | None = None
    state: str | None = None
    problem: str | None = None




@dataclass(frozen=True, slots=True)
class LogoutRequest:
    """A logout request as read: who sent it and where the browser may go afterwards."""

    client: Client | None
    #: The claims of a valid ``id_token_hint`` (our signature and issuer, a single
    #: audience, a subject), None when there was none or it did not verify.
    hint: dict[str, Any] | None
    redirect_uri: str | None
    state: str | None
    #: Why the browser is not sent back, for the signed-out page.
    problem: str | None

    def attributes(self, session: Session) -> bool:
        """Whether the hint shows this session's user asked the client to sign out."""
        if self.hint is None or self.hint.get("sub") != session.user_id:
            return False
        sid = self.hint.get("sid")
        return sid is None or sid == session.sid


class BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message










def _multi(items: list[tuple[str, Any]]) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in items:
        if isinstance(value, str):
            params.setdefault(key, []).append(value)
    return params


def _single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name, [])
    if len(values) > 1:
        raise BadRequest(f"The parameter {name} was sent more than once.")
    if not values or values[0] == "":
        return None
    value = values[0]
    if len(value) > (_MAX_HINT if name == "id_token_hint" else _MAX_FIELD) or not is_storable(
            value):
        raise BadRequest(f"The parameter {name} is too long or holds a character that is not "
                         "allowed.")
    return value


def _hint_claims(services: Services, hint: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """The hint's claims and its client id, when it is an ID token of ours."""
    if hint is None:
        return None, None
    claims = services.signer.verify(hint)
    if claims is None or claims.get("iss") != services.settings.issuer:
        return None, None
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    if not isinstance(aud, str) or not aud or not isinstance(claims.get("sub"), str):
        return None, None
    return claims, aud


async def read_logout_request(
    services: Services, params: dict[str, list[str]]
) -> LogoutRequest:
    """Check the parameters; raises :class:`BadRequest` for a request to refuse."""
    values = {name: _single(params, name) for name in READ}
    hint, hint_client_id = _hint_claims(services, values["id_token_hint"])
    client_id = values["client_id"]
    if hint_client_id is not None and client_id is not None and client_id != hint_client_id:
        raise BadRequest("The client_id does not match the application the id_token_hint "
                         "was issued to.")
    client_id = hint_client_id or client_id
    client = await services.clients.find(client_id) if client_id is not None else None
    wanted = values["post_logout_redirect_uri"]
    redirect_uri, problem = None, None
    if wanted is not None:
        if client_id is None:
            problem = NOT_ATTRIBUTED
        elif client is None:
            problem = UNKNOWN_CLIENT
        elif wanted not in client.post_logout_redirect_uris:
            problem = UNREGISTERED_REDIRECT
        else:
            redirect_uri = wanted
    return LogoutRequest(client=client, hint=hint, redirect_uri=redirect_uri,
                         state=values["state"], problem=problem)


def _no_store(response: Response[Any]) -> Response[Any]:
    response.headers.update({"Cache-Control": "no-store", "Pragma": "no-cache",
                             "Referrer-Policy": "no-referrer"})
    return response


def _see_other(location: str) -> Response[None]:
    return _no_store(Response(None, status_code=HTTP_303_SEE_OTHER,
                              headers={"Location": location}))


def _error_page(title: str, message: str, status_code: int = 400,
                retry_after: int | None = None) -> Response[str]:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return page("error.html", status_code, headers, title=title, message=message,
                retry_after=retry_after)


def _domain_error_page(exc: DomainError) -> Response[str]:
    if isinstance(exc, InvalidValue):
        return _error_page("Invalid request", "The request contains a value that is not "
                           "allowed.")
    return _error_page("Service unavailable", "Signing out is temporarily unavailable. "
                       "Please try again shortly.", 503, retry_after=1)


def _finish(
    services: Services, redirect_uri: str | None, state: str | None, problem: str | None
) -> Response[Any]:
    """The end of every sign-out, whether a session was ended now or before."""
    response: Response[Any]
    if redirect_uri is not None:
        response = _see_other(redirect_location(redirect_uri, {"state": state})
                              if state is not None else redirect_uri)
    else:
        response = page("signed_out.html", title="You are signed out",
                        issuer=services.settings.issuer, problem=problem)
    response.set_cookie(session_cookie(services, None))
    response.set_cookie(_CONFIRMATION.cookie(services, None))
    return response


async def _user_name(services: Services, user_id: str) -> str | None:
    try:
        return (await services.store.get_user(user_id)).user_name
    except NotFound:
        return None


async def _confirmation_page(
    services: Services, session: Session, logout: LogoutRequest, *,
    error: str | None = None, status_code: int = 200,
) -> Response[str]:
    confirmation = Confirmation(
        purpose="logout", csrf=secrets.token_urlsafe(32),
        exp=services.clock.now() + CONFIRMATION_SECONDS,
        client_id=logout.client.client_id if logout.client else None,
        redirect_uri=logout.redirect_uri, state=logout.state, problem=logout.problem)
    other_account = logout.hint is not None and not logout.attributes(session)
    response = page(
        "logout.html", status_code, form_target=logout.redirect_uri, action=PATH,
        issuer=services.settings.issuer, csrf_token=confirmation.csrf,
        client_name=logout.client.name if logout.client else None,
        user_name=await _user_name(services, session.user_id),
        other_account=other_account, error=error)
    response.set_cookie(_CONFIRMATION.cookie(services, confirmation))
    return response


class LogoutController(Controller):
    """The end-session endpoint (``end_session_endpoint`` in discovery)."""

    path = PATH
    include_in_schema = False
    exception_handlers = {DomainError: lambda request, exc: _domain_error_page(exc)}

    @get(operation_id="endSession")
    async def logout(
        self, request: Request[Any, Any, Any], services: ServicesDependency
    ) -> Response[Any]:
        """A relying party's logout request: end an attributed session, or ask first."""
        return await self._request(request, services,
                                   _multi(list(request.query_params.multi_items())))

    @post(operation_id="endSessionSubmit", status_code=200)
    async def submit(
        self, request: Request[Any, Any, Any], services: ServicesDependency
    ) -> Response[Any]:
        """The confirmation form (``csrf_token``), or a logout request by POST."""
        fields = _multi(list((await request.form()).multi_items()))
        if "csrf_token" in fields:
            return await self._confirm(request, services, fields)
        if session_id_of(request, services) is None:
            # Perhaps only withheld (SameSite=Lax on a cross-site POST): ask again by GET.
            query = urlencode([(k, v) for k in PARAMETERS for v in fields.get(k, [])])
            return _see_other(f"{PATH}?{query}" if query else PATH)
        return await self._request(request, services, fields)

    async def _request(
        self, request: Request[Any, Any, Any], services: Services,
        params: dict[str, list[str]],
    ) -> Response[Any]:
        try:
            logout = await read_logout_request(services, params)
        except BadRequest as exc:
            return _error_page("Invalid sign-out request", exc.message)
        session = await current_session(request, services)
        if session is not None:
            if not logout.attributes(session):
                return await _confirmation_page(services, session, logout)
            await end_session(services.logout, session.id_hash, reason="logout")
        return _finish(services, logout.redirect_uri, logout.state, logout.problem)

    async def _confirm(
        self, request: Request[Any, Any, Any], services: Services,
        fields: dict[str, list[str]],
    ) -> Response[Any]:
        def field(name: str) -> str:
            values = fields.get(name, [])
            return values[0][:_MAX_FIELD] if len(values) == 1 else ""

        confirmation = _CONFIRMATION.read(request, services)
        session = await current_session(request, services)
        if confirmation is None:
            if session is None:
                return _finish(services, None, None, None)
            expired = LogoutRequest(client=None, hint=None, redirect_uri=None, state=None,
                                    problem=None)
            return await _confirmation_page(
                services, session, expired, status_code=400,
                error="This sign-out page had expired or was opened in another browser "
                      "window. Confirm again to sign out.")
        if not hmac.compare_digest(field("csrf_token").encode(), confirmation.csrf.encode()):
            return _error_page("Invalid form", "The form was not the one we sent; "
                               "please start again.", 403)
        if field("action") == "cancel":
            response = page("signed_out.html", title="You are still signed in",
                            issuer=services.settings.issuer, problem=None, still_signed_in=True)
            response.set_cookie(_CONFIRMATION.cookie(services, None))
            return response
        if session is not None:
            await end_session(services.logout, session.id_hash, reason="logout")
        redirect_uri, problem = confirmation.redirect_uri, confirmation.problem
        if redirect_uri is not None:
            # The registration may have changed while the page was shown.
            client = (await services.clients.find(confirmation.client_id)
                      if confirmation.client_id else None)
            if client is None or redirect_uri not in client.post_logout_redirect_uris:
                redirect_uri, problem = None, UNREGISTERED_REDIRECT
        return _finish(services, redirect_uri, confirmation.state, problem)


#: The confirmation page's state (its CSRF token and the request it confirms).
_CONFIRMATION = SealedCookie("logout", Confirmation, seconds=CONFIRMATION_SECONDS, path=PATH)

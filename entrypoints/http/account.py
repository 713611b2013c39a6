"""``/account``: the signed-in user's own page: how they sign in (email, password, TOTP,
passkeys, recovery codes), their sessions, their consents, sign out.

The forms of the sign-in methods have modules of their own (``account_*.py``), built on the
helpers here (:func:`open_account_form`, :func:`back_to_account`, :func:`recent_sign_in`).

The user is the one of the browser's session cookie (``session_cookie.current_session``);
without a live session the page links to the plain sign-in page. Every change is a form
POSTed under ``/account/...`` and answered ``303 See Other`` back to ``/account`` with a
status message chosen from a fixed list (nothing from the request is reflected).

CSRF: each form carries a token that is an HMAC of the session's ``id_hash`` under a key
derived from the signing key (``entrypoints.signing.load_account_form_key``), compared in
constant time. A cross-site page can neither read the token nor, the session cookie being
``SameSite=Lax``, send the cookie with its POST; the token is worth nothing with another
session, and every instance that shares the signing key checks it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.status_codes import HTTP_303_SEE_OTHER

from domain.account import end_own_session, withdraw_consent
from domain.client_metadata import MAX_CLIENT_ID_LENGTH
from domain.email_verification import email_verified, primary_email
from domain.entities import User
from domain.errors import DomainError, InvalidValue, NotFound
from domain.logout import end_session
from domain.sessions import AMR_HWK, AMR_OTP, AMR_PASSWORD, AMR_SWK, SID_PREFIX, Session
from entrypoints.http.authorize import SCOPE_DESCRIPTIONS, reauthentication_url
from entrypoints.http.html import page
from entrypoints.http.services import Services, ServicesDependency
from entrypoints.http.session_cookie import current_session, session_cookie

PATH = "/account"
SIGNIN_URL = "/signin?return_to=/account"

#: The status messages a redirect back to the page may name (``?done=``).
MESSAGES = {
    "signed_out": "You are signed out of this browser.",
    "session_ended": "That session is signed out. Applications it was used for are told so.",
    "session_gone": "That session had already ended.",
    "consent_withdrawn": "Access withdrawn. The application's tokens for your account no "
                         "longer work; it will ask for your permission again if you use it.",
    "consent_gone": "That application had no access to withdraw.",
    "no_session": "You are not signed in any more (your session ended).",
    "password_changed": "Your password is changed. You are signed out everywhere else, and "
                        "applications ask you to sign in again.",
    "password_set": "Your password is set. You are signed out everywhere else, and "
                    "applications ask you to sign in again.",
    "totp_added": "Your authenticator app is set up: signing in now asks for a code from it.",
    "totp_replaced": "Your new authenticator app is set up; codes of the old one no longer "
                     "work.",
    "totp_removed": "The authenticator app is removed.",
    "totp_removed_codes_cleared": "The authenticator app is removed. It was your last second "
                                  "factor, so your recovery codes no longer work either: you "
                                  "sign in with your password alone.",
    "totp_gone": "You had no authenticator app to remove.",
    "totp_setup_expired": "The set-up of your authenticator app expired (it lasts 10 "
                          "minutes). Nothing was changed: please start again.",
    "totp_setup_stale": "Your authenticator app was changed elsewhere meanwhile, so this "
                        "set-up no longer applies. Nothing was changed: please start again.",
    # entrypoints/http/account_email.py
    "email_changed": "Email address changed. We sent a verification link to the new "
                     "address; it is unverified until you use the link.",
    "email_changed_unverifiable": "Email address changed. It cannot be verified: this "
                                  "server sends no email.",
    "email_unchanged": "That is your email address already; nothing was changed.",
    "email_reauthenticate": "For your security, sign in again before you change your email "
                            "address; nothing was changed.",
    "verification_sent": "We sent a new verification link to your email address. Earlier "
                         "links no longer work.",
    "email_verified": "Your email address is verified already.",
    "email_missing": "Your account has no email address to verify.",
    "verification_unavailable": "Email verification is unavailable: this server sends no "
                                "email.",
    "passkey_added": "Passkey added. You can sign in with it now.",
    "passkey_renamed": "Passkey renamed.",
    "passkey_removed": "Passkey removed. It no longer signs you in.",
    "passkey_gone": "That passkey is not on your account (any more).",
}
#: A reason in the ``session_ended`` security event: the user ended a session (from this
#: page, not necessarily in the browser that was signed out).
REASON_ACCOUNT = "account"
REASON_LOGOUT = "logout"

_SID = re.compile(r"[A-Za-z0-9_\-]{1,124}")
_CLIENT_ID = re.compile(r"[\x21-\x7e]+")
_AMR_NAMES = {AMR_PASSWORD: "password", AMR_OTP: "one-time code",
              AMR_HWK: "passkey", AMR_SWK: "passkey"}


def form_token(services: Services, session: Session) -> str:
    """The CSRF token of ``session``'s forms."""
    mac = hmac.new(services.account_form_key, b"account-form:" + session.id_hash.encode(),
                   hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def back_to_account(done: str, clear_cookie_of: Services | None = None) -> Response[None]:
    response: Response[None] = Response(
        None, status_code=HTTP_303_SEE_OTHER,
        headers={"Location": f"{PATH}?done={done}", "Cache-Control": "no-store",
                 "Pragma": "no-cache", "Referrer-Policy": "no-referrer"})
    if clear_cookie_of is not None:
        response.set_cookie(session_cookie(clear_cookie_of, None))
    return response


def account_error_page(title: str, message: str, status_code: int,
                retry_after: int | None = None) -> Response[str]:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return page("account_error.html", status_code, headers, title=title, message=message)


def account_domain_error_page(exc: DomainError) -> Response[str]:
    if isinstance(exc, InvalidValue):
        return account_error_page("Invalid request",
                                  "The form contains a value that is not allowed.", 400)
    return account_error_page("Service unavailable", "Your account page is temporarily "
                              "unavailable. Please try again shortly.", 503, retry_after=1)


def _time(seconds: int) -> dict[str, str]:
    moment = datetime.fromtimestamp(seconds, UTC)
    return {"iso": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "text": moment.strftime("%Y-%m-%d %H:%M UTC")}


def _method(amr: tuple[str, ...]) -> str:
    names = [_AMR_NAMES[m] for m in amr if m in _AMR_NAMES]
    return " and ".join(names) if names else "unknown"


class _Names:
    """Client names for one page, each client looked up once."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._names: dict[str, str] = {}

    async def of(self, client_id: str) -> str:
        if client_id not in self._names:
            client = await self._services.clients.find(client_id)
            self._names[client_id] = (client.name or client_id) if client is not None else (
                f"{client_id} (no longer registered)")
        return self._names[client_id]


async def signed_in_user(services: Services, session: Session | None) -> User | None:
    """The session's user, or None (gone or deactivated: as good as signed out)."""
    if session is None:
        return None
    try:
        user = await services.store.get_user(session.user_id)
    except NotFound:
        return None
    return user if user.active else None


def single_field(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name, [])
    return values[0] if len(values) == 1 else None


async def read_form(request: Request[Any, Any, Any]) -> dict[str, list[str]]:
    form = await request.form()
    fields: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            fields.setdefault(key, []).append(value)
    return fields


def form_token_matches(services: Services, session: Session, fields: dict[str, list[str]]) -> bool:
    sent = single_field(fields, "csrf_token") or ""
    expected = form_token(services, session)
    return hmac.compare_digest(sent.encode("utf-8", "surrogatepass"), expected.encode())


def refused_page() -> Response[str]:
    return account_error_page("Form refused", "This form was not the one your account page sent, "
                       "so nothing was changed. Open your account page and try again.", 403)


def invalid_page(what: str) -> Response[str]:
    return account_error_page("Invalid request", f"The form's {what} is not valid; nothing was "
                       "changed.", 400)


def recovery_codes_page(codes: tuple[str, ...], *, status: str | None = None,
                        replaced: bool = False) -> Response[str]:
    """The page that shows a new set of recovery codes, the only time they are shown
    (``status``: what was just done, e.g. a factor added; ``replaced``: an old set ended)."""
    return page("recovery_codes.html", codes=list(codes), status=status, replaced=replaced)


def recent_sign_in(services: Services, session: Session) -> bool:
    """Whether the session's sign-in is recent enough to change how the user signs in
    (``MFA_RECENT_AUTH_SECONDS``): passkeys, TOTP, recovery codes, the email address."""
    return services.clock.now() - session.auth_time <= services.settings.mfa_recent_auth_seconds


class AccountForm:
    """A form POSTed from the account page, checked: the session it came with (live, of an
    active user) and its CSRF token. ``fields`` are its values by name."""

    def __init__(self, session: Session, user: User, fields: dict[str, list[str]]) -> None:
        self.session = session
        self.user = user
        self.fields = fields

    def single(self, name: str) -> str | None:
        return single_field(self.fields, name)


async def open_account_form(
    request: Request[Any, Any, Any], services: Services
) -> AccountForm | Response[Any]:
    """The checked form, or the answer to give instead: back to the page (no session) or
    403 (a token that is not this session's)."""
    fields = await read_form(request)
    session = await current_session(request, services)
    user = await signed_in_user(services, session)
    if session is None or user is None:
        return back_to_account("no_session", services)
    if not form_token_matches(services, session, fields):
        return refused_page()
    return AccountForm(session, user, fields)


async def _security(services: Services, user: User, session: Session) -> dict[str, Any]:
    """What the page shows of how the user signs in: email, TOTP, passkeys, recovery codes.
    ``recent``: whether changes to them may be made without signing in again first."""
    credentials = await services.store.get_credentials(user.id)
    passkeys = [{
        "id": p.credential_id, "name": p.name, "created": _time(p.created_at),
        "last_used": _time(p.last_used_at) if p.last_used_at is not None else None,
        "synced": p.synced,
    } for p in await services.store.list_passkeys(user.id)]
    return {
        "email": primary_email(user),
        "email_verified": email_verified(user, credentials),
        "mail": services.mailer is not None,
        "password": credentials.password_hash is not None,
        "password_min_length": services.settings.password_min_length,
        "totp": credentials.totp_confirmed and credentials.totp_secret is not None,
        "passkeys": passkeys,
        "recovery_codes_left": await services.store.count_recovery_codes(user.id),
        "recent": recent_sign_in(services, session),
        "reauthenticate_url": reauthentication_url(PATH),
    }


class AccountController(Controller):
    """The user's account page and its forms (no JavaScript, plain HTML)."""

    path = PATH
    include_in_schema = False
    exception_handlers = {DomainError: lambda request, exc: account_domain_error_page(exc)}

    @get(operation_id="account")
    async def show(self, request: Request[Any, Any, Any],
                   services: ServicesDependency) -> Response[str]:
        """The user's sessions and consents, or a link to sign in."""
        status = MESSAGES.get(request.query_params.get("done") or "")
        session = await current_session(request, services)
        user = await signed_in_user(services, session)
        if session is None or user is None:
            return page("account_signin.html", signin_url=SIGNIN_URL, status=status)
        now = services.clock.now()
        names = _Names(services)
        sessions = []
        for held in await services.store.list_sessions(user.id, now):
            sessions.append({
                "sid": held.sid, "current": held.id_hash == session.id_hash,
                "signed_in": _time(held.auth_time), "started": _time(held.created_at),
                "method": _method(held.amr),
                "applications": [await names.of(c) for c in held.clients],
            })
        consents = []
        for consent in await services.store.list_consents(user.id):
            consents.append({
                "client_id": consent.client_id, "name": await names.of(consent.client_id),
                "scopes": [{"name": s, "description": SCOPE_DESCRIPTIONS.get(s, "Access to " + s)}
                           for s in consent.scopes],
                "allowed": _time(consent.created_at),
                "updated": _time(consent.updated_at) if consent.updated_at != consent.created_at
                else None,
            })
        return page("account.html", name=user.display_name or user.user_name,
                    user_name=user.user_name, sessions=sessions, consents=consents,
                    csrf_token=form_token(services, session), status=status,
                    security=await _security(services, user, session))

    @post("/signout", operation_id="accountSignOut", status_code=HTTP_303_SEE_OTHER)
    async def sign_out(self, request: Request[Any, Any, Any],
                       services: ServicesDependency) -> Response[Any]:
        """Sign this browser out: end its session everywhere, clear the cookie."""
        fields = await read_form(request)
        session = await current_session(request, services)
        if session is None:
            return back_to_account("signed_out", services)
        if not form_token_matches(services, session, fields):
            return refused_page()
        await end_session(services.logout, session.id_hash, reason=REASON_LOGOUT)
        return back_to_account("signed_out", services)

    @post("/sessions/end", operation_id="accountEndSession", status_code=HTTP_303_SEE_OTHER)
    async def end_one_session(self, request: Request[Any, Any, Any],
                              services: ServicesDependency) -> Response[Any]:
        """Sign out one of the user's sessions (``sid``), this browser's included."""
        fields = await read_form(request)
        session = await current_session(request, services)
        if session is None:
            return back_to_account("no_session", services)
        if not form_token_matches(services, session, fields):
            return refused_page()
        sid = single_field(fields, "sid") or ""
        if not sid.startswith(SID_PREFIX) or not _SID.fullmatch(sid[len(SID_PREFIX):]):
            return invalid_page("session")
        if sid == session.sid:
            await end_session(services.logout, session.id_hash, reason=REASON_LOGOUT)
            return back_to_account("signed_out", services)
        ended = await end_own_session(services.logout, session.user_id, sid,
                                      reason=REASON_ACCOUNT)
        return back_to_account("session_ended" if ended else "session_gone")

    @post("/consents/withdraw", operation_id="accountWithdrawConsent",
          status_code=HTTP_303_SEE_OTHER)
    async def withdraw(self, request: Request[Any, Any, Any],
                       services: ServicesDependency) -> Response[Any]:
        """Withdraw the user's consent for one application (``client_id``) and revoke the
        tokens it got under it."""
        fields = await read_form(request)
        session = await current_session(request, services)
        if session is None:
            return back_to_account("no_session", services)
        if not form_token_matches(services, session, fields):
            return refused_page()
        client_id = single_field(fields, "client_id") or ""
        if len(client_id) > MAX_CLIENT_ID_LENGTH or not _CLIENT_ID.fullmatch(client_id):
            return invalid_page("application")
        record = await withdraw_consent(services.store, services.events,
                                        user_id=session.user_id, client_id=client_id,
                                        now=services.clock.now())
        return back_to_account("consent_withdrawn" if record is not None else "consent_gone")

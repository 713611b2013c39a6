"""``/account`` forms that change how the user signs in: the password, the authenticator
app (TOTP) and the recovery codes.

Each form is checked as every ``/account`` form (:func:`open_account_form`: a live session
and its CSRF token) and answered ``303`` back to the page with a fixed status message, or
with a page of its own: a new set of recovery codes (shown once), the TOTP set-up, or the
form again with what went wrong (nothing typed but the passwords is lost, and nothing is
changed). Changes to a second factor need a recent sign-in (``MFA_RECENT_AUTH_SECONDS``);
without one the answer links to ``/signin?prompt=login``, which renews it. A password
change needs the current password instead (or, with no password yet, a recent sign-in).

The TOTP set-up is two requests: ``POST /account/totp/setup`` makes a new seed (nothing is
stored) and keeps it, sealed, in a cookie bound to the session and limited to
``/account/totp`` for the 10 minutes an enrolment lasts; ``GET /account/totp`` shows it
(QR code, key, ``otpauth://`` link) and ``POST /account/totp/confirm`` stores it once a code
of it is right, issuing the first recovery codes. A wrong code shows the set-up again.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
import segno
from litestar import Controller, Request, Response, get, post
from litestar.status_codes import HTTP_303_SEE_OTHER
from markupsafe import Markup

from domain.account_security import (
    CurrentPasswordRequired,
    NoSecondFactor,
    PasswordCheckThrottled,
    RecentSignInRequired,
    WrongCurrentPassword,
    change_password,
    regenerate_recovery_codes,
)
from domain.errors import DomainError
from domain.mfa import (
    ENROLMENT_SECONDS,
    FactorAlreadyActive,
    FactorUnreadable,
    InvalidCurrentCode,
    InvalidEnrollment,
    NoFactor,
    TooManyCodes,
    begin_totp_enrolment,
    complete_totp_enrolment,
    remove_totp,
)
from domain.password_policy import MAX_PASSWORD_LENGTH, PasswordPolicy, PasswordRejected
from domain.sessions import Session
from domain.signin import ThrottlePolicy
from domain.text import is_storable
from entrypoints.http.account import (
    PATH,
    AccountForm,
    account_domain_error_page,
    account_error_page,
    back_to_account,
    form_token,
    open_account_form,
    recent_sign_in,
    recovery_codes_page,
)
from entrypoints.http.authorize import reauthentication_url
from entrypoints.http.html import page
from entrypoints.http.sealed_cookie import SealedCookie
from entrypoints.http.services import Services, ServicesDependency
from entrypoints.http.session_cookie import current_session, session_cookie

TOTP_PATH = f"{PATH}/totp"
#: Longest code field accepted (a recovery code typed with spaces fits many times over).
_MAX_CODE_LENGTH = 64
#: From how few codes left the page warns.
FEW_RECOVERY_CODES = 3


class PendingTotp(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A TOTP set-up in progress, sealed in its cookie: the session it belongs to, the
    sealed ``enrollment`` to confirm, and what the page shows of the new seed."""

    kind: Literal["account-totp"]
    sid: str
    enrollment: str
    secret: str
    otpauth_uri: str
    replacing: bool
    exp: int


PENDING_TOTP = SealedCookie("account_totp", PendingTotp, seconds=ENROLMENT_SECONDS,
                            path=TOTP_PATH)


def security_context(services: Services, session: Session, *, password: bool, totp: bool,
                     passkeys: bool, recovery_codes_left: int) -> dict[str, Any]:
    """What the section templates read of ``security`` (the account page gives more)."""
    return {"password": password, "totp": totp, "passkeys": passkeys,
            "recovery_codes_left": recovery_codes_left,
            "password_min_length": services.settings.password_min_length,
            "recent": recent_sign_in(services, session),
            "reauthenticate_url": reauthentication_url(PATH)}


async def _form_page(services: Services, form: AccountForm, section: str, title: str,
                     error: str, status_code: int, retry_after: int | None = None
                     ) -> Response[str]:
    """One section's form again, with what went wrong (``role="alert"``)."""
    store, user_id = services.store, form.user.id
    credentials = await store.get_credentials(user_id)
    security = security_context(
        services, form.session, password=credentials.password_hash is not None,
        totp=credentials.totp_confirmed and credentials.totp_secret is not None,
        passkeys=bool(await store.list_passkeys(user_id)),
        recovery_codes_left=await store.count_recovery_codes(user_id))
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return page("account_form.html", status_code, headers, title=title, error=error,
                section=section, security=security, user_name=form.user.user_name,
                csrf_token=form_token(services, form.session))


def _reauthenticate_page() -> Response[str]:
    return page("account_reauthenticate.html", 403,
                signin_url=reauthentication_url(PATH))


def _unstorable(form: AccountForm) -> bool:
    """A value the store could not keep (a NUL byte, a lone surrogate): a bad request."""
    return any(not is_storable(v) for values in form.fields.values() for v in values)


def _client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def _wait(seconds: int) -> str:
    seconds = max(1, seconds)
    return f"{seconds} second(s)" if seconds < 60 else f"{-(-seconds // 60)} minute(s)"


def _grouped(secret: str) -> str:
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def _qr_svg(uri: str) -> Markup:
    """The QR code of ``uri`` as inline SVG: an element of the page, not an image, so the
    no-script, no-image policy of the pages (``default-src 'none'``) still holds."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", xmldecl=False, svgns=True, scale=5,
                                    border=4, dark="#000", light="#fff",
                                    title="QR code of the set-up link", svgclass="qr")
    # segno writes only modules and the fixed title: nothing from the user is markup.
    return Markup(out.getvalue().decode("ascii"))  # noqa: S704


class AccountSecurityController(Controller):
    """The password, TOTP and recovery-code forms of ``/account``."""

    path = PATH
    include_in_schema = False
    exception_handlers = {DomainError: lambda request, exc: account_domain_error_page(exc)}

    @post("/password", operation_id="accountChangePassword", status_code=HTTP_303_SEE_OTHER)
    async def password(self, request: Request[Any, Any, Any],
                       services: ServicesDependency) -> Response[Any]:
        """Change (or, with none yet, set) the password; other sessions and every token
        of the user end, this browser stays signed in under a new session id."""
        form = await open_account_form(request, services)
        if not isinstance(form, AccountForm):
            return form
        if _unstorable(form):
            return account_error_page("Invalid request", "The form contains a character "
                                      "that is not allowed; nothing was changed.", 400)
        current = form.single("current_password")
        new, again = form.single("new_password") or "", form.single("new_password_confirm")

        async def refused(error: str, status_code: int = 400,
                          retry_after: int | None = None) -> Response[str]:
            return await _form_page(services, form, "account_password.html",
                                    "Change your password", error, status_code, retry_after)

        if not new:
            return await refused("Type the new password twice.")
        if again is None or again != new:
            return await refused("The two new passwords are not the same. Nothing was "
                                 "changed.")
        if current is not None and len(current) > MAX_PASSWORD_LENGTH:
            return await refused("The current password is incorrect.")
        try:
            changed = await change_password(
                services.store, services.password_hasher, services.logout,
                session=form.session, current_password=current, new_password=new,
                client_ip=_client_ip(request), now=services.clock.now(),
                recent_auth_seconds=services.settings.mfa_recent_auth_seconds,
                policy=PasswordPolicy(min_length=services.settings.password_min_length),
                throttle=ThrottlePolicy(
                    ip_limit=services.settings.rate_limit_signin_failures_per_address),
                session_policy=services.session_policy)
        except PasswordRejected as exc:
            return await refused(f"The new password was refused: {exc}.")
        except CurrentPasswordRequired:
            return await refused("Type your current password to change it.")
        except WrongCurrentPassword:
            return await refused("The current password is incorrect.")
        except PasswordCheckThrottled as exc:
            return await refused(
                "Too many wrong passwords. For your security, password checks are paused; "
                f"try again in {_wait(exc.retry_after)}.", 429, exc.retry_after)
        except RecentSignInRequired:
            return _reauthenticate_page()
        if changed.session_id is None:
            return back_to_account("no_session", services)
        response = back_to_account("password_set" if changed.first else "password_changed")
        response.set_cookie(session_cookie(services, changed.session_id))
        return response

    @post("/totp/setup", operation_id="accountStartTotp", status_code=HTTP_303_SEE_OTHER)
    async def start_totp(self, request: Request[Any, Any, Any],
                         services: ServicesDependency) -> Response[Any]:
        """A new seed, kept in the set-up cookie; replacing an app needs a code of it."""
        form = await open_account_form(request, services)
        if not isinstance(form, AccountForm):
            return form
        current_code = (form.single("current_code") or "").strip() or None
        if _unstorable(form) or len(current_code or "") > _MAX_CODE_LENGTH:
            return account_error_page("Invalid request", "The code contains a character "
                                      "that is not allowed; nothing was changed.", 400)
        if not recent_sign_in(services, form.session):
            return _reauthenticate_page()

        async def refused(error: str, status_code: int = 400,
                          retry_after: int | None = None) -> Response[str]:
            return await _form_page(services, form, "account_totp.html",
                                    "Authenticator app", error, status_code, retry_after)

        now = services.clock.now()
        try:
            enrolment = await begin_totp_enrolment(
                services.store, services.totp, services.signin_sealer, services.secret_sealer,
                user_id=form.user.id, issuer=services.settings.issuer,
                current_code=current_code, now=now)
        except FactorUnreadable:
            return await refused("Your current authenticator app cannot be checked. Remove "
                                 "it with a recovery code, or ask an administrator to reset "
                                 "it.", 409)
        except FactorAlreadyActive:
            return await refused("To replace your authenticator app, type a code it shows "
                                 "now.")
        except InvalidCurrentCode:
            return await refused("The code of your current authenticator app is incorrect "
                                 "or was already used. Nothing was changed.")
        except TooManyCodes as exc:
            return await refused(f"Too many wrong codes. Try again in {_wait(exc.retry_after)}.",
                                 429, exc.retry_after)
        pending = PendingTotp(kind="account-totp", sid=form.session.sid,
                              enrollment=enrolment.enrollment, secret=enrolment.secret,
                              otpauth_uri=enrolment.otpauth_uri,
                              replacing=current_code is not None, exp=enrolment.expires_at)
        response: Response[None] = Response(
            None, status_code=HTTP_303_SEE_OTHER,
            headers={"Location": TOTP_PATH, "Cache-Control": "no-store"})
        response.set_cookie(PENDING_TOTP.cookie(services, pending))
        return response

    @get("/totp", operation_id="accountTotpSetup")
    async def totp_setup(self, request: Request[Any, Any, Any],
                         services: ServicesDependency) -> Response[Any]:
        """The set-up in progress: QR code, key and the form for a code."""
        session = await current_session(request, services)
        pending = _pending(request, services, session)
        if session is None or pending is None:
            return back_to_account("totp_setup_expired" if session else "no_session")
        return _setup_page(services, session, pending)

    @post("/totp/confirm", operation_id="accountConfirmTotp", status_code=HTTP_303_SEE_OTHER)
    async def confirm_totp(self, request: Request[Any, Any, Any],
                           services: ServicesDependency) -> Response[Any]:
        """Store the set-up's seed once a code of it is right; the first recovery codes."""
        form = await open_account_form(request, services)
        if not isinstance(form, AccountForm):
            return form
        pending = _pending(request, services, form.session)
        if pending is None:
            return back_to_account("totp_setup_expired")
        code = (form.single("code") or "").strip()
        if _unstorable(form) or len(code) > _MAX_CODE_LENGTH:
            return _setup_page(services, form.session, pending, status_code=400,
                               error="The code contains a character that is not allowed.")
        if not code:
            return _setup_page(services, form.session, pending, status_code=400,
                               error="Type the 6-digit code your app shows.")
        try:
            confirmed = await complete_totp_enrolment(
                services.store, services.totp, services.signin_sealer, services.secret_sealer,
                services.events, user_id=form.user.id, enrollment=pending.enrollment,
                code=code, now=services.clock.now())
        except (InvalidEnrollment, FactorAlreadyActive):
            # Gone stale: the factor it replaces changed meanwhile. Start over.
            response = back_to_account("totp_setup_stale")
            response.set_cookie(PENDING_TOTP.cookie(services, None))
            return response
        except TooManyCodes as exc:
            return _setup_page(services, form.session, pending, status_code=429,
                               retry_after=exc.retry_after, error=(
                                   f"Too many wrong codes. Try again in "
                                   f"{_wait(exc.retry_after)}."))
        if confirmed is None:
            return _setup_page(services, form.session, pending, status_code=400, error=(
                "That code is not right (or was already used). Check that your app shows "
                "this account and the time on your phone is right, then type the new code."))
        done = "totp_replaced" if pending.replacing else "totp_added"
        if confirmed.recovery_codes:
            codes: Response[Any] = recovery_codes_page(
                confirmed.recovery_codes, status="Your authenticator app is set up.")
        else:
            codes = back_to_account(done)
        codes.set_cookie(PENDING_TOTP.cookie(services, None))
        return codes

    @post("/totp/remove", operation_id="accountRemoveTotp", status_code=HTTP_303_SEE_OTHER)
    async def remove_totp(self, request: Request[Any, Any, Any],
                          services: ServicesDependency) -> Response[Any]:
        """Remove the authenticator app, proved by a code of it or a recovery code."""
        form = await open_account_form(request, services)
        if not isinstance(form, AccountForm):
            return form
        code = (form.single("code") or "").strip()
        if _unstorable(form) or len(code) > _MAX_CODE_LENGTH:
            return account_error_page("Invalid request", "The code contains a character "
                                      "that is not allowed; nothing was changed.", 400)
        if not recent_sign_in(services, form.session):
            return _reauthenticate_page()

        async def refused(error: str, status_code: int = 400,
                          retry_after: int | None = None) -> Response[str]:
            return await _form_page(services, form, "account_totp.html",
                                    "Authenticator app", error, status_code, retry_after)

        if not code:
            return await refused("Type a code your authenticator app shows (or a recovery "
                                 "code) to remove it.")
        try:
            removed = await remove_totp(
                services.store, services.totp, services.secret_sealer, services.events,
                user_id=form.user.id, code=code, client_ip=_client_ip(request),
                now=services.clock.now())
        except NoFactor:
            return back_to_account("totp_gone")
        except FactorUnreadable:
            return await refused("Your authenticator app cannot be checked: remove it with a "
                                 "recovery code, or ask an administrator to reset it.", 409)
        except InvalidCurrentCode:
            return await refused("The code is incorrect or was already used. Nothing was "
                                 "changed.")
        except TooManyCodes as exc:
            return await refused(f"Too many wrong codes. Try again in {_wait(exc.retry_after)}.",
                                 429, exc.retry_after)
        return back_to_account("totp_removed_codes_cleared" if removed.recovery_codes_cleared
                               else "totp_removed")

    @post("/recovery-codes", operation_id="accountRegenerateRecoveryCodes",
          status_code=HTTP_303_SEE_OTHER)
    async def regenerate(self, request: Request[Any, Any, Any],
                         services: ServicesDependency) -> Response[Any]:
        """A new set of recovery codes, shown once; the old set stops working."""
        form = await open_account_form(request, services)
        if not isinstance(form, AccountForm):
            return form
        if not recent_sign_in(services, form.session):
            return _reauthenticate_page()
        try:
            issued = await regenerate_recovery_codes(services.store, services.events,
                                                     user_id=form.user.id)
        except NoSecondFactor:
            return await _form_page(
                services, form, "account_recovery.html", "Recovery codes",
                "Recovery codes stand in for a second factor, and you have none: set up an "
                "authenticator app or a passkey first (it comes with a set of codes).", 409)
        return recovery_codes_page(issued.codes, status="Here is your new set of recovery "
                                   "codes.", replaced=issued.replaced)


def _pending(request: Request[Any, Any, Any], services: Services,
             session: Session | None) -> PendingTotp | None:
    """The set-up in progress of this very session, if any."""
    pending = PENDING_TOTP.read(request, services)
    if pending is None or session is None or pending.sid != session.sid:
        return None
    return pending


def _setup_page(services: Services, session: Session, pending: PendingTotp, *,
                status_code: int = 200, error: str | None = None,
                retry_after: int | None = None) -> Response[str]:
    expires = datetime.fromtimestamp(pending.exp, UTC)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return page("account_totp_setup.html", status_code, headers, error=error,
                secret=_grouped(pending.secret), otpauth_uri=pending.otpauth_uri,
                qr_svg=_qr_svg(pending.otpauth_uri), replacing=pending.replacing,
                expires={"iso": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "text": expires.strftime("%H:%M UTC")},
                csrf_token=form_token(services, session))

"""The user's email address on ``/account``, and the verification links mailed for it.

- ``POST /account/email``: change the primary email (a recent sign-in required); a link goes
  to the new address and the address is unverified until it is used.
- ``POST /account/email/resend``: mail a new link for the current address.
- ``GET /account/verify-email?token=``: the page a link opens. It only shows a button:
  mail scanners and link previews follow GET links, and must not spend them.
- ``POST /account/verify-email``: spend the link and mark the address verified.

Both user-asked sends share one throttle per user (``domain.email_verification.USER_SENDS``);
over it the answer is a 429 page saying when to try again. Without a mailer (no
``SMTP_URL``) nothing is sent and the page says verification is unavailable. The link's
page needs no session (the secret is the proof of the mailbox) and so has no CSRF token:
whoever could forge its POST holds the secret already.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.status_codes import HTTP_303_SEE_OTHER

from domain.email_verification import (
    MAX_TOKEN_LENGTH,
    USER_SENDS,
    InvalidAddress,
    LinkRefused,
    TooManySends,
    VerificationPorts,
    change_email,
    primary_email,
    resend_verification_link,
    verify_email,
)
from domain.errors import DomainError, PreconditionFailed
from entrypoints.http.account import (
    PATH,
    AccountForm,
    account_domain_error_page,
    account_error_page,
    back_to_account,
    open_account_form,
    read_form,
    recent_sign_in,
    single_field,
)
from entrypoints.http.html import page
from entrypoints.http.services import Services, ServicesDependency

VERIFY_PATH = f"{PATH}/verify-email"


def verification_ports(services: Services) -> VerificationPorts:
    """The ports of the verification use cases (also the SCIM writes': entrypoints.http.scim)."""
    return VerificationPorts(
        store=services.store, clock=services.clock, tokens=services.token_generator,
        events=services.events, mailer=services.mailer,
        link=services.settings.external_base_url + VERIFY_PATH,
        lifetime=services.settings.email_verification_seconds)


def _wait_text(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _too_many(exc: TooManySends) -> Response[str]:
    return account_error_page(
        "Too many verification emails",
        f"Your account had {USER_SENDS.limit} verification emails sent at your request "
        "recently, as many as we send in an hour. Nothing was changed. Try again in "
        f"{_wait_text(exc.retry_after)}.", 429, retry_after=exc.retry_after)


def _link_page(status_code: int, **context: Any) -> Response[str]:
    return page("verify_email.html", status_code, action=VERIFY_PATH, **context)


class AccountEmailController(Controller):
    """The email address forms of the account page and the verification link's page."""

    path = PATH
    include_in_schema = False
    exception_handlers = {DomainError: lambda request, exc: account_domain_error_page(exc)}

    @post("/email", operation_id="accountChangeEmail", status_code=HTTP_303_SEE_OTHER)
    async def change(self, request: Request[Any, Any, Any],
                     services: ServicesDependency) -> Response[Any]:
        """Set the user's primary email (``email``) and mail a link to it."""
        form = await open_account_form(request, services)
        if not isinstance(form, AccountForm):
            return form
        if not recent_sign_in(services, form.session):
            return back_to_account("email_reauthenticate")
        address = form.single("email")
        if address is None:
            return account_error_page("Invalid request", "The form's email address is "
                                      "missing; nothing was changed.", 400)
        before = primary_email(form.user)
        try:
            stored = await change_email(verification_ports(services), form.user, address)
        except InvalidAddress:
            return account_error_page(
                "Invalid email address", "That is not an email address we can use "
                "(such as name@example.com); nothing was changed.", 400)
        except TooManySends as exc:
            return _too_many(exc)
        except PreconditionFailed:
            return account_error_page(
                "Account changed meanwhile", "Your account was changed by someone or "
                "something else while you edited it; nothing was changed. Open your "
                "account page and try again.", 409)
        if primary_email(stored) == before:
            return back_to_account("email_unchanged")
        return back_to_account("email_changed" if services.mailer is not None
                               else "email_changed_unverifiable")

    @post("/email/resend", operation_id="accountResendVerification",
          status_code=HTTP_303_SEE_OTHER)
    async def resend(self, request: Request[Any, Any, Any],
                     services: ServicesDependency) -> Response[Any]:
        """Mail a new verification link for the user's current email."""
        form = await open_account_form(request, services)
        if not isinstance(form, AccountForm):
            return form
        try:
            outcome = await resend_verification_link(verification_ports(services), form.user)
        except TooManySends as exc:
            return _too_many(exc)
        return back_to_account({"sent": "verification_sent", "verified": "email_verified",
                                "no_email": "email_missing",
                                "unavailable": "verification_unavailable"}[outcome])

    @get("/verify-email", operation_id="accountVerifyEmailPage")
    async def link(self, request: Request[Any, Any, Any]) -> Response[str]:
        """The page of a mailed link: a button that verifies (nothing is spent here)."""
        token = request.query_params.get("token") or ""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return _link_page(400, refused="invalid")
        return _link_page(200, token=token)

    @post("/verify-email", operation_id="accountVerifyEmail", status_code=200)
    async def verify(self, request: Request[Any, Any, Any],
                     services: ServicesDependency) -> Response[str]:
        """Spend the link and mark its address verified."""
        token = single_field(await read_form(request), "token") or ""
        try:
            user = await verify_email(verification_ports(services), token)
        except LinkRefused as exc:
            return _link_page(409 if exc.reason == "changed" else 400, refused=exc.reason)
        return _link_page(200, verified=primary_email(user))

"""``/signin/forgot`` and ``/signin/reset``: a forgotten password, reset by a mailed link
(``domain.password_reset``).

- ``GET /signin/forgot``: the form that asks for a user name or an email address (the
  sign-in page links to it when mail is on). ``POST``: always the same page, with the same
  status, whatever was typed (no enumeration); the mail, if any, goes in the background.
- ``GET /signin/reset?token=...``: the link of the mail. It shows the new-password form
  and spends nothing (mail scanners and link previews open links); the page, like every
  page, has ``Referrer-Policy: no-referrer`` and loads nothing, so the secret in its URL
  goes nowhere. ``POST``: sets the password (twice typed, the policy applies), spending the
  link; then ``303`` to ``/signin/reset/done``, the sign-in page with a notice.
- A malformed link is a ``400`` page, an unknown, used or expired one a ``410`` page; both
  offer to ask for a new link.

Without a mailer (no ``SMTP_URL``) every path here answers 404.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException

from domain.errors import DomainError
from domain.password_policy import PasswordPolicy, PasswordRejected
from domain.password_reset import (
    MAX_LOGIN,
    LinkRefused,
    ResetPolicy,
    looks_like_reset_token,
    request_password_reset,
    reset_password,
)
from domain.text import duration_text, is_storable
from domain.user_sessions import user_session_ender
from entrypoints.http.account import read_form, single_field
from entrypoints.http.authorize import DEFAULT_RETURN_TO
from entrypoints.http.html import page
from entrypoints.http.services import Services, ServicesDependency
from entrypoints.http.signin_steps import (
    SIGNIN_PATH,
    domain_error_page,
    new_transaction,
    see_other,
    signin_page,
)

FORGOT_PATH = f"{SIGNIN_PATH}/forgot"
RESET_PATH = f"{SIGNIN_PATH}/reset"
DONE_PATH = f"{RESET_PATH}/done"
DONE_NOTICE = ("Your password has been changed, and every session of your account was "
               "signed out. Sign in with your new password.")


def _mail_on(services: Services) -> None:
    if services.mailer is None:
        raise NotFoundException()


def _reset_policy(services: Services) -> ResetPolicy:
    return ResetPolicy(link_seconds=services.settings.password_reset_seconds)


def _forgot_page(services: Services, *, sent: bool = False, error: str | None = None,
                 status_code: int = 200) -> Response[str]:
    return page("forgot_password.html", status_code, sent=sent, error=error,
                expires=duration_text(services.settings.password_reset_seconds))


def _reset_page(services: Services, token: str, *, error: str | None = None,
                status_code: int = 200) -> Response[str]:
    return page("reset_password.html", status_code, token=token, error=error,
                min_length=services.settings.password_min_length)


def _link_page(status_code: int) -> Response[str]:
    if status_code == 410:
        return page("reset_link.html", 410, title="This link no longer works",
                    message="This password reset link has expired or was already used.")
    return page("reset_link.html", status_code, title="This link is not valid",
                message="This password reset link is incomplete or damaged; copy the "
                        "whole link from the mail, or ask for a new one.")


def _client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


class PasswordResetController(Controller):
    """Forgot password: ask for a link, then set a new password with it."""

    path = SIGNIN_PATH
    include_in_schema = False
    exception_handlers = {DomainError: lambda request, exc: domain_error_page(exc)}

    @get("/forgot", operation_id="forgotPassword")
    async def forgot(self, services: ServicesDependency) -> Response[str]:
        """The form that asks for a user name or an email address."""
        _mail_on(services)
        return _forgot_page(services)

    @post("/forgot", operation_id="forgotPasswordSubmit", status_code=200)
    async def forgot_submit(
        self, request: Request[Any, Any, Any], services: ServicesDependency
    ) -> Response[str]:
        """Mail a link when an account matches; the same answer in every case."""
        _mail_on(services)
        assert services.mailer is not None
        login = (single_field(await read_form(request), "login") or "").strip()
        if not login:
            return _forgot_page(services, status_code=400,
                                error="Type your user name or your email address.")
        if len(login) > MAX_LOGIN or not is_storable(login):
            return _forgot_page(services, status_code=400,
                                error="That is not a user name or an email address.")
        await request_password_reset(
            services.store, services.mailer, services.events, services.token_generator,
            login=login, client_ip=_client_ip(request),
            reset_url=services.settings.external_base_url + RESET_PATH,
            now=services.clock.now(), policy=_reset_policy(services))
        return _forgot_page(services, sent=True)

    @get("/reset", operation_id="resetPassword")
    async def reset(
        self, request: Request[Any, Any, Any], services: ServicesDependency
    ) -> Response[str]:
        """The new-password form of the link (the link is not spent here)."""
        _mail_on(services)
        tokens = request.query_params.getall("token", [])
        if len(tokens) != 1 or not looks_like_reset_token(tokens[0]):
            return _link_page(400)
        return _reset_page(services, tokens[0])

    @post("/reset", operation_id="resetPasswordSubmit", status_code=200)
    async def reset_submit(
        self, request: Request[Any, Any, Any], services: ServicesDependency
    ) -> Response[Any]:
        """Set the new password and spend the link; then to the sign-in page."""
        _mail_on(services)
        fields = await read_form(request)
        token = single_field(fields, "token") or ""
        if not looks_like_reset_token(token):
            return _link_page(400)
        password = single_field(fields, "password") or ""
        if password != (single_field(fields, "confirm") or ""):
            return _reset_page(services, token, status_code=400,
                               error="The two passwords are not the same.")
        try:
            outcome = await reset_password(
                services.store, services.password_hasher, services.events,
                user_session_ender(services.logout), token=token, password=password,
                client_ip=_client_ip(request), now=services.clock.now(),
                policy=PasswordPolicy(min_length=services.settings.password_min_length))
        except PasswordRejected as exc:
            return _reset_page(services, token, status_code=400,
                               error=f"This password cannot be used: {exc}.")
        if isinstance(outcome, LinkRefused):
            return _link_page(410)
        return see_other(DONE_PATH)

    @get("/reset/done", operation_id="resetPasswordDone")
    async def done(self, services: ServicesDependency) -> Response[str]:
        """The sign-in page, saying that the password was changed."""
        _mail_on(services)
        return signin_page(services, None, new_transaction(services, return_to=DEFAULT_RETURN_TO),
                           notice=DONE_NOTICE)

"""``/account/passkeys...``: the user adds, renames and removes their passkeys.

Adding one takes two requests. ``GET /account/passkeys/new`` (after a recent sign-in, else
the user signs in again first) shows a page with the WebAuthn options for
``navigator.credentials.create`` and seals their challenge in a short-lived cookie bound
to the session; ``/static/passkeys.js`` asks the browser for a passkey and posts its
answer (``passkey_response``) with the name to ``POST /account/passkeys``, which claims
the challenge once (``domain.passkeys.register_passkey``) and keeps the passkey. A first
second factor comes with recovery codes, shown once.

Renaming and removing are plain forms of the account page (``account_passkeys.html``);
removing, which weakens the account, needs a recent sign-in too.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.status_codes import HTTP_303_SEE_OTHER

from domain.errors import DomainError
from domain.passkeys import (
    DEFAULT_NAME,
    PasskeyRefused,
    decode_challenge,
    encode_challenge,
    new_challenge,
    passkey_name,
    register_passkey,
    registration_options,
    remove_passkey,
    rename_passkey,
)
from domain.recovery import ensure_recovery_codes
from entrypoints.http.account import PATH as ACCOUNT_PATH
from entrypoints.http.account import (
    AccountForm,
    account_domain_error_page,
    account_error_page,
    back_to_account,
    form_token,
    invalid_page,
    open_account_form,
    recent_sign_in,
    recovery_codes_page,
    signed_in_user,
)
from entrypoints.http.authorize import reauthentication_url, signin_url
from entrypoints.http.html import page
from entrypoints.http.sealed_cookie import SealedCookie
from entrypoints.http.services import Services, ServicesDependency
from entrypoints.http.session_cookie import current_session
from entrypoints.http.signin_steps import see_other

PATH = f"{ACCOUNT_PATH}/passkeys"
NEW_PATH = f"{PATH}/new"
#: How long the add page's challenge stays usable (the browser's prompt takes seconds to
#: minutes).
REGISTRATION_SECONDS = 300
_MAX_CREDENTIAL_ID = 1400  # base64url of WebAuthn's 1023-byte limit, with room


class Registration(msgspec.Struct, frozen=True, kw_only=True):
    """A passkey being added, sealed in the browser's cookie between the two requests: its
    challenge, and the session (``id_hash``) and user it is for."""

    challenge: str
    session: str
    user_id: str
    exp: int


_REGISTRATION = SealedCookie("passkey_registration", Registration,
                             seconds=REGISTRATION_SECONDS, path=PATH)

_REFUSED = {
    "replayed": ("Passkey not added", "This page was already used to add a passkey. Open "
                 "“Add a passkey” again."),
    "not_verified": ("Passkey not added", "Your browser's answer could not be verified for "
                     "this site, so no passkey was added. Please try again."),
    "duplicate": ("Passkey not added", "This passkey is registered already."),
    "unavailable": ("Passkeys unavailable", "Passkeys cannot be used with this account. "
                    "Please contact your administrator."),
}


def _credential_id(form: AccountForm) -> str | None:
    value = form.single("credential_id")
    if not value or len(value) > _MAX_CREDENTIAL_ID:
        return None
    if not all(c.isascii() and (c.isalnum() or c in "-_") for c in value):
        return None
    return value


def _refused_page(refusal: PasskeyRefused, services: Services) -> Response[str]:
    title, message = _REFUSED.get(refusal.reason, _REFUSED["not_verified"])
    response = account_error_page(title, message, 400)
    response.set_cookie(_REGISTRATION.cookie(services, None))
    return response


class AccountPasskeysController(Controller):
    """The passkey forms of the account page."""

    path = PATH
    include_in_schema = False
    exception_handlers = {DomainError: lambda request, exc: account_domain_error_page(exc)}

    @get("/new", operation_id="accountPasskeyNew")
    async def new(self, request: Request[Any, Any, Any],
                  services: ServicesDependency) -> Response[Any]:
        """The page that adds a passkey (sign-in first, or again when it is not recent)."""
        session = await current_session(request, services)
        user = await signed_in_user(services, session)
        if session is None or user is None:
            return see_other(signin_url(NEW_PATH))
        if not recent_sign_in(services, session):
            return see_other(reauthentication_url(NEW_PATH))
        challenge = new_challenge()
        options = await registration_options(services.store, services.passkeys, user=user,
                                             challenge=challenge)
        if isinstance(options, PasskeyRefused):
            return _refused_page(options, services)
        response = page("passkey_new.html", scripts=True, passkey_options=options,
                        csrf_token=form_token(services, session), default_name=DEFAULT_NAME)
        response.set_cookie(_REGISTRATION.cookie(services, Registration(
            challenge=encode_challenge(challenge), session=session.id_hash, user_id=user.id,
            exp=services.clock.now() + REGISTRATION_SECONDS)))
        return response

    @post(operation_id="accountPasskeyAdd", status_code=HTTP_303_SEE_OTHER)
    async def add(self, request: Request[Any, Any, Any],
                  services: ServicesDependency) -> Response[Any]:
        """Keep the passkey the browser made on the add page."""
        form = await open_account_form(request, services)
        if not isinstance(form, AccountForm):
            return form
        if not recent_sign_in(services, form.session):
            return see_other(reauthentication_url(NEW_PATH))
        state = _REGISTRATION.read(request, services)
        challenge = decode_challenge(state.challenge) if state is not None else None
        if (state is None or challenge is None or state.session != form.session.id_hash
                or state.user_id != form.user.id):
            return account_error_page("Passkey not added", "This page has expired or was "
                                      "opened in another browser. Open “Add a passkey” again.",
                                      400)
        name = passkey_name(form.single("name"))
        if name is None:
            return invalid_page("passkey name (1 to 64 characters)")
        response = form.single("passkey_response")
        if not response:
            return account_error_page("Passkey not added", "Your browser sent no passkey. "
                                      "Open “Add a passkey” again.", 400)
        now = services.clock.now()
        outcome = await register_passkey(
            services.store, services.passkeys, services.events, user=form.user,
            response=response, challenge=challenge, challenge_exp=state.exp, name=name,
            now=now)
        if isinstance(outcome, PasskeyRefused):
            return _refused_page(outcome, services)
        codes = await ensure_recovery_codes(services.store, services.events, form.user.id)
        answer: Response[Any] = (
            recovery_codes_page(codes, status=f"Passkey “{name}” added.") if codes
            else back_to_account("passkey_added"))
        answer.set_cookie(_REGISTRATION.cookie(services, None))
        return answer

    @post("/rename", operation_id="accountPasskeyRename", status_code=HTTP_303_SEE_OTHER)
    async def rename(self, request: Request[Any, Any, Any],
                     services: ServicesDependency) -> Response[Any]:
        """Give one of the user's passkeys another name."""
        form = await open_account_form(request, services)
        if not isinstance(form, AccountForm):
            return form
        credential_id = _credential_id(form)
        if credential_id is None:
            return invalid_page("passkey")
        name = passkey_name(form.single("name"))
        if name is None:
            return invalid_page("passkey name (1 to 64 characters)")
        renamed = await rename_passkey(services.store, services.events, user_id=form.user.id,
                                       credential_id=credential_id, name=name)
        return back_to_account("passkey_renamed" if renamed else "passkey_gone")

    @post("/remove", operation_id="accountPasskeyRemove", status_code=HTTP_303_SEE_OTHER)
    async def remove(self, request: Request[Any, Any, Any],
                     services: ServicesDependency) -> Response[Any]:
        """Forget one of the user's passkeys (after a recent sign-in)."""
        form = await open_account_form(request, services)
        if not isinstance(form, AccountForm):
            return form
        credential_id = _credential_id(form)
        if credential_id is None:
            return invalid_page("passkey")
        if not recent_sign_in(services, form.session):
            return see_other(reauthentication_url(ACCOUNT_PATH))
        outcome = await remove_passkey(services.store, services.events, user_id=form.user.id,
                                       credential_id=credential_id)
        if outcome == "last_way_in":
            return account_error_page(
                "Passkey not removed", "This passkey is your only way to sign in: you have "
                "no password. Add another passkey first.", 409)
        return back_to_account("passkey_removed" if outcome == "removed" else "passkey_gone")

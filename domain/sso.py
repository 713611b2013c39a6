"""Single sign-on: what an authorization request needs, given the browser's session.

:func:`next_step` reads the request's OpenID Connect parameters (Core 3.1.2.1) against the
session and answers with one step: sign in (again), prove a second factor (step-up), ask
for consent, or authorize at once. With ``prompt=none`` no step may show a page, so each
one that would is an :class:`Unmet` error instead, for the client's redirect URI:

- no live session, a session of another user than ``id_token_hint``'s, or one older than
  ``max_age``: ``login_required``;
- a password-only session where two factors are wanted (``acr_values=mfa`` or a client
  with ``require_mfa``) and the user has a factor to prove: ``interaction_required``;
- scopes the user has not consented to: ``consent_required``.

``acr_values`` is a voluntary claim (Core 5.5.1.1): when the user has no second factor, the
code is issued with what was done (``acr`` ``pwd`` in the ID token) and the client decides;
a client that must have two factors says so with ``require_mfa``, which is enforced.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from domain.authorization_request import (
    PROMPT_CONSENT,
    PROMPT_LOGIN,
    PROMPT_NONE,
    PROMPT_SELECT_ACCOUNT,
    AuthorizationRequest,
)
from domain.clients import Client
from domain.consent import scopes_to_ask
from domain.entities import User
from domain.errors import NotFound
from domain.sessions import Session
from domain.signin import second_factors
from ports.store import ConsentStore, CredentialStore, UserStore


class SignIn(msgspec.Struct, frozen=True):
    """Show the sign-in page. ``reason``: ``no_session``, ``prompt``, ``max_age`` or
    ``id_token_hint`` (for the page's wording and the logs)."""

    reason: str


class StepUp(msgspec.Struct, frozen=True):
    """The session's user must prove the second factor before going on, with one of
    ``factors`` (``domain.signin.FACTOR_TOTP``, ``FACTOR_PASSKEY``)."""

    factors: tuple[str, ...]


class AskConsent(msgspec.Struct, frozen=True):
    """Show the consent page for ``scopes`` (those not consented to yet, or all of them
    with ``prompt=consent``), in the request's order."""

    scopes: tuple[str, ...]


class Authorized(msgspec.Struct, frozen=True):
    """Issue the code from the session."""


class Unmet(msgspec.Struct, frozen=True):
    """``prompt=none`` and a step would need a page: redirect ``error`` to the client."""

    error: str
    description: str


Step = SignIn | StepUp | AskConsent | Authorized | Unmet


class SsoStore(UserStore, CredentialStore, ConsentStore, Protocol):
    """What :func:`next_step` reads."""


async def next_step(
    store: SsoStore,
    request: AuthorizationRequest,
    client: Client,
    session: Session | None,
    now: int,
    *,
    signed_in_now: bool = False,
) -> Step:
    """The next step of ``request`` from ``session`` (see the module docstring).

    ``signed_in_now``: the user has just signed in for this request, so ``prompt=login``,
    ``max_age`` and ``id_token_hint`` are answered (whoever signed in is the user, as on
    any sign-in page). A session whose user was deleted or deactivated since counts as
    none. Raises ``StoreUnavailable``.
    """
    silent = PROMPT_NONE in request.prompt

    def sign_in(reason: str) -> SignIn | Unmet:
        return Unmet("login_required", "the user must sign in") if silent else SignIn(reason)

    user = await _active_user(store, session.user_id) if session is not None else None
    if session is None or user is None:
        return sign_in("no_session")
    if not signed_in_now:
        if request.hint_sub is not None and request.hint_sub != session.user_id:
            return sign_in("id_token_hint")
        if PROMPT_LOGIN in request.prompt or PROMPT_SELECT_ACCOUNT in request.prompt:
            return sign_in("prompt")
        if request.max_age is not None and (
                request.max_age == 0 or now - session.auth_time > request.max_age):
            return sign_in("max_age")
    factors = (await second_factors(store, user.id)
               if not session.mfa_verified and (request.wants_mfa or client.require_mfa)
               else ())
    if factors:
        if silent:
            return Unmet("interaction_required", "the user must verify a second factor")
        return StepUp(factors)
    asked = PROMPT_CONSENT in request.prompt
    if client.first_party and not asked:
        return Authorized()
    consent = None if asked else await store.get_consent(session.user_id, client.client_id)
    to_ask = scopes_to_ask(consent, request.scopes)
    if to_ask:
        if silent:
            return Unmet("consent_required", "the user must allow the requested scopes")
        return AskConsent(to_ask)
    return Authorized()


async def _active_user(store: UserStore, user_id: str) -> User | None:
    try:
        user = await store.get_user(user_id)
    except NotFound:
        return None
    return user if user.active else None

"""The sign-in steps shared by ``/oauth/authorize`` and the plain ``/signin`` page.

A sign-in runs over one or two pages (password, then a second factor when the user has
one: a TOTP code, a passkey, or a recovery code instead of either); an authorization may
add a consent page. Between pages, the
transaction (what the sign-in is for, the step reached, the CSRF token) lives in a
short-lived cookie sealed with a key derived from the signing key, so any instance can
carry on a sign-in another one started. The form's CSRF token must equal the one sealed in
the cookie, and the cookie is ``SameSite=Lax``: a cross-site form can neither read the
token nor send the cookie with its POST.

A transaction is for either an authorization request (``request``) or a local page to go
back to (``return_to``, the plain sign-in page), never both.

A TOTP-step transaction is single use: each code submitted claims its ``id`` in the store
(``claim_once``, until the transaction expires), so a copy of the cookie cannot be replayed
to try more codes without the password; a wrong code comes with a fresh transaction.

Passkeys (``domain.passkeys``): the sign-in page offers "Sign in with a passkey" (any of
the user's passkeys, no user name typed), and the second-factor page "Use your passkey"
when the user has one. Each such page's transaction carries a fresh WebAuthn challenge
(``passkey_challenge``), the page the options built on it (for ``/static/passkeys.js``),
and the script posts the browser's response back in ``passkey_response``. The challenge is
claimed once in the store when a response comes, so a response cannot be replayed, and
another try gets a new transaction with a new challenge.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, Literal

import msgspec
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.status_codes import HTTP_303_SEE_OTHER

from domain.authorization_request import AuthorizationRequest
from domain.clients import Client
from domain.entities import Passkey
from domain.errors import DomainError, InvalidValue
from domain.passkeys import (
    PasskeyAccepted,
    PasskeyRefused,
    authenticate_with_passkey,
    authentication_options,
    decode_challenge,
    encode_challenge,
    new_challenge,
)
from domain.sessions import AMR_OTP, amr_of, passkey_amr
from domain.signin import (
    FACTOR_PASSKEY,
    FACTOR_TOTP,
    PasswordAccepted,
    Throttled,
    ThrottlePolicy,
    TotpAccepted,
    check_password,
    check_recovery_code,
    check_totp,
)
from domain.text import is_storable
from entrypoints.http.html import page
from entrypoints.http.sealed_cookie import SealedCookie
from entrypoints.http.services import Services

AUTHORIZE_PATH = "/oauth/authorize"
SIGNIN_PATH = "/signin"
#: How long a sign-in may take, from the first page to the redirect.
TRANSACTION_SECONDS = 600
MAX_FIELD = 1024
#: The form field of a passkey response (the JSON of the browser's credential), and how
#: long it may be: far more than any other field (an RSA signature alone is 342 characters).
PASSKEY_FIELD = "passkey_response"
MAX_PASSKEY_FIELD = 65536

SCOPE_DESCRIPTIONS = {
    "openid": "Confirm your identity",
    "profile": "Your user name and display name",
    "email": "Your email address",
    "offline_access": "Access while you are not signed in",
    "groups": "The names of your groups",
}


class Transaction(msgspec.Struct, frozen=True, kw_only=True):
    """The sign-in in progress, sealed in the browser's cookie between pages.

    ``id`` names this transaction in the store: the TOTP step claims it once. ``sid``:
    the session a step-up or a consent page continues (the step goes on only in that
    session). ``scopes``: what the consent page asks for.
    """

    id: str
    csrf: str
    exp: int
    request: AuthorizationRequest | None = None
    return_to: str | None = None
    step: Literal["password", "totp", "consent"] = "password"
    user_id: str | None = None
    auth_time: int | None = None
    sid: str | None = None
    scopes: tuple[str, ...] = ()
    #: On the second-factor step (``totp``): what the user may prove it with, from
    #: ``FACTOR_TOTP`` and ``FACTOR_PASSKEY`` (a recovery code is always offered).
    factors: tuple[str, ...] = ()
    #: The WebAuthn challenge (base64url) of the page's passkey button: the sign-in page,
    #: and the second-factor page of a user with passkeys. Claimed once when used.
    passkey_challenge: str | None = None


class SignedIn(msgspec.Struct, frozen=True):
    """The credentials step(s) succeeded: who, when, and how (RFC 8176 ``amr``)."""

    user_id: str
    auth_time: int
    amr: tuple[str, ...]










#: The sign-in in progress (the ``__Host-`` prefix makes browsers refuse the cookie unless
#: Secure, host-only, Path=/).
_TRANSACTION = SealedCookie("signin", Transaction, seconds=TRANSACTION_SECONDS,
                            path=AUTHORIZE_PATH)


def new_transaction(
    services: Services, *, request: AuthorizationRequest | None = None,
    return_to: str | None = None, exp: int | None = None, **fields: Any,
) -> Transaction:
    """A fresh transaction (new ``id`` and CSRF token); ``exp`` carried over when given."""
    return Transaction(
        id=new_id(), csrf=secrets.token_urlsafe(32), request=request, return_to=return_to,
        exp=exp if exp is not None else services.clock.now() + TRANSACTION_SECONDS, **fields)


def transaction_cookie(
    services: Services, transaction: Transaction | None, *, plain: bool = False
) -> Cookie:
    """The cookie that carries ``transaction``, or (None) removes the one at ``plain``'s
    path (over plain http the cookie is limited to its page)."""
    if transaction is not None:
        plain = transaction.request is None
    return _TRANSACTION.cookie(services, transaction,
                               path=SIGNIN_PATH if plain else AUTHORIZE_PATH)


def open_transaction(request: Request[Any, Any, Any], services: Services) -> Transaction | None:
    transaction = _TRANSACTION.read(request, services)
    if transaction is None or (transaction.request is None) == (transaction.return_to is None):
        return None
    return transaction


def see_other(location: str) -> Response[None]:
    return Response(
        None,
        status_code=HTTP_303_SEE_OTHER,
        headers={"Location": location, "Cache-Control": "no-store", "Pragma": "no-cache",
                 "Referrer-Policy": "no-referrer"},
    )


def error_page(
    title: str, message: str, status_code: int = 400, retry_after: int | None = None
) -> Response[str]:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return page("error.html", status_code, headers, title=title, message=message,
                retry_after=retry_after)


def expired_page() -> Response[str]:
    return error_page("Sign-in expired",
                      "This sign-in has expired or was started in another browser window.")


def domain_error_page(exc: DomainError) -> Response[str]:
    if isinstance(exc, InvalidValue):  # input the store refused: the request's fault
        return error_page("Invalid request", "The request contains a value that is not "
                          "allowed; return to the application and start again.")
    return error_page(
        "Service unavailable", "Sign-in is temporarily unavailable. Please try again shortly.",
        503, retry_after=1)


def scope_list(scopes: tuple[str, ...]) -> list[dict[str, str]]:
    return [{"name": s, "description": SCOPE_DESCRIPTIONS.get(s, "Access to " + s)}
            for s in scopes]


def form_action(transaction: Transaction) -> str:
    return AUTHORIZE_PATH if transaction.request is not None else SIGNIN_PATH


def signin_page(
    services: Services, client: Client | None, transaction: Transaction, *,
    error: str | None = None, username: str = "", notice: str | None = None,
    status_code: int = 200, retry_after: int | None = None,
    passkeys: list[Passkey] | None = None,
) -> Response[str]:
    """The page of the transaction's step (password or second factor), setting its cookie.

    The password page offers a sign-in with a passkey alone; the second-factor page offers
    the user's ``passkeys`` (from :func:`second_factor_page`) when they have any."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    template = "totp.html" if transaction.step == "totp" else "signin.html"
    auth_request = transaction.request
    transaction, passkey_options = _with_passkey_options(services, transaction, passkeys)
    response = page(
        template, status_code, headers, scripts=passkey_options is not None,
        passkey_options=passkey_options,
        form_target=auth_request.redirect_uri if auth_request is not None else None,
        action=form_action(transaction), client_name=client.name if client else None,
        scopes=scope_list(auth_request.scopes) if auth_request is not None else [],
        csrf_token=transaction.csrf, error=error, username=username, notice=notice,
        totp=FACTOR_TOTP in transaction.factors, passkey=FACTOR_PASSKEY in transaction.factors,
        forgot_password=services.mailer is not None,
    )
    response.set_cookie(transaction_cookie(services, transaction))
    return response


def _with_passkey_options(
    services: Services, transaction: Transaction, passkeys: list[Passkey] | None
) -> tuple[Transaction, str | None]:
    """The transaction with a passkey challenge (kept, or a new one) and the options of the
    page's passkey button; no options on a page without one."""
    if transaction.step == "password":
        allow = None
    elif transaction.step == "totp" and FACTOR_PASSKEY in transaction.factors and passkeys:
        allow = passkeys
    else:
        return transaction, None
    challenge = (decode_challenge(transaction.passkey_challenge)
                 if transaction.passkey_challenge is not None else None)
    if challenge is None:
        challenge = new_challenge()
        transaction = msgspec.structs.replace(transaction,
                                              passkey_challenge=encode_challenge(challenge))
    return transaction, authentication_options(services.passkeys, challenge=challenge,
                                               passkeys=allow)


async def second_factor_page(
    services: Services, client: Client | None, transaction: Transaction, **kwargs: Any
) -> Response[str]:
    """:func:`signin_page` for a second-factor step, with the user's passkeys to offer."""
    passkeys = None
    if FACTOR_PASSKEY in transaction.factors and transaction.user_id is not None:
        passkeys = await services.store.list_passkeys(transaction.user_id)
    return signin_page(services, client, transaction, passkeys=passkeys, **kwargs)


def _throttled_message(throttled: Throttled) -> str:
    seconds = max(1, throttled.retry_after)
    wait = f"{seconds} second(s)" if seconds < 60 else f"{-(-seconds // 60)} minute(s)"
    return (f"Too many failed sign-in attempts. For your security, sign-in is paused; "
            f"try again in {wait}.")


def _throttle_policy(services: Services) -> ThrottlePolicy:
    return ThrottlePolicy(ip_limit=services.settings.rate_limit_signin_failures_per_address)


def new_id() -> str:
    return secrets.token_urlsafe(18)


async def credentials_step(
    request: Request[Any, Any, Any], services: Services, client: Client | None,
    transaction: Transaction, field: Callable[[str], str],
) -> SignedIn | Response[Any]:
    """Check the submitted password or TOTP code of ``transaction``: the user who signed
    in, or the page to show next (the TOTP page, or the same step again with an error)."""
    client_ip = request.client.host if request.client else "unknown"
    now = services.clock.now()
    policy = _throttle_policy(services)

    if transaction.step == "password" and field(PASSKEY_FIELD):
        return await _passkey_step(services, client, transaction, field(PASSKEY_FIELD),
                                   client_ip=client_ip, now=now)
    if transaction.step == "password":
        username = field("username").strip()
        if not is_storable(username):
            return signin_page(services, client, transaction, status_code=400,
                               error="The user name contains a character that is not "
                                     "allowed.")
        outcome = await check_password(
            services.store, services.password_hasher, services.events,
            user_name=username, password=field("password"), client_ip=client_ip, now=now,
            policy=policy)
        if isinstance(outcome, Throttled):
            return signin_page(services, client, transaction, username=username,
                               error=_throttled_message(outcome), status_code=429,
                               retry_after=outcome.retry_after)
        if not isinstance(outcome, PasswordAccepted):
            return signin_page(services, client, transaction, username=username,
                               error="The user name or password is incorrect.")
        if outcome.second_factor_required:
            factors = ((FACTOR_TOTP,) if outcome.totp_required else ()) + (
                (FACTOR_PASSKEY,) if outcome.passkeys else ())
            next_step = new_transaction(
                services, request=transaction.request, return_to=transaction.return_to,
                exp=transaction.exp, step="totp", user_id=outcome.user_id,
                auth_time=outcome.auth_time, factors=factors)
            return await second_factor_page(services, client, next_step)
        return SignedIn(outcome.user_id, outcome.auth_time, amr_of(second_factor=None))

    assert transaction.user_id is not None
    # Claimed before the code is checked, so that parallel posts of one cookie cannot all
    # be checked. A replayed cookie starts the sign-in again, from the password.
    if not await services.store.claim_once(f"signin:step:{transaction.id}",
                                           transaction.exp, now):
        restart = new_transaction(services, request=transaction.request,
                                  return_to=transaction.return_to, exp=transaction.exp)
        return signin_page(services, client, restart, status_code=409, error=(
            "This verification page was already used. Please sign in again."))
    if field(PASSKEY_FIELD):
        return await _passkey_step(services, client, transaction, field(PASSKEY_FIELD),
                                   client_ip=client_ip, now=now)
    recovery_code = field("recovery_code")
    if recovery_code:
        totp_outcome = await check_recovery_code(
            services.store, services.events, user_id=transaction.user_id, code=recovery_code,
            client_ip=client_ip, now=now, policy=policy)
    else:
        totp_outcome = await check_totp(
            services.store, services.totp, services.events, seeds=services.secret_sealer,
            user_id=transaction.user_id,
            code=field("code"), client_ip=client_ip, now=now, policy=policy)
    if isinstance(totp_outcome, TotpAccepted):
        # A step-up (no auth_time: the password was proved earlier in the session) is an
        # authentication of its own: it is the session's new auth_time.
        auth_time = transaction.auth_time if transaction.auth_time is not None else now
        return SignedIn(transaction.user_id, auth_time, amr_of(second_factor=AMR_OTP))
    # Another try needs another transaction: this one is spent.
    retry = _retry(transaction)
    if isinstance(totp_outcome, Throttled):
        return await second_factor_page(
            services, client, retry, error=_throttled_message(totp_outcome), status_code=429,
            retry_after=totp_outcome.retry_after)
    return await second_factor_page(services, client, retry, error=(
        "The recovery code is incorrect or was already used." if recovery_code
        else "The code is incorrect or was already used."))


def _retry(transaction: Transaction) -> Transaction:
    """The same step again, under a new id, CSRF token and passkey challenge."""
    return msgspec.structs.replace(transaction, id=new_id(), csrf=secrets.token_urlsafe(32),
                                   passkey_challenge=None)


#: What the page says when a passkey did not sign the user in, by refusal reason. A
#: cancelled browser prompt never gets here: the page's script shows that itself.
_PASSKEY_ERRORS = {
    "malformed": "The passkey's answer could not be read. Please try again.",
    "replayed": "This passkey request was already used. Please try again.",
    "not_verified": "The passkey could not be verified for this site. Please try again.",
    "unknown_credential": "This passkey is not registered here (it may have been removed). "
                          "Sign in another way, then add it again on your account page.",
    "other_user": "This passkey belongs to another account.",
    "inactive": "This account is disabled. Please contact your administrator.",
    "sign_count": "This passkey was refused for your security: it may have been copied. "
                  "Sign in another way and check the passkeys on your account page.",
}


async def _passkey_step(
    services: Services, client: Client | None, transaction: Transaction, response: str, *,
    client_ip: str, now: int,
) -> SignedIn | Response[Any]:
    """A passkey response on the sign-in page (a passkey alone: the passkey names the user)
    or on the second-factor page (the passkey of the user who gave the password)."""
    challenge = (decode_challenge(transaction.passkey_challenge)
                 if transaction.passkey_challenge is not None else None)
    second_factor = transaction.step == "totp"
    if challenge is None or (second_factor and FACTOR_PASSKEY not in transaction.factors):
        return error_page("Invalid form", "This page did not offer a passkey; please start "
                          "again.", 400)
    outcome = await authenticate_with_passkey(
        services.store, services.passkeys, services.events, response=response,
        challenge=challenge, challenge_exp=transaction.exp,
        user_id=transaction.user_id if second_factor else None, client_ip=client_ip, now=now)
    if isinstance(outcome, PasskeyAccepted):
        if not second_factor:
            return SignedIn(outcome.user_id, now, passkey_amr(synced=outcome.passkey.synced))
        assert transaction.user_id is not None
        # As with a TOTP code: a step-up's passkey is the session's new auth_time.
        auth_time = transaction.auth_time if transaction.auth_time is not None else now
        return SignedIn(transaction.user_id, auth_time,
                        amr_of(second_factor=outcome.method))
    assert isinstance(outcome, PasskeyRefused)
    error = _PASSKEY_ERRORS.get(outcome.reason, _PASSKEY_ERRORS["not_verified"])
    retry = _retry(transaction)
    if second_factor:
        return await second_factor_page(services, client, retry, error=error, status_code=400)
    return signin_page(services, client, retry, error=error, status_code=400)

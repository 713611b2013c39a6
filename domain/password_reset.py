"""Password reset by a mailed, single-use link.

Asking (:func:`request_password_reset`) takes a user name or an email address and always
ends the same way for the person asking: the same answer, whether an account matched,
whether it got a mail, whether the asking was throttled. The work is the same too: both
lookups (by user name and by email), both throttle counters, a fresh secret and its hash,
and one write of the account-token part (the new link saved, or, when no mail goes out, a
take of that unsaved hash, which finds nothing), so the time taken does not say whether an
account exists. The mail is sent in the background (``ports.mail``), never waited for.

A mail goes to the user's primary email address (``domain.email_verification
.primary_email``), whatever was typed, and only to an active user who has one. A user
name comes first: an account whose user name is the typed text is the one; else the one
account with that email address (none when several share it).

Asking is throttled per address and per user (fixed windows in the store, so every
instance counts together): over a limit, no mail is sent and ``password_reset_throttled``
is logged, and the answer is still the same.

The link carries a secret (``pr_`` and 256 random bits) that the store keeps only as its
SHA-256 (``AccountTokenStore``), live for ``PASSWORD_RESET_SECONDS``. Opening the link shows
a form and spends nothing (mail scanners open links); setting the password
(:func:`reset_password`) spends it atomically, after the password policy accepted the new
password (a refused password leaves the link usable). Then the user's other live reset
links are revoked, and every session and token of the user ends: whoever knew the old
password, or had a session, is out. A link sent to an address the user no longer has is
refused. The reset does not sign the user in, and changes nothing else: a second factor is
still asked for at the next sign-in.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import msgspec

from domain.email_verification import primary_email
from domain.entities import AccountToken, AccountTokenKind, User
from domain.errors import NotFound
from domain.filters import AttrPath, Compare, ListQuery
from domain.password_policy import DEFAULT_PASSWORD_POLICY, PasswordPolicy, check_password_policy
from domain.text import duration_text
from domain.tokens import hash_token
from domain.user_sessions import PASSWORD_CHANGED, UserSessionEnder, end_sign_ins
from ports.events import Events
from ports.mail import Mailer
from ports.security import PasswordHasher, TokenGenerator
from ports.store import (
    AccountTokenStore,
    CredentialStore,
    EphemeralStore,
    TokenStore,
    UserStore,
)

PASSWORD_RESET: AccountTokenKind = "password_reset"
#: The prefix of a reset link's secret (then 256 random bits, URL-safe base64).
TOKEN_PREFIX = "pr_"
#: Longest text looked up as a user name or an email address.
MAX_LOGIN = 256
_MAX_TOKEN = 128
#: A secret has 43 characters after the prefix; anything much shorter is a damaged link.
_MIN_TOKEN_BODY = 16


class ResetPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How long a link works, and how often one may be asked for: ``per_address``
    requests from one address, ``per_user`` for one account (or one typed text that
    matches none), per ``window_seconds``."""

    link_seconds: int = 1800
    per_address: int = 20
    per_user: int = 3
    window_seconds: int = 3600


DEFAULT_RESET_POLICY = ResetPolicy()


class ResetStore(UserStore, CredentialStore, TokenStore, EphemeralStore, AccountTokenStore,
                 Protocol):
    """What the password-reset use cases need from the store."""


class PasswordReset(msgspec.Struct, frozen=True):
    """The password was set from a reset link; ``sessions`` ended, ``tokens`` revoked."""

    user_id: str
    user_name: str
    sessions: int
    tokens: int


class LinkRefused(msgspec.Struct, frozen=True):
    """The link is unknown, used, expired, or no longer fits its user (deactivated,
    deleted, another email address): nothing was changed."""


ResetOutcome = PasswordReset | LinkRefused


def looks_like_reset_token(token: str) -> bool:
    """Whether ``token`` could be a reset link's secret (else it is not looked up)."""
    body = token[len(TOKEN_PREFIX):]
    return (token.startswith(TOKEN_PREFIX) and len(body) >= _MIN_TOKEN_BODY
            and len(token) <= _MAX_TOKEN
            and all(c.isascii() and (c.isalnum() or c in "-_") for c in body))


def _digest(text: str) -> str:
    # A bounded key that holds no user name or address.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


async def _user_with_email(store: UserStore, address: str) -> User | None:
    if "@" not in address:
        # Not an address: the same query still runs (on text no email equals), so an
        # unknown user name costs what a known one does.
        address = "@" + address
    query = ListQuery(filter=Compare(AttrPath("emails", "value"), "eq", address), count=2)
    found = (await store.list_users(query)).items
    return found[0] if len(found) == 1 else None


async def request_password_reset(
    store: ResetStore, mailer: Mailer, events: Events, tokens: TokenGenerator, *,
    login: str, client_ip: str, reset_url: str, now: int,
    policy: ResetPolicy = DEFAULT_RESET_POLICY,
) -> None:
    """Mail a reset link to the account ``login`` names (a user name or an email
    address), when there is one that may have it (module docstring). Returns nothing: the
    caller answers the same way whatever happened. ``reset_url`` is the page the link
    opens; the secret is added as ``?token=``. ``login`` must be storable (checked at the
    edge). Raises ``StoreUnavailable`` when the store cannot answer."""
    login = login.strip()[:MAX_LOGIN]
    window = policy.window_seconds
    address_count = await store.hit(f"reset:ip:{client_ip}", window, now)
    by_name = await store.find_user_by_name(login) if login else None
    by_email = await _user_with_email(store, login)
    user = by_name or by_email
    user_count = await store.hit(
        f"reset:user:{_digest(user.id if user is not None else login.casefold())}", window, now)
    token = tokens.new(TOKEN_PREFIX)
    token_hash = hash_token(token)
    to = primary_email(user) if user is not None else None

    if address_count > policy.per_address or user_count > policy.per_user:
        outcome = "throttled"
    elif user is None:
        outcome = "unknown_user"
    elif not user.active:
        outcome = "inactive"
    elif to is None:
        outcome = "no_email"
    else:
        outcome = "sent"
    if outcome == "sent" and user is not None and to is not None:
        await store.save_account_token(AccountToken(
            token_hash=token_hash, kind=PASSWORD_RESET, user_id=user.id, email=to.lower(),
            created_at=now, exp=now + policy.link_seconds), now)
        mailer.send("password_reset", to=to, user_id=user.id, values={
            "name": user.display_name or user.user_name,
            "link": f"{reset_url}?token={token}",
            "expires": duration_text(policy.link_seconds),
        })
    else:
        # The write a sent link costs, on a hash nobody holds (see the module docstring).
        await store.take_account_token(PASSWORD_RESET, token_hash, now)
    user_id = user.id if user is not None else None
    if outcome == "throttled":
        scope = "address" if address_count > policy.per_address else "user"
        events.emit("password_reset_throttled", scope=scope, user_id=user_id,
                    client_ip=client_ip)
    else:
        events.emit("password_reset_requested", outcome=outcome, user_id=user_id,
                    client_ip=client_ip)


async def reset_password(
    store: ResetStore, hasher: PasswordHasher, events: Events, sessions: UserSessionEnder, *,
    token: str, password: str, client_ip: str, now: int,
    policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY,
) -> ResetOutcome:
    """Set the password of the user of the reset link ``token`` (module docstring).

    Raises ``PasswordRejected`` (an ``InvalidValue``) for a password the policy refuses,
    before the link is spent; ``StoreUnavailable`` when the store cannot answer.
    """
    check_password_policy(password, policy)
    record = (await store.take_account_token(PASSWORD_RESET, hash_token(token), now)
              if looks_like_reset_token(token) else None)
    if record is None:
        events.emit("password_reset_link_refused", reason="unknown", user_id=None,
                    client_ip=client_ip)
        return LinkRefused()
    try:
        user: User | None = await store.get_user(record.user_id)
    except NotFound:
        user = None
    reason = ("deleted" if user is None else "inactive" if not user.active
              else "email_changed" if (primary_email(user) or "").lower() != record.email
              else None)
    if reason is not None or user is None:
        events.emit("password_reset_link_refused", reason=reason, user_id=record.user_id,
                    client_ip=client_ip)
        return LinkRefused()
    await store.set_password_hash(user.id, await hasher.hash(password))
    await store.revoke_account_tokens(user.id, PASSWORD_RESET, now)
    ended, revoked = await end_sign_ins(store, sessions, user.id, reason=PASSWORD_CHANGED,
                                        now=now)
    events.emit("password_reset_completed", user_id=user.id, sessions_ended=ended,
                tokens_revoked=revoked, client_ip=client_ip)
    return PasswordReset(user_id=user.id, user_name=user.user_name, sessions=ended,
                         tokens=revoked)

"""The signed-in user changes how they sign in (``/account``): the password and the
recovery codes. (Setting up and removing TOTP are :mod:`domain.mfa`'s.)

:func:`change_password` needs the current password (checked and throttled as a sign-in
with it, :func:`domain.signin.check_current_password`), or, for a user who has none (a
passkey-only account), a recent sign-in. The new password meets the policy. Then every
*other* session of the user ends (revocation and back-channel logout, as any logout) and
every access and refresh token of the user is revoked: whoever learnt the old password
keeps nothing it opened. The browser that made the change stays signed in, under a new
session id (a copy of its cookie taken before opens nothing).

:func:`regenerate_recovery_codes` replaces the user's set (the old codes stop working at
once); it is offered only to a user with a second factor, as the codes stand in for one.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from domain.errors import DomainError
from domain.logout import LogoutPorts, end_session_by_sid
from domain.password_policy import (
    DEFAULT_PASSWORD_POLICY,
    PasswordPolicy,
    check_password_policy,
)
from domain.recovery import issue_recovery_codes
from domain.sessions import DEFAULT_SESSION_POLICY, Session, SessionPolicy, reauthenticate
from domain.signin import (
    DEFAULT_THROTTLE,
    SigninStore,
    Throttled,
    ThrottlePolicy,
    check_current_password,
    second_factors,
)
from domain.user_sessions import PASSWORD_CHANGED
from ports.events import Events
from ports.security import PasswordHasher
from ports.store import CredentialStore, SessionStore, TokenStore


class CurrentPasswordRequired(DomainError):
    """The user has a password: changing it needs the current one."""


class WrongCurrentPassword(DomainError):
    """The current password given is not the user's."""


class PasswordCheckThrottled(DomainError):
    """Too many wrong passwords for this user or address: nothing is checked for
    ``retry_after`` seconds (the sign-in's limits)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many wrong passwords; try again later")
        self.retry_after = retry_after


class RecentSignInRequired(DomainError):
    """The change needs a sign-in more recent than the session's."""


class NoSecondFactor(DomainError):
    """The user has no second factor for recovery codes to stand in for."""


class PasswordChanged(msgspec.Struct, frozen=True):
    """What :func:`change_password` did. ``session_id``: the new cookie value of the
    browser that made the change (None when its session ended meanwhile: it signs in
    again); ``first``: the user had no password before."""

    session_id: str | None
    sessions_ended: int
    tokens_revoked: int
    first: bool


class PasswordChangeStore(SigninStore, SessionStore, TokenStore, Protocol):
    """What changing the password needs from the store."""


async def change_password(
    store: PasswordChangeStore,
    hasher: PasswordHasher,
    logout: LogoutPorts,
    *,
    session: Session,
    current_password: str | None,
    new_password: str,
    client_ip: str,
    now: int,
    recent_auth_seconds: int,
    policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY,
    throttle: ThrottlePolicy = DEFAULT_THROTTLE,
    session_policy: SessionPolicy = DEFAULT_SESSION_POLICY,
) -> PasswordChanged:
    """Set the password of ``session``'s user (see the module docstring).

    Raises ``PasswordRejected`` (an ``InvalidValue``: the policy, checked first so a
    refused password costs no attempt), ``CurrentPasswordRequired``,
    ``WrongCurrentPassword``, ``PasswordCheckThrottled``, ``RecentSignInRequired`` (no
    password, and the sign-in is older than ``recent_auth_seconds``), ``NotFound``, and
    ``StoreUnavailable``.
    """
    check_password_policy(new_password, policy)
    user = await store.get_user(session.user_id)
    credentials = await store.get_credentials(user.id)
    first = credentials.password_hash is None
    if first:
        # Nothing to type proves it is the user: the sign-in itself must be recent.
        if now - session.auth_time > recent_auth_seconds:
            raise RecentSignInRequired("setting a password needs a recent sign-in")
    else:
        if not current_password:
            raise CurrentPasswordRequired("the current password is required")
        checked = await check_current_password(store, hasher, logout.events, user=user,
                                               password=current_password,
                                               client_ip=client_ip, now=now, policy=throttle)
        if isinstance(checked, Throttled):
            raise PasswordCheckThrottled(checked.retry_after)
        if not checked:
            raise WrongCurrentPassword("the current password is incorrect")
    await store.set_password_hash(user.id, await hasher.hash(new_password))
    ended = 0
    try:
        # After the new hash, so a session opened meanwhile with the old password is
        # listed here (one opened between this read and the revocation below keeps its
        # cookie, but none of its tokens).
        for held in await store.list_sessions(user.id, now):
            if held.id_hash != session.id_hash and await end_session_by_sid(
                    logout, held.sid, reason=PASSWORD_CHANGED):
                ended += 1
    finally:
        # The current browser's applications too: a token is no sign-in of this browser.
        revoked = await store.revoke_subject(user.id, now)
    renewed = await reauthenticate(store, logout.token_generator, session,
                                   auth_time=session.auth_time, amr=session.amr, now=now,
                                   policy=session_policy)
    logout.events.emit("password_changed", user_id=user.id, first=first,
                       sessions_ended=ended, tokens_revoked=revoked)
    return PasswordChanged(session_id=renewed[0] if renewed is not None else None,
                           sessions_ended=ended, tokens_revoked=revoked, first=first)


class RecoveryCodesIssued(msgspec.Struct, frozen=True):
    """A new set of recovery codes (to show once); ``replaced``: unused codes of an
    earlier set stopped working."""

    codes: tuple[str, ...]
    replaced: bool


async def regenerate_recovery_codes(
    store: CredentialStore, events: Events, *, user_id: str
) -> RecoveryCodesIssued:
    """A new set of recovery codes for the user, replacing the old set at once (event
    ``recovery_codes_generated`` reason ``regenerated``). Raises ``NoSecondFactor`` when
    the user has neither a TOTP factor nor a passkey (codes would stand in for nothing;
    they come with the first factor), and ``NotFound``."""
    if not await second_factors(store, user_id):
        raise NoSecondFactor("recovery codes need a second factor (an authenticator app or "
                             "a passkey) first")
    left = await store.count_recovery_codes(user_id)
    codes = await issue_recovery_codes(store, events, user_id, reason="regenerated")
    return RecoveryCodesIssued(codes=codes, replaced=left > 0)

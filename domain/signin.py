"""Signing a user in: the password step, the TOTP step, and throttling failed attempts.

Each step returns an outcome value (never raises for a wrong secret), so the HTTP layer
only chooses a page. Failures are counted per user name and per client address in the
store's fixed-window counters, which live wherever token state lives (Redis, PostgreSQL), so
a limit holds across every instance. Each attempt is counted *before* it is checked, so that
parallel guesses cannot all pass the limit before the first one fails; a success gives its
count back, so a user who types the password right is never slowed down by their own success.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import msgspec

from domain.entities import Credentials, User
from domain.errors import NotFound
from domain.mfa import use_totp_code
from domain.password_policy import (
    DEFAULT_PASSWORD_POLICY,
    MAX_PASSWORD_LENGTH,
    PasswordPolicy,
    check_password_policy,
)
from domain.text import is_storable
from ports.events import Events
from ports.otp import Totp
from ports.security import PasswordHasher
from ports.store import CredentialStore, EphemeralStore, TokenStore, UserStore


class ThrottlePolicy(msgspec.Struct, frozen=True):
    """How many failed sign-ins are allowed per user name and per client address in a window.

    The per-address limit is higher, as many users may share one address (NAT, proxies).
    """

    user_limit: int = 5
    ip_limit: int = 20
    window_seconds: int = 900


DEFAULT_THROTTLE = ThrottlePolicy()


class PasswordAccepted(msgspec.Struct, frozen=True):
    """The password was right. ``totp_required`` says a confirmed TOTP factor must follow."""

    user_id: str
    auth_time: int
    totp_required: bool


class TotpAccepted(msgspec.Struct, frozen=True):
    """The TOTP code was valid and unused: the sign-in proved a second factor."""

    user_id: str


class Rejected(msgspec.Struct, frozen=True):
    """Wrong user name, password or code (deliberately not saying which)."""


class Throttled(msgspec.Struct, frozen=True):
    """Too many recent failures: no attempt is checked for ``retry_after`` seconds."""

    retry_after: int


PasswordOutcome = PasswordAccepted | Rejected | Throttled
TotpOutcome = TotpAccepted | Rejected | Throttled


class SigninStore(UserStore, CredentialStore, EphemeralStore, Protocol):
    """What the sign-in use cases need from the store."""


def _user_key(user_name: str) -> str:
    # Hashed so that a key has a bounded size whatever was typed, and holds no user name.
    digest = hashlib.sha256(user_name.casefold().encode("utf-8")).hexdigest()[:32]
    return f"signin:user:{digest}"


def _ip_key(client_ip: str) -> str:
    return f"signin:ip:{client_ip}"


async def _reserve(
    store: EphemeralStore,
    events: Events,
    policy: ThrottlePolicy,
    user_name: str,
    client_ip: str,
    now: int,
) -> Throttled | None:
    """Count this attempt (atomically) or, over a limit, give the count back and refuse."""
    window = policy.window_seconds
    per_user = await store.hit(_user_key(user_name), window, now)
    per_ip = await store.hit(_ip_key(client_ip), window, now)
    if per_user <= policy.user_limit and per_ip <= policy.ip_limit:
        return None
    await _give_back(store, policy, user_name, client_ip, now)
    events.emit(
        "signin_locked",
        scope="user" if per_user >= policy.user_limit else "ip",
        client_ip=client_ip,
    )
    return Throttled(retry_after=(now // window + 1) * window - now)


async def _give_back(
    store: EphemeralStore, policy: ThrottlePolicy, user_name: str, client_ip: str, now: int
) -> None:
    # The same ``now`` as the reservation, so the same window.
    await store.hit(_user_key(user_name), policy.window_seconds, now, -1)
    await store.hit(_ip_key(client_ip), policy.window_seconds, now, -1)


async def check_password(
    store: SigninStore,
    hasher: PasswordHasher,
    events: Events,
    *,
    user_name: str,
    password: str,
    client_ip: str,
    now: int,
    policy: ThrottlePolicy = DEFAULT_THROTTLE,
) -> PasswordOutcome:
    """The first step of a sign-in.

    Unknown users cost one argon2 verification like known ones, so timing does not tell them
    apart. Inactive users and users without a password are rejected after the same work.
    While the user name or the address is over its limit, nothing is checked. Raises
    ``StoreUnavailable`` when the store cannot answer (no sign-in then: fail closed).
    """
    throttled = await _reserve(store, events, policy, user_name, client_ip, now)
    if throttled is not None:
        return throttled
    user: User | None = None
    credentials = Credentials(user_id="")
    if user_name and len(user_name) <= 256 and len(password) <= MAX_PASSWORD_LENGTH:
        user = await store.find_user_by_name(user_name)
    if user is not None:
        credentials = await store.get_credentials(user.id)
    matches = await hasher.verify(credentials.password_hash, password[:MAX_PASSWORD_LENGTH])
    if user is None or not matches or not user.active:
        reason = "unknown_user" if user is None else "inactive" if matches else "bad_password"
        events.emit(
            "signin_failed",
            reason=reason,
            user_id=user.id if user is not None else None,
            client_ip=client_ip,
        )
        return Rejected()
    await _give_back(store, policy, user_name, client_ip, now)
    totp_required = credentials.totp_confirmed and credentials.totp_secret is not None
    if not totp_required:
        events.emit("signin_succeeded", user_id=user.id, amr="pwd")
    return PasswordAccepted(user_id=user.id, auth_time=now, totp_required=totp_required)


async def check_totp(
    store: SigninStore,
    totp: Totp,
    events: Events,
    *,
    user_id: str,
    code: str,
    client_ip: str,
    now: int,
    policy: ThrottlePolicy = DEFAULT_THROTTLE,
) -> TotpOutcome:
    """The second step, after ``PasswordAccepted`` with ``totp_required``.

    Wrong codes count as failed sign-ins (six digits are guessable without a limit). A code
    is accepted once: a replay is rejected like a wrong code. A user deactivated between the
    steps is rejected. Raises ``StoreUnavailable`` when the store cannot answer.
    """
    user = await store.get_user(user_id)
    throttled = await _reserve(store, events, policy, user.user_name, client_ip, now)
    if throttled is not None:
        return throttled
    credentials = await store.get_credentials(user_id)
    secret = credentials.totp_secret
    valid = (
        user.active
        and credentials.totp_confirmed
        and secret is not None
        and await use_totp_code(store, totp, user_id, secret, code, now)
    )
    if not valid:
        events.emit("signin_failed", reason="bad_totp", user_id=user_id, client_ip=client_ip)
        return Rejected()
    await _give_back(store, policy, user.user_name, client_ip, now)
    events.emit("signin_succeeded", user_id=user_id, amr="pwd otp")
    return TotpAccepted(user_id=user_id)


class PasswordStore(UserStore, CredentialStore, TokenStore, Protocol):
    """What :func:`set_password` needs from the store."""


async def set_password(
    store: PasswordStore, hasher: PasswordHasher, *, user_name: str, password: str | None,
    now: int, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY,
) -> User:
    """Set (or, with None, clear) the password of the user named ``user_name``
    (case-insensitively); return the user.

    Every token of the user is revoked: whoever knew the old password must not keep the
    sessions it opened. Raises ``NotFound`` for no such user and ``PasswordRejected`` (an
    ``InvalidValue``) for a password the policy refuses.
    """
    if password is not None:
        check_password_policy(password, policy)
    user = await store.find_user_by_name(user_name) if is_storable(user_name) else None
    if user is None:
        raise NotFound(f"no user named {user_name!r}")
    await store.set_password_hash(
        user.id, await hasher.hash(password) if password is not None else None)
    await store.revoke_subject(user.id, now)
    return user

"""Signing a user in: the password step, the TOTP step, and throttling failed attempts.

Each step returns an outcome value (never raises for a wrong secret), so the HTTP layer
only chooses a page. Failures are counted in the store's fixed-window counters, which live
wherever token state lives (Redis, PostgreSQL), so a limit holds across every instance:

- per (address, user name): a hard limit, so one address gets only a few guesses at one
  account per window, and nobody else is refused by them;
- per user name, across addresses: progressive delays (doubling, capped) through a claim
  shared by every address that has failures *of its own* for that user. A distributed
  guesser is slowed; an address with no failures of its own for the user is never delayed,
  so the owner of the account, typing the right password from elsewhere, always gets in;
- per address, across user names (0: off): password spraying from one address;
- wrong TOTP codes per user: a hard limit, as only someone who knows the password gets
  that far.

Each attempt is counted *before* it is checked, so that parallel guesses cannot all pass
a limit before the first one fails; a success gives its count back (and clears its
address's failures for that user), so a user is never slowed down by their own success.
"""

from __future__ import annotations

import hashlib
from typing import Literal, Protocol

import msgspec

from domain.entities import Credentials, User
from domain.errors import NotFound
from domain.mfa import read_factor, reseal_factor, use_totp_code
from domain.password_policy import (
    DEFAULT_PASSWORD_POLICY,
    MAX_PASSWORD_LENGTH,
    PasswordPolicy,
    check_password_policy,
)
from domain.recovery import spend_recovery_code
from domain.text import is_storable
from domain.user_sessions import PASSWORD_CHANGED, UserSessionEnder, end_sign_ins
from ports.events import Events
from ports.otp import Totp
from ports.sealing import SecretSealer
from ports.security import PasswordHasher
from ports.store import CredentialStore, EphemeralStore, TokenStore, UserStore


class ThrottlePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The sign-in throttle's limits; counts are failures per ``window_seconds``.

    ``pair_limit``: failures per (address, user name); past it, that address may not try
    that user name again until the window ends. ``ip_limit``: failures per address across
    user names (0 switches it off; many users may share an address, so it is higher).
    ``user_free``: failures per user name, across addresses, before delays start; each
    further failure doubles the delay from ``delay_base_seconds`` up to
    ``delay_cap_seconds``. ``totp_limit``: wrong TOTP codes per user, across addresses.
    """

    pair_limit: int = 5
    ip_limit: int = 20
    user_free: int = 5
    delay_base_seconds: int = 1
    delay_cap_seconds: int = 60
    totp_limit: int = 5
    window_seconds: int = 900

    def delay(self, user_failures: int) -> int:
        """Seconds between checked attempts at a user with ``user_failures`` failures."""
        excess = user_failures - self.user_free
        if excess < 0:
            return 0
        # The shift is bounded so that a long attack does not build ever larger integers.
        return min(self.delay_base_seconds << min(excess, 32), self.delay_cap_seconds)


DEFAULT_THROTTLE = ThrottlePolicy()


#: The second factors a user may have.
FACTOR_TOTP = "totp"
FACTOR_PASSKEY = "passkey"


async def second_factors(store: CredentialStore, user_id: str) -> tuple[str, ...]:
    """The user's second factors (:data:`FACTOR_TOTP`: a confirmed TOTP seed;
    :data:`FACTOR_PASSKEY`: at least one passkey); empty for none or no such user. A
    recovery code is not a factor of its own: it stands in for one."""
    try:
        credentials = await store.get_credentials(user_id)
    except NotFound:
        return ()
    totp = credentials.totp_confirmed and credentials.totp_secret is not None
    passkeys = bool(await store.list_passkeys(user_id))
    return ((FACTOR_TOTP,) if totp else ()) + ((FACTOR_PASSKEY,) if passkeys else ())


class PasswordAccepted(msgspec.Struct, frozen=True):
    """The password was right. ``totp_required`` says the user has a confirmed TOTP factor,
    ``passkeys`` that they have passkeys; with either, a second factor must follow (a
    recovery code may stand in for it)."""

    user_id: str
    auth_time: int
    totp_required: bool
    passkeys: bool = False

    @property
    def second_factor_required(self) -> bool:
        return self.totp_required or self.passkeys


class TotpAccepted(msgspec.Struct, frozen=True):
    """The TOTP code (or a recovery code) was valid and unused: the sign-in proved a
    second factor."""

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


def _digest(text: str) -> str:
    # Hashed so that a key has a bounded size whatever was typed, and holds no user name.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class _Reservation(msgspec.Struct, frozen=True):
    """The counts one attempt took, to give back when it succeeds."""

    keys: tuple[str, ...]
    pair_key: str
    pair_count: int


async def _reserve(
    store: EphemeralStore,
    events: Events,
    policy: ThrottlePolicy,
    *,
    step: Literal["password", "totp"],
    user_name: str,
    user_id: str | None,
    client_ip: str,
    now: int,
) -> Throttled | _Reservation:
    """Count this attempt (atomically) or, over a limit, give the counts back and refuse."""
    window = policy.window_seconds
    name = user_name.casefold()
    pair_key = f"signin:pair:{_digest(client_ip + chr(0) + name)}"
    pair = await store.hit(pair_key, window, now)
    keys = [pair_key]
    refused: tuple[str, int] | None = None
    if pair > policy.pair_limit:
        refused = ("user_at_address", policy.pair_limit)
    if refused is None and policy.ip_limit > 0:
        ip_key = f"signin:ip:{client_ip}"
        keys.append(ip_key)
        if await store.hit(ip_key, window, now) > policy.ip_limit:
            refused = ("address", policy.ip_limit)
    if refused is None and step == "totp":
        totp_key = f"signin:totp:{_digest(user_id or name)}"
        keys.append(totp_key)
        if await store.hit(totp_key, window, now) > policy.totp_limit:
            refused = ("totp", policy.totp_limit)
    retry_after = (now // window + 1) * window - now
    if refused is None and step == "password":
        user_key = f"signin:user:{_digest(name)}"
        keys.append(user_key)
        user_failures = await store.hit(user_key, window, now) - 1
        delay = policy.delay(user_failures)
        # Only an address that has failed for this user itself waits: a fresh address (the
        # owner, elsewhere) is always checked. The claim lets one attempt through per delay.
        if pair > 1 and delay > 0:
            gate = f"signin:gate:{_digest(name)}"
            if not await store.claim_once(gate, now + delay, now):
                refused, retry_after = ("user_delay", delay), delay
    if refused is None:
        return _Reservation(keys=tuple(keys), pair_key=pair_key, pair_count=pair)
    for key in keys:
        await store.hit(key, window, now, -1)
    events.emit("signin_locked", scope=refused[0], limit=refused[1], client_ip=client_ip,
                retry_after=retry_after)
    return Throttled(retry_after=retry_after)


async def _give_back(
    store: EphemeralStore, policy: ThrottlePolicy, reservation: _Reservation, now: int
) -> None:
    # The same ``now`` as the reservation, so the same window. The address's earlier
    # failures for this user go too: it has just proved to be the user's own.
    for key in reservation.keys:
        amount = reservation.pair_count if key == reservation.pair_key else 1
        await store.hit(key, policy.window_seconds, now, -amount)


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
    While this address is over a limit, or must wait out the user name's delay, nothing is
    checked (module docstring). Raises ``StoreUnavailable`` when the store cannot answer (no
    sign-in then: fail closed).
    """
    reservation = await _reserve(store, events, policy, step="password", user_name=user_name,
                                 user_id=None, client_ip=client_ip, now=now)
    if isinstance(reservation, Throttled):
        return reservation
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
    await _give_back(store, policy, reservation, now)
    factors = await second_factors(store, user.id)
    totp_required, passkeys = FACTOR_TOTP in factors, FACTOR_PASSKEY in factors
    if not factors:
        events.emit("signin_succeeded", user_id=user.id, amr="pwd")
    return PasswordAccepted(user_id=user.id, auth_time=now, totp_required=totp_required,
                            passkeys=passkeys)


async def check_totp(
    store: SigninStore,
    totp: Totp,
    events: Events,
    *,
    seeds: SecretSealer,
    user_id: str,
    code: str,
    client_ip: str,
    now: int,
    policy: ThrottlePolicy = DEFAULT_THROTTLE,
) -> TotpOutcome:
    """The second step, after ``PasswordAccepted`` with ``totp_required``.

    Wrong codes count per user, across addresses, with a hard limit (six digits are
    guessable without one, and only someone who knows the password gets here), and per
    address and (address, user name) like passwords. A code
    is accepted once: a replay is rejected like a wrong code. A user deactivated between the
    steps is rejected. The seed is opened with ``seeds`` (one that does not open fails
    closed, as a wrong code) and sealed again after a success when it was stored in clear or
    under an older key. Raises ``StoreUnavailable`` when the store cannot answer.
    """
    user = await store.get_user(user_id)
    reservation = await _reserve(store, events, policy, step="totp", user_name=user.user_name,
                                 user_id=user_id, client_ip=client_ip, now=now)
    if isinstance(reservation, Throttled):
        return reservation
    credentials = await store.get_credentials(user_id)
    factor = read_factor(seeds, events, credentials)
    valid = (
        user.active
        and factor is not None
        and await use_totp_code(store, totp, user_id, factor.secret, code, now)
    )
    if not valid:
        events.emit("signin_failed", reason="bad_totp", user_id=user_id, client_ip=client_ip)
        return Rejected()
    await _give_back(store, policy, reservation, now)
    await reseal_factor(store, seeds, user_id, factor)
    events.emit("signin_succeeded", user_id=user_id, amr="pwd otp")
    return TotpAccepted(user_id=user_id)


async def check_current_password(
    store: SigninStore,
    hasher: PasswordHasher,
    events: Events,
    *,
    user: User,
    password: str,
    client_ip: str,
    now: int,
    policy: ThrottlePolicy = DEFAULT_THROTTLE,
) -> bool | Throttled:
    """Whether ``password`` is the signed-in ``user``'s current one (to change it, on
    ``/account``), counted and limited exactly as a sign-in with it: a stolen session is
    no faster a way to guess the password than the sign-in page. A user without a password
    never matches (after the same work). Raises ``StoreUnavailable``."""
    reservation = await _reserve(store, events, policy, step="password",
                                 user_name=user.user_name, user_id=None,
                                 client_ip=client_ip, now=now)
    if isinstance(reservation, Throttled):
        return reservation
    credentials = await store.get_credentials(user.id)
    if not await hasher.verify(credentials.password_hash, password[:MAX_PASSWORD_LENGTH]):
        events.emit("signin_failed", reason="bad_current_password", user_id=user.id,
                    client_ip=client_ip)
        return False
    await _give_back(store, policy, reservation, now)
    return True


class PasswordStore(UserStore, CredentialStore, TokenStore, Protocol):
    """What :func:`set_password` needs from the store."""


async def set_password(
    store: PasswordStore, hasher: PasswordHasher, *, user_name: str, password: str | None,
    now: int, sessions: UserSessionEnder, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY,
) -> User:
    """Set (or, with None, clear) the password of the user named ``user_name``
    (case-insensitively); return the user.

    Every browser session of the user is ended (``sessions``, reason ``password_changed``)
    and every token of the user revoked: whoever knew the old password must not keep the
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
    await end_sign_ins(store, sessions, user.id, reason=PASSWORD_CHANGED, now=now)
    return user


async def check_recovery_code(
    store: SigninStore,
    events: Events,
    *,
    user_id: str,
    code: str,
    client_ip: str,
    now: int,
    policy: ThrottlePolicy = DEFAULT_THROTTLE,
) -> TotpOutcome:
    """The second step with a recovery code instead of the TOTP code or a passkey
    (:mod:`domain.recovery`): counted and limited as a TOTP code is (the same per-user
    counter), accepted once. A user deactivated between the steps is rejected."""
    user = await store.get_user(user_id)
    reservation = await _reserve(store, events, policy, step="totp", user_name=user.user_name,
                                 user_id=user_id, client_ip=client_ip, now=now)
    if isinstance(reservation, Throttled):
        return reservation
    if not (user.active and await spend_recovery_code(store, events, user_id, code,
                                                      client_ip=client_ip)):
        events.emit("signin_failed", reason="bad_recovery_code", user_id=user_id,
                    client_ip=client_ip)
        return Rejected()
    await _give_back(store, policy, reservation, now)
    events.emit("signin_succeeded", user_id=user_id, amr="pwd otp")
    return TotpAccepted(user_id=user_id)

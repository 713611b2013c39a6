"""TOTP as a second factor: enrolment, confirmation, the stored seed, and resets.

Who may enrol: a token of the user with the ``mfa`` scope whose sign-in is recent
(``auth_time`` at most ``recent_auth_seconds`` ago), for registering and for confirming.
Replacing a confirmed factor also needs ``current_code``, a code of that factor: a stolen
token, or a stolen password, is then not enough to swap the second factor for the
attacker's. A user who lost the factor is reset by an administrator (``reset_mfa``).

A pending enrolment never touches the stored factor. ``register_totp`` returns the new seed
sealed (with the user id, an expiry and a fingerprint of the factor it replaces) as an
opaque ``enrollment`` value the client hands back to ``confirm_totp``; only a valid code for
that seed stores it, confirmed, and only while the factor it replaces is still the stored
one. So an abandoned re-enrolment leaves the confirmed factor in force.

The same enrolment serves the signed-in browser on ``/account``
(:func:`begin_totp_enrolment`, :func:`complete_totp_enrolment`; the page checks the
recent sign-in instead of a token). Confirming a factor issues the user's first recovery
codes when they have none (:mod:`domain.recovery`); :func:`remove_totp` takes a code of the
factor or a recovery code, and clears the codes with the last second factor.

Seeds are sealed at rest with a ``SecretSealer`` (key outside the store, the user id as
associated data), here in the use cases, so every store keeps an opaque string. A seed
stored in clear by an earlier version, or sealed with an older key, is accepted and sealed
again (current key) on its next successful use.

Every accepted code is claimed in the store (``totp:<user>:<step>``) until it would stop
being valid, so the same code cannot be used twice, on this instance or any other sharing
the store.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal, Protocol

import msgspec

from domain.entities import AccessToken, Credentials, User
from domain.errors import DomainError, NotFound
from domain.recovery import (
    drop_codes_without_factor,
    ensure_recovery_codes,
    looks_like_recovery_code,
    spend_recovery_code,
)
from domain.user_sessions import MFA_RESET, UserSessionEnder, end_sign_ins
from ports.events import Events
from ports.otp import Totp
from ports.sealing import Sealer, SecretSealer, UnreadableSecret
from ports.store import CredentialStore, EphemeralStore, TokenStore, UserStore

#: How many steps after its own a code stays valid (the port accepts one step either side).
_STEPS_VALID_AFTER = 2
#: How long a registered seed can be confirmed: enough to scan a QR code and type a code.
ENROLMENT_SECONDS = 600
#: Wrong codes allowed at confirmation per user and window, as at sign-in.
VERIFY_LIMIT = 5
VERIFY_WINDOW_SECONDS = 900
#: The user scope a token needs to enrol, confirm or replace a TOTP factor.
MFA_SCOPE = "mfa"
#: How recent the sign-in behind such a token must be, by default (MFA_RECENT_AUTH_SECONDS).
RECENT_AUTH_SECONDS = 600


class TotpEnrolment(msgspec.Struct, frozen=True):
    """A new, not yet confirmed factor: the seed, the ``otpauth://`` URI for an app, and the
    sealed ``enrollment`` to hand back with a code, valid until ``expires_at``."""

    secret: str
    otpauth_uri: str
    enrollment: str
    expires_at: int


class _PendingFactor(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # ``kind`` keeps other sealed state (the sign-in transaction shares the key) from ever
    # being read as an enrolment.
    kind: Literal["totp-enrolment"]
    user_id: str
    secret: str
    exp: int
    #: Fingerprint of the confirmed factor this enrolment replaces (proved by a code of it).
    replaces: str | None = None


_encode_pending = msgspec.json.Encoder().encode
_decode_pending = msgspec.json.Decoder(_PendingFactor).decode


class FactorAlreadyActive(DomainError):
    """A confirmed factor exists; replacing it needs ``current_code``, a code of it."""


class FactorUnreadable(FactorAlreadyActive):
    """The stored factor cannot be opened (its sealing key is not configured): it cannot be
    checked, so it cannot be replaced by the user; an administrator resets it."""


class NoFactor(DomainError):
    """The user has no confirmed TOTP factor to remove."""


class InvalidCurrentCode(DomainError):
    """``current_code`` is not a valid, unused code of the confirmed factor."""


class NotAllowed(DomainError):
    """The token may not manage TOTP factors: no user, or no ``mfa`` scope."""


class SignInTooOld(DomainError):
    """The token's sign-in is older than ``max_age`` seconds: sign in again."""

    def __init__(self, max_age: int) -> None:
        super().__init__(f"the sign-in is older than {max_age} seconds; sign in again")
        self.max_age = max_age


class InvalidEnrollment(DomainError):
    """The enrolment value was altered, has expired, or belongs to another user."""


class TooManyCodes(DomainError):
    """Too many wrong codes recently: none is checked for ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many wrong codes; try again later")
        self.retry_after = retry_after


async def use_totp_code(
    store: EphemeralStore, totp: Totp, user_id: str, secret: str, code: str, now: int
) -> bool:
    """True when ``code`` is valid for ``secret`` now and was not used before.

    The code is consumed: a second call with it fails until it would have expired anyway.
    Raises ``StoreUnavailable`` when the replay check cannot be made (callers fail closed).
    """
    step = totp.matching_step(secret, code, now)
    if step is None:
        return False
    valid_until = (step + _STEPS_VALID_AFTER) * totp.step_seconds
    return await store.claim_once(f"totp:{user_id}:{step}", valid_until, now)


class _MfaStore(UserStore, CredentialStore, EphemeralStore, Protocol):
    """What the MFA use cases need from the store."""


class StoredFactor(msgspec.Struct, frozen=True):
    """A confirmed factor as read from the store: the opened ``secret``, the ``stored``
    value, and whether that value must be sealed again (clear, or an older key)."""

    secret: str
    stored: str
    reseal: bool


def _associated_data(user_id: str) -> str:
    return f"totp:{user_id}"


def seal_factor(seeds: SecretSealer, user_id: str, secret: str) -> str:
    """The value to store for ``secret`` as the TOTP seed of ``user_id``."""
    return seeds.seal(secret, _associated_data(user_id))


def _fingerprint(secret: str) -> str:
    # Names a seed inside a sealed enrolment; a hash of 160 random bits reveals nothing.
    return hashlib.sha256(b"auth-service totp factor\x00" + secret.encode()).hexdigest()


def open_factor(seeds: SecretSealer, credentials: Credentials) -> StoredFactor | None:
    """The user's confirmed factor, opened; None when there is none.

    A value in clear (stored before seeds were sealed) is accepted, marked for resealing.
    Raises ``UnreadableSecret`` for a sealed value that does not open (altered, moved from
    another user, or sealed with a key that is not configured).
    """
    stored = credentials.totp_secret
    if not credentials.totp_confirmed or stored is None:
        return None
    if not seeds.is_sealed(stored):
        return StoredFactor(secret=stored, stored=stored, reseal=True)
    opened = seeds.open(stored, _associated_data(credentials.user_id))
    return StoredFactor(secret=opened.plaintext, stored=stored, reseal=opened.stale)


def read_factor(
    seeds: SecretSealer, events: Events, credentials: Credentials
) -> StoredFactor | None:
    """:func:`open_factor` for the sign-in: a factor that does not open counts as no valid
    code (fail closed) and is reported as ``totp_seed_unreadable``."""
    try:
        return open_factor(seeds, credentials)
    except UnreadableSecret as exc:
        events.emit("totp_seed_unreadable", user_id=credentials.user_id, detail=str(exc))
        return None


async def reseal_factor(
    store: CredentialStore, seeds: SecretSealer, user_id: str, factor: StoredFactor | None
) -> None:
    """After a successful use: seal a clear or stale seed again with the current key.

    Written only if the stored value is still the one that was read, so a factor replaced
    or reset meanwhile is not brought back (a narrow race remains between that read and the
    write; the store offers no compare-and-set on credentials).
    """
    if factor is None or not factor.reseal:
        return
    current = await store.get_credentials(user_id)
    if current.totp_confirmed and current.totp_secret == factor.stored:
        await store.set_totp(user_id, seal_factor(seeds, user_id, factor.secret), confirmed=True)


def authorize_factor_change(caller: AccessToken, *, now: int, recent_auth_seconds: int) -> str:
    """The user id of a token allowed to enrol or replace its user's TOTP factor.

    Raises ``NotAllowed`` for a token without a user or without the ``mfa`` scope, and
    ``SignInTooOld`` when its sign-in (``auth_time``, kept across refreshes) is older than
    ``recent_auth_seconds``: a token that leaked, or a long-lived refreshed session, is not
    enough to change the second factor.
    """
    if caller.sub is None:
        raise NotAllowed("the token has no user")
    if MFA_SCOPE not in caller.scope.split():
        raise NotAllowed(f"the token needs the {MFA_SCOPE!r} scope")
    if caller.auth_time is None or now - caller.auth_time > recent_auth_seconds:
        raise SignInTooOld(recent_auth_seconds)
    return caller.sub


async def _counted(store: EphemeralStore, user_id: str, now: int) -> str:
    """Count a code attempt (before checking it, so parallel guesses cannot all slip under
    the limit; the pattern of the sign-in throttle) and return the counter's key."""
    key = f"mfa:verify:{user_id}"
    window = VERIFY_WINDOW_SECONDS
    if await store.hit(key, window, now) > VERIFY_LIMIT:
        await store.hit(key, window, now, -1)
        raise TooManyCodes(retry_after=(now // window + 1) * window - now)
    return key


async def _check_code(
    store: EphemeralStore, totp: Totp, user_id: str, secret: str, code: str, now: int
) -> bool:
    """``use_totp_code`` under the per-user attempt limit; a success gives its count back."""
    key = await _counted(store, user_id, now)
    if not await use_totp_code(store, totp, user_id, secret, code, now):
        return False
    await store.hit(key, VERIFY_WINDOW_SECONDS, now, -1)
    return True


def _current_factor(seeds: SecretSealer, credentials: Credentials) -> StoredFactor | None:
    try:
        return open_factor(seeds, credentials)
    except UnreadableSecret as exc:
        raise FactorUnreadable(
            "the current TOTP factor cannot be checked; an administrator must reset it"
        ) from exc


async def register_totp(
    store: _MfaStore,
    totp: Totp,
    sealer: Sealer,
    seeds: SecretSealer,
    *,
    caller: AccessToken,
    issuer: str,
    current_code: str | None,
    recent_auth_seconds: int,
    now: int,
) -> TotpEnrolment:
    """A new seed for the caller's user, sealed in ``enrollment``; no factor is changed.

    ``caller`` must pass :func:`authorize_factor_change`; the rest is
    :func:`begin_totp_enrolment`. Raises ``NotAllowed``, ``SignInTooOld`` and what
    :func:`begin_totp_enrolment` raises.
    """
    user_id = authorize_factor_change(caller, now=now, recent_auth_seconds=recent_auth_seconds)
    return await begin_totp_enrolment(store, totp, sealer, seeds, user_id=user_id,
                                      issuer=issuer, current_code=current_code, now=now)


async def begin_totp_enrolment(
    store: _MfaStore,
    totp: Totp,
    sealer: Sealer,
    seeds: SecretSealer,
    *,
    user_id: str,
    issuer: str,
    current_code: str | None,
    now: int,
) -> TotpEnrolment:
    """A new seed for the user, sealed in ``enrollment``; no factor is changed. The caller
    has checked that the user may change the factor (a token: :func:`register_totp`; a
    browser session signed in recently: ``/account``).

    When a confirmed factor exists, ``current_code`` must be a valid, unused code of it: it
    is claimed (it cannot be used again, to sign in either) and counts towards the attempt
    limit when wrong. Raises ``FactorAlreadyActive`` (no ``current_code``; or
    ``FactorUnreadable``), ``InvalidCurrentCode``, ``TooManyCodes``, and ``NotFound`` for an
    unknown user.
    """
    user = await store.get_user(user_id)
    current = _current_factor(seeds, await store.get_credentials(user_id))
    replaces: str | None = None
    if current is not None:
        if current_code is None:
            raise FactorAlreadyActive(
                "a confirmed TOTP factor exists; send current_code, a code from it, to "
                "replace it"
            )
        if not await _check_code(store, totp, user_id, current.secret, current_code, now):
            raise InvalidCurrentCode("current_code is incorrect or was already used")
        await reseal_factor(store, seeds, user_id, current)
        replaces = _fingerprint(current.secret)
    secret = totp.new_secret()
    expires_at = now + ENROLMENT_SECONDS
    pending = _PendingFactor(kind="totp-enrolment", user_id=user_id, secret=secret,
                             exp=expires_at, replaces=replaces)
    return TotpEnrolment(
        secret=secret,
        otpauth_uri=totp.provisioning_uri(secret, user.user_name, issuer),
        enrollment=sealer.seal(_encode_pending(pending)),
        expires_at=expires_at,
    )


def _open_enrollment(sealer: Sealer, enrollment: str, user_id: str, now: int) -> _PendingFactor:
    payload = sealer.unseal(enrollment)
    if payload is None:
        raise InvalidEnrollment("the enrollment is not valid; register again")
    try:
        pending = _decode_pending(payload)
    except msgspec.ValidationError as exc:
        raise InvalidEnrollment("the enrollment is not valid; register again") from exc
    if pending.user_id != user_id:
        raise InvalidEnrollment("the enrollment belongs to another user")
    if pending.exp <= now:
        raise InvalidEnrollment("the enrollment has expired; register again")
    return pending


class TotpConfirmed(msgspec.Struct, frozen=True):
    """The enrolment's seed is the user's confirmed factor now. ``recovery_codes``: the
    user's first set of recovery codes, issued with it (to show once); empty when the user
    still had codes (:func:`domain.recovery.ensure_recovery_codes`)."""

    recovery_codes: tuple[str, ...] = ()


async def confirm_totp(
    store: _MfaStore,
    totp: Totp,
    sealer: Sealer,
    seeds: SecretSealer,
    events: Events,
    *,
    caller: AccessToken,
    enrollment: str,
    code: str,
    recent_auth_seconds: int,
    now: int,
) -> TotpConfirmed | None:
    """:func:`complete_totp_enrolment` for a token that passes
    :func:`authorize_factor_change` (raises ``NotAllowed`` and ``SignInTooOld`` otherwise).
    """
    user_id = authorize_factor_change(caller, now=now, recent_auth_seconds=recent_auth_seconds)
    return await complete_totp_enrolment(store, totp, sealer, seeds, events, user_id=user_id,
                                         enrollment=enrollment, code=code, now=now)


async def complete_totp_enrolment(
    store: _MfaStore,
    totp: Totp,
    sealer: Sealer,
    seeds: SecretSealer,
    events: Events,
    *,
    user_id: str,
    enrollment: str,
    code: str,
    now: int,
) -> TotpConfirmed | None:
    """Store the enrolment's seed, sealed, as the user's confirmed factor when ``code`` is
    valid for it (and unused); None for a wrong or replayed code. A user without recovery
    codes gets a first set with it (event ``totp_confirmed``, then
    ``recovery_codes_generated``).

    The enrolment must replace exactly the factor stored now: the one whose code was given
    at registration, or none. Raises ``InvalidEnrollment`` for an altered, expired or
    another user's enrolment, or one whose replaced factor is gone, ``FactorAlreadyActive``
    when another factor was confirmed since the registration, ``TooManyCodes`` after too
    many wrong codes, and ``NotFound`` for an unknown user.
    """
    pending = _open_enrollment(sealer, enrollment, user_id, now)
    current = _current_factor(seeds, await store.get_credentials(user_id))
    if current is None and pending.replaces is not None:
        raise InvalidEnrollment("the factor this enrollment replaces is gone; register again")
    if current is not None and (
        pending.replaces is None
        or not hmac.compare_digest(pending.replaces, _fingerprint(current.secret))
    ):
        raise FactorAlreadyActive(
            "another TOTP factor was confirmed since this registration; register again "
            "with current_code"
        )
    if not await _check_code(store, totp, user_id, pending.secret, code, now):
        return None
    await store.set_totp(user_id, seal_factor(seeds, user_id, pending.secret), confirmed=True)
    events.emit("totp_confirmed", user_id=user_id, replaced=current is not None)
    return TotpConfirmed(recovery_codes=await ensure_recovery_codes(store, events, user_id))


class TotpRemoved(msgspec.Struct, frozen=True):
    """What :func:`remove_totp` did: ``recovery_codes_cleared`` when it was the user's last
    second factor, so their recovery codes went with it."""

    recovery_codes_cleared: bool


async def remove_totp(
    store: _MfaStore,
    totp: Totp,
    seeds: SecretSealer,
    events: Events,
    *,
    user_id: str,
    code: str,
    client_ip: str,
    now: int,
) -> TotpRemoved:
    """Remove the user's confirmed TOTP factor, proved by ``code``: a valid, unused code
    of it, or one of the user's recovery codes (spent: a user who lost the phone removes
    the factor with a code they saved, then sets up a new one). The caller has checked that
    the user may change the factor (a recent sign-in). Wrong codes count towards the same
    attempt limit as confirmations.

    When the user has no passkey either, the recovery codes go too: they stand in for a
    second factor the user no longer has (the next enrolment issues a new set). Raises
    ``NoFactor`` without a confirmed factor, ``FactorUnreadable`` (only a recovery code
    removes such a factor), ``InvalidCurrentCode``, ``TooManyCodes``, ``NotFound``.
    """
    credentials = await store.get_credentials(user_id)
    if not credentials.totp_confirmed or credentials.totp_secret is None:
        raise NoFactor("there is no TOTP factor to remove")
    recovery = looks_like_recovery_code(code)
    # Opened first: a factor that does not open is refused before an attempt is counted.
    factor = None if recovery else _current_factor(seeds, credentials)
    key = await _counted(store, user_id, now)
    if factor is not None:
        proved = await use_totp_code(store, totp, user_id, factor.secret, code, now)
    else:
        proved = recovery and await spend_recovery_code(store, events, user_id, code,
                                                        client_ip=client_ip)
    if not proved:
        raise InvalidCurrentCode("the code is incorrect or was already used")
    await store.hit(key, VERIFY_WINDOW_SECONDS, now, -1)
    await store.set_totp(user_id, None, confirmed=False)
    cleared = not await store.list_passkeys(user_id)
    await drop_codes_without_factor(store, user_id)
    events.emit("totp_removed", user_id=user_id, recovery_codes_cleared=cleared)
    return TotpRemoved(recovery_codes_cleared=cleared)


class MfaReset(msgspec.Struct, frozen=True):
    """What ``reset_mfa`` did: the user, how many token records it revoked and how many
    browser sessions it ended."""

    user: User
    revoked: int
    sessions_ended: int = 0
    passkeys_removed: int = 0


class _ResetStore(UserStore, CredentialStore, TokenStore, Protocol):
    """What ``reset_mfa`` needs from the store."""


async def reset_mfa(
    store: _ResetStore, *, user_name: str, now: int, sessions: UserSessionEnder
) -> MfaReset:
    """Administrative reset: remove every second factor of the user named ``user_name``
    (case-insensitively): the TOTP seed, the passkeys and the recovery codes, as a user
    who lost a phone may have lost all three. Then end its sign-ins: every browser session
    of the user is ended
    (``sessions``, reason ``mfa_reset``; a session's ``mfa`` no longer stands for a factor
    the user has) and every access and refresh token of the user is revoked, so whoever held
    one must sign in again (with the password alone, then enrol).

    Raises ``NotFound`` for no such user.
    """
    user = await store.find_user_by_name(user_name)
    if user is None:
        raise NotFound(f"no user named {user_name!r}")
    await store.set_totp(user.id, None, confirmed=False)
    passkeys = await store.remove_passkeys(user.id)
    await store.replace_recovery_codes(user.id, [])
    ended, revoked = await end_sign_ins(store, sessions, user.id, reason=MFA_RESET, now=now)
    return MfaReset(user=user, revoked=revoked, sessions_ended=ended, passkeys_removed=passkeys)

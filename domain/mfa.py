"""TOTP as a second factor: enrolment, confirmation, and checking a code at sign-in.

A pending enrolment never touches the stored factor. ``register_totp`` returns the new seed
sealed (with the user id and an expiry) as an opaque ``enrollment`` value the client hands
back to ``confirm_totp``; only a valid code for that seed stores it, confirmed, replacing
any previous factor. So an abandoned re-enrolment (or a stolen token calling register)
leaves the confirmed factor in force.

Every accepted code is claimed in the store (``totp:<user>:<step>``) until it would stop
being valid, so the same code cannot be used twice, on this instance or any other sharing
the store.
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

from domain.errors import DomainError
from ports.otp import Totp
from ports.sealing import Sealer
from ports.store import CredentialStore, EphemeralStore, UserStore

#: How many steps after its own a code stays valid (the port accepts one step either side).
_STEPS_VALID_AFTER = 2
#: How long a registered seed can be confirmed: enough to scan a QR code and type a code.
ENROLMENT_SECONDS = 600
#: Wrong codes allowed at confirmation per user and window, as at sign-in.
VERIFY_LIMIT = 5
VERIFY_WINDOW_SECONDS = 900


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


_encode_pending = msgspec.json.Encoder().encode
_decode_pending = msgspec.json.Decoder(_PendingFactor).decode


class FactorAlreadyActive(DomainError):
    """A confirmed factor exists; replacing it needs a sign-in that proved it."""


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


async def _refuse_replacement(store: _MfaStore, user_id: str, mfa_verified: bool) -> None:
    credentials = await store.get_credentials(user_id)
    if credentials.totp_confirmed and not mfa_verified:
        raise FactorAlreadyActive(
            "a confirmed TOTP factor exists; sign in with it before replacing it"
        )


async def register_totp(
    store: _MfaStore,
    totp: Totp,
    sealer: Sealer,
    *,
    user_id: str,
    issuer: str,
    mfa_verified: bool,
    now: int,
) -> TotpEnrolment:
    """A new seed for the user, sealed in ``enrollment``; the store is not changed.

    ``mfa_verified`` is that of the caller's token. A user whose factor is already confirmed
    can replace it only from an MFA-verified sign-in: otherwise a stolen password (or a token
    from one) would be enough to swap the second factor for the attacker's. Raises
    ``FactorAlreadyActive`` in that case, and ``NotFound`` for an unknown user.
    """
    user = await store.get_user(user_id)
    await _refuse_replacement(store, user_id, mfa_verified)
    secret = totp.new_secret()
    expires_at = now + ENROLMENT_SECONDS
    pending = _PendingFactor(kind="totp-enrolment", user_id=user_id, secret=secret,
                             exp=expires_at)
    return TotpEnrolment(
        secret=secret,
        otpauth_uri=totp.provisioning_uri(secret, user.user_name, issuer),
        enrollment=sealer.seal(_encode_pending(pending)),
        expires_at=expires_at,
    )


def _open_enrollment(sealer: Sealer, enrollment: str, user_id: str, now: int) -> str:
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
    return pending.secret


async def confirm_totp(
    store: _MfaStore,
    totp: Totp,
    sealer: Sealer,
    *,
    user_id: str,
    enrollment: str,
    code: str,
    mfa_verified: bool,
    now: int,
) -> bool:
    """Store the enrolment's seed as the user's confirmed factor when ``code`` is valid for
    it (and unused); True on success, False for a wrong or replayed code.

    Raises ``InvalidEnrollment`` for an altered, expired or another user's enrolment,
    ``FactorAlreadyActive`` when a confirmed factor exists and the caller's token is not
    MFA-verified (one may have been confirmed since the registration), ``TooManyCodes``
    after too many wrong codes, and ``NotFound`` for an unknown user.
    """
    secret = _open_enrollment(sealer, enrollment, user_id, now)
    await _refuse_replacement(store, user_id, mfa_verified)
    # Counted before the check, so parallel guesses cannot all slip under the limit; a
    # success gives its count back (the pattern of the sign-in throttle).
    key = f"mfa:verify:{user_id}"
    window = VERIFY_WINDOW_SECONDS
    if await store.hit(key, window, now) > VERIFY_LIMIT:
        await store.hit(key, window, now, -1)
        raise TooManyCodes(retry_after=(now // window + 1) * window - now)
    if not await use_totp_code(store, totp, user_id, secret, code, now):
        return False
    await store.hit(key, window, now, -1)
    await store.set_totp(user_id, secret, confirmed=True)
    return True

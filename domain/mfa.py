"""TOTP as a second factor: enrolment, confirmation, and checking a code at sign-in.

A factor counts only once it is confirmed with a valid code. Every accepted code is claimed
in the store (``totp:<user>:<step>``) until it would stop being valid, so the same code cannot
be used twice, on this instance or any other sharing the store.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from domain.errors import DomainError
from ports.otp import Totp
from ports.store import CredentialStore, EphemeralStore, UserStore

#: How many steps after its own a code stays valid (the port accepts one step either side).
_STEPS_VALID_AFTER = 2


class TotpEnrolment(msgspec.Struct, frozen=True):
    """A new, not yet confirmed factor: the seed and the ``otpauth://`` URI for an app."""

    secret: str
    otpauth_uri: str


class FactorAlreadyActive(DomainError):
    """A confirmed factor exists; replacing it needs a sign-in that proved it."""


class NoPendingFactor(DomainError):
    """There is no TOTP seed to confirm (register first)."""


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


async def register_totp(
    store: _MfaStore,
    totp: Totp,
    *,
    user_id: str,
    issuer: str,
    mfa_verified: bool,
) -> TotpEnrolment:
    """Create a new, unconfirmed TOTP seed for the user.

    ``mfa_verified`` is that of the caller's token. A user whose factor is already confirmed
    can replace it only from an MFA-verified sign-in: otherwise a stolen password (or a token
    from one) would be enough to swap the second factor for the attacker's. Raises
    ``FactorAlreadyActive`` in that case, and ``NotFound`` for an unknown user.
    """
    user = await store.get_user(user_id)
    credentials = await store.get_credentials(user_id)
    if credentials.totp_confirmed and not mfa_verified:
        raise FactorAlreadyActive(
            "a confirmed TOTP factor exists; sign in with it before replacing it"
        )
    secret = totp.new_secret()
    await store.set_totp(user_id, secret, confirmed=False)
    return TotpEnrolment(
        secret=secret, otpauth_uri=totp.provisioning_uri(secret, user.user_name, issuer)
    )


async def confirm_totp(
    store: _MfaStore, totp: Totp, *, user_id: str, code: str, now: int
) -> bool:
    """Activate the registered seed when ``code`` is valid (and unused); True on success.

    A factor that is already confirmed is re-checked the same way (True for a valid code), so
    a repeated confirmation is harmless. Raises ``NoPendingFactor`` when no seed was
    registered, ``NotFound`` for an unknown user.
    """
    credentials = await store.get_credentials(user_id)
    if credentials.totp_secret is None:
        raise NoPendingFactor("no TOTP factor is registered; register one first")
    if not await use_totp_code(store, totp, user_id, credentials.totp_secret, code, now):
        return False
    if not credentials.totp_confirmed:
        await store.set_totp(user_id, credentials.totp_secret, confirmed=True)
    return True

"""The WebAuthn port: the two ceremonies of a passkey (registration and authentication).

The adapter does the WebAuthn work (the options the browser is given, and the checks of
what it answers: the challenge, the origin, the relying party id hash, the user presence
and verification flags, the attestation, the signature); the domain (``domain.passkeys``)
decides the rest: which passkeys a user may use, whose they are, single use of the
challenge and the signature counter (through the store, so that every instance agrees).

CPU only, so synchronous (as ``ports.otp`` and ``ports.dpop``). The relying party (its id,
name and origin) is the adapter's configuration, not an argument. Responses are the JSON
the browser script sends (``PublicKeyCredential.toJSON()``: base64url without padding);
byte values here are raw bytes, credential ids and public keys in the domain are
base64url strings (``domain.entities.Passkey``). Every failure is :class:`PasskeyRejected`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec

from domain.entities import Passkey
from domain.errors import DomainError

UserVerification = Literal["required", "preferred"]


class PasskeyRejected(DomainError):
    """A browser's response was malformed or did not verify (a wrong challenge, origin or
    relying party, no user presence, a bad signature...). The message says which check
    failed, for the log; it is not shown to the user."""


class NewCredential(msgspec.Struct, frozen=True, kw_only=True):
    """A verified registration: the credential the authenticator made.

    ``backup_eligible`` is the BE flag (a synced, multi-device passkey);
    ``transports`` the browser's hints, as the WebAuthn names (``usb``, ``internal``...).
    """

    credential_id: str
    public_key: str
    sign_count: int
    transports: tuple[str, ...] = ()
    backup_eligible: bool = False
    user_verified: bool = False


class AssertionClaim(msgspec.Struct, frozen=True, kw_only=True):
    """What a sign-in response says before it is verified: the credential it claims to be
    made with, and the user handle the authenticator returned (None when it gave none)."""

    credential_id: str
    user_handle: bytes | None = None


class VerifiedAssertion(msgspec.Struct, frozen=True, kw_only=True):
    """A verified sign-in response: the authenticator's counter and its flags."""

    sign_count: int
    user_verified: bool
    backup_eligible: bool


class PasskeyCeremonies(Protocol):
    def registration_options(
        self, *, user_handle: bytes, user_name: str, display_name: str, challenge: bytes,
        exclude: Sequence[Passkey],
    ) -> str:
        """The JSON of the ``PublicKeyCredentialCreationOptions`` for
        ``navigator.credentials.create``: a discoverable credential (resident key
        required), user verification preferred, no attestation, excluding the passkeys the
        user has (so one authenticator is not registered twice)."""
        ...

    def verify_registration(self, response: str, *, challenge: bytes) -> NewCredential:
        """Check a registration response against ``challenge`` and the relying party.
        Raises :class:`PasskeyRejected`."""
        ...

    def authentication_options(
        self, *, challenge: bytes, allow: Sequence[Passkey],
        user_verification: UserVerification,
    ) -> str:
        """The JSON of the ``PublicKeyCredentialRequestOptions`` for
        ``navigator.credentials.get``; an empty ``allow`` lets the user pick any passkey
        of this relying party (a discoverable credential: no user name typed)."""
        ...

    def read_assertion(self, response: str) -> AssertionClaim:
        """The credential id and user handle of a sign-in response, unverified (to find
        the passkey whose public key verifies it). Raises :class:`PasskeyRejected`."""
        ...

    def verify_assertion(
        self, response: str, *, challenge: bytes, passkey: Passkey,
        require_user_verification: bool,
    ) -> VerifiedAssertion:
        """Check a sign-in response against ``challenge``, the relying party and the
        public key of ``passkey``. The counter is not compared here: the caller does it
        atomically in the store. Raises :class:`PasskeyRejected`."""
        ...

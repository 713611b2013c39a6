"""Records as a store keeps them, for copying a store to another backend.

The entities of :mod:`domain.entities` are what the use cases see; a few of them leave out
what only the store knows (a tombstone's expiry, a reuse marker, a user's credentials next
to the user). The records here carry everything a part of the store holds, so that
``auth-service store copy`` can move it to another backend unchanged: ids, versions,
timestamps, hashes, expiries. Nothing here holds a secret in clear: passwords are argon2id
hashes, tokens and codes are SHA-256 digests, and a TOTP seed is copied exactly as the
store keeps it (opaque: it may be sealed).
"""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from domain.entities import Passkey, User

T = TypeVar("T")


class Batch(msgspec.Struct, Generic[T], frozen=True):
    """One batch of an export: the records, and the cursor to ask for the next batch with
    (None: there are no more). The cursor is the adapter's own; callers only pass it back."""

    records: tuple[T, ...]
    cursor: str | None


class UserRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A user as stored (``groups`` empty: memberships travel with the groups) and its
    credentials (password, TOTP, verified email, passkeys, recovery codes).
    ``totp_confirmed`` is false whenever ``totp_secret`` is None."""

    user: User
    password_hash: str | None = None
    totp_secret: str | None = None
    totp_confirmed: bool = False
    verified_email: str | None = None
    passkeys: tuple[Passkey, ...] = ()
    #: SHA-256 hex of each unused recovery code.
    recovery_codes: tuple[str, ...] = ()


class ConsumedCodeRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The tombstone of a consumed authorization code, kept until ``exp``."""

    code_hash: str
    grant_id: str
    client_id: str
    exp: int


class ReuseMarker(msgspec.Struct, frozen=True, kw_only=True):
    """The mark a rotated refresh token leaves until its own ``exp``: presenting the token
    again is reuse, which revokes the grant ``grant_id``."""

    token_hash: str
    grant_id: str
    exp: int


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """A live ``claim_once`` key (a used TOTP code, a lock), held until ``exp``."""

    key: str
    exp: int

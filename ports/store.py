"""The ``Store`` port: everything auth-service persists.

``Store`` is the union of small Protocols, so that a use case can ask only for the part it
needs (``TokenStore``, ``UserStore``, ...). Every method is ``async``.

Conventions that hold for every method and every adapter (the contract suite in
``adapters.testing`` pins them down):

- ``now`` is Unix seconds from the caller's clock. Adapters decide expiry with it and never
  read a clock of their own, so tests with a fake clock are exact.
- Expired data is never returned: an expired code, access token, refresh token or reuse
  marker behaves as absent, whether or not a purge has removed it yet.
- Revoking never extends a lifetime (a Redis key keeps its TTL; a row keeps its ``exp``).
- Adapter exceptions never cross the port. A driver error becomes
  :class:`~domain.errors.StoreUnavailable`; rule violations become
  :class:`~domain.errors.NotFound`, :class:`~domain.errors.Conflict`,
  :class:`~domain.errors.PreconditionFailed` or :class:`~domain.errors.InvalidReference`;
  a value the backend cannot hold (a NUL in text on PostgreSQL) becomes
  :class:`~domain.errors.InvalidValue`, never ``StoreUnavailable``. Use cases refuse such
  values before they reach a store (``domain.text``); this is the backstop.
"""

from __future__ import annotations

from typing import Protocol

from domain.entities import (
    AccessToken,
    AuthorizationCode,
    ConsumedCode,
    Credentials,
    Group,
    Page,
    PurgeCounts,
    RefreshTake,
    RefreshToken,
    StoreCounts,
    User,
)
from domain.filters import ListQuery


class UserStore(Protocol):
    async def create_user(self, user: User, *, password_hash: str | None = None) -> User:
        """Store a new user and return it as stored.

        An empty ``user.id`` gets a generated one. ``version`` is set to 1; ``created`` and
        ``last_modified`` are kept as given. ``password_hash`` (argon2id) is stored with it,
        in the same write. Raises ``Conflict`` (attribute ``userName``) when another user has
        the same ``user_name`` compared case-insensitively, or the same id.
        """
        ...

    async def get_user(self, user_id: str) -> User:
        """The user, with ``groups`` filled from memberships. Raises ``NotFound``."""
        ...

    async def find_user_by_name(self, user_name: str) -> User | None:
        """The user whose ``user_name`` equals this one case-insensitively, or None."""
        ...

    async def list_users(self, query: ListQuery) -> Page[User]:
        """Users matching ``query.filter``, ordered by ``id``, one page of them.

        ``total`` counts every match. Filters on attributes with ``caseExact: false`` (all
        of ours but ``id``) compare case-insensitively.
        """
        ...

    async def replace_user(self, user: User, *, expected_version: int | None = None) -> User:
        """Replace every attribute of the user ``user.id``; return it as stored.

        ``created`` is kept from the stored user; ``version`` becomes the stored one plus 1.
        With ``expected_version``, the write happens only if the stored version equals it
        (compare-and-set), else ``PreconditionFailed``. Raises ``NotFound`` and ``Conflict``.
        """
        ...

    async def delete_user(self, user_id: str, *, expected_version: int | None = None) -> None:
        """Delete the user, its credentials and its memberships.

        Raises ``NotFound``, and ``PreconditionFailed`` as in ``replace_user``. Does not
        revoke tokens: the use case does that with ``TokenStore.revoke_subject``.
        """
        ...


class GroupStore(Protocol):
    async def create_group(self, group: Group) -> Group:
        """Store a new group (id generated when empty, ``version`` 1) and its memberships.

        Raises ``Conflict`` (attribute ``displayName``) on a case-insensitive clash of
        ``display_name``, and ``InvalidReference`` when a member is not an existing user.
        """
        ...

    async def get_group(self, group_id: str) -> Group:
        """The group, members' ``display`` filled with their ``user_name``. Raises ``NotFound``."""
        ...

    async def list_groups(self, query: ListQuery) -> Page[Group]:
        """Groups matching ``query.filter``, ordered by ``id``; as ``list_users``."""
        ...

    async def replace_group(self, group: Group, *, expected_version: int | None = None) -> Group:
        """Replace the group and its whole member list; as ``replace_user``.

        Raises ``NotFound``, ``Conflict``, ``PreconditionFailed`` and ``InvalidReference``.
        """
        ...

    async def delete_group(self, group_id: str, *, expected_version: int | None = None) -> None:
        """Delete the group and its memberships. Raises ``NotFound``, ``PreconditionFailed``."""
        ...


class CredentialStore(Protocol):
    async def get_credentials(self, user_id: str) -> Credentials:
        """The user's credentials (fields None when never set). Raises ``NotFound`` for no user."""
        ...

    async def set_password_hash(self, user_id: str, password_hash: str | None) -> None:
        """Set or clear the argon2id password hash. Raises ``NotFound``."""
        ...

    async def set_totp(self, user_id: str, secret: str | None, *, confirmed: bool) -> None:
        """Set (or clear, with None) the TOTP seed and whether it is confirmed.

        Raises ``NotFound``.
        """
        ...


class CodeStore(Protocol):
    async def save_code(self, code: AuthorizationCode, now: int) -> None:
        """Store a new authorization code until ``code.exp``."""
        ...

    async def take_code(
        self, code_hash: str, now: int, *, remember_until: int
    ) -> AuthorizationCode | ConsumedCode | None:
        """Consume a code atomically.

        Of any number of concurrent callers with the same ``code_hash``, exactly one gets the
        :class:`AuthorizationCode`; the code is then gone and a tombstone
        (:class:`ConsumedCode`, with its ``grant_id``) is kept until ``remember_until``, so a
        later take returns the tombstone (a replay). An unknown or expired code gives None.
        """
        ...


class TokenStore(Protocol):
    async def save_tokens(
        self, access: AccessToken, refresh: RefreshToken | None, now: int
    ) -> None:
        """Store an access token and, optionally, its refresh token, each until its ``exp``."""
        ...

    async def get_access_token(self, token_hash: str, now: int) -> AccessToken | None:
        """The record, revoked ones included (``active`` false); None when unknown or expired."""
        ...

    async def revoke_access_token(self, token_hash: str, now: int) -> bool:
        """Mark the token inactive, keeping its expiry. True if a live record was found."""
        ...

    async def get_refresh_token(self, token_hash: str, now: int) -> RefreshToken | None:
        """The live refresh token, or None (unknown, expired, rotated or revoked).

        No side effect.
        """
        ...

    async def take_refresh_token(self, token_hash: str, now: int) -> RefreshTake:
        """Start a rotation, atomically.

        - A live token: it is removed, a reuse marker (with its ``grant_id``) is kept until the
          token's own ``exp``, its access token is revoked, and ``Taken(token)`` is returned.
          Of any number of concurrent callers exactly one gets ``Taken``.
        - A token with a live reuse marker (already rotated): every token of its grant is
          revoked (``revoke_grant``) and ``Reused(grant_id)`` is returned.
        - Otherwise ``Unknown()``.

        The caller then stores the new pair with ``save_tokens``. Errors raise
        ``StoreUnavailable``; callers must treat that as failure (fail closed).
        """
        ...

    async def revoke_grant(self, grant_id: str, now: int) -> int:
        """Revoke every access token and remove every refresh token of the grant.

        Returns how many records changed. Lifetimes are kept. Idempotent.
        """
        ...

    async def revoke_subject(self, sub: str, now: int) -> int:
        """Revoke every access token and remove every refresh token whose ``sub`` is this one."""
        ...


class EphemeralStore(Protocol):
    """Small shared state with a lifetime: single-use markers and rate-limit counters.

    Shared across instances wherever the adapter shares token state (Redis, PostgreSQL).
    """

    async def claim_once(self, key: str, exp: int, now: int) -> bool:
        """Atomically claim ``key`` until ``exp``. True for the one caller that claimed it;
        False while an earlier claim is live (a replayed TOTP code, a held lock)."""
        ...

    async def hit(self, key: str, window_seconds: int, now: int, amount: int = 1) -> int:
        """Add ``amount`` to the fixed-window counter ``key`` and return its value in the
        current window. The window is ``now // window_seconds``. ``amount`` 0 only reads; a
        negative ``amount`` gives back earlier hits (a throttle counts an attempt before
        checking it, so that parallel attempts cannot all pass, and gives it back after)."""
        ...


class StoreAdmin(Protocol):
    async def health(self) -> dict[str, bool]:
        """Each component's state, e.g. ``{"store": True, "redis": False}``. Never raises."""
        ...

    async def counts(self, now: int) -> StoreCounts:
        """Sizes for metrics. Raises ``StoreUnavailable``."""
        ...

    async def purge_expired(self, now: int, batch_size: int = 1000) -> PurgeCounts:
        """Remove expired codes, tombstones, tokens, refresh tokens, reuse markers and
        ephemeral entries, in batches of at most ``batch_size`` (no long locks); return counts."""
        ...

    async def close(self) -> None:
        """Release connections. Idempotent."""
        ...


class Store(
    UserStore, GroupStore, CredentialStore, CodeStore, TokenStore, EphemeralStore, StoreAdmin,
    Protocol,
):
    """Everything auth-service persists. See the module docstring for shared conventions."""

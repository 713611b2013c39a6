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
- An item with an ``exp`` is expired when ``exp <= now``.
- "Case-insensitively" means equal after Python's ``str.lower()`` (not ``casefold()``, not
  a database collation): ``"STRASSE"`` and ``"strasse"`` clash, ``"Straße"`` and
  ``"strasse"`` do not. A database that lowers differently needs a collation that agrees
  (the sql adapter lowers under ICU's root collation) or folding in Python.

Besides ``Store``, two optional Protocols describe what only some adapters have; callers
check them with ``isinstance``: :class:`Migratable` (a schema to migrate) and
:class:`ProcessLocal` (parts of the data kept in the process's own memory).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, Protocol, TypeVar, runtime_checkable

from domain.clients import Client, InitialAccessToken
from domain.consent import Consent, ConsentRecord
from domain.device import DeviceAuthorization, DeviceDecision, DevicePoll
from domain.entities import (
    AccessToken,
    AccountToken,
    AccountTokenKind,
    AuthorizationCode,
    ConsumedCode,
    Credentials,
    Group,
    Page,
    Passkey,
    PurgeCounts,
    RefreshTake,
    RefreshToken,
    StoreCounts,
    User,
)
from domain.filters import ListQuery
from domain.records import Batch, Claim, ConsumedCodeRecord, ReuseMarker, UserRecord
from domain.sessions import Session, SessionGrant, SessionRecord

_T = TypeVar("_T")


class UserStore(Protocol):
    async def create_user(self, user: User, *, password_hash: str | None = None) -> User:
        """Store a new user and return it as stored.

        An empty ``user.id`` gets a generated one. ``version`` is set to 1; ``created`` and
        ``last_modified`` are kept as given. ``password_hash`` (argon2id) is stored with it,
        in the same write. Raises ``Conflict`` when another user has the same ``user_name``
        compared case-insensitively (``Conflict.attribute`` is ``"userName"``) or the same
        id (``attribute`` ``"id"``).
        """
        ...

    async def get_user(self, user_id: str) -> User:
        """The user, with ``groups`` filled from memberships. Raises ``NotFound``."""
        ...

    async def find_user_by_name(self, user_name: str) -> User | None:
        """The user whose ``user_name`` equals this one case-insensitively, or None."""
        ...

    async def list_users(self, query: ListQuery) -> Page[User]:
        """Users matching ``query.filter``, one page of them, ordered by ``query.sort`` and then
        by ``id`` (by ``id`` alone when ``sort`` is None). The sort semantics (primary or first
        value of a multi-valued attribute, case folding, missing values last ascending and first
        descending) are :class:`~domain.filters.SortKey`'s; the contract suite pins them.

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
        ``display_name`` and (attribute ``id``) on a clash of ids, and ``InvalidReference``
        when a member is not an existing user.
        """
        ...

    async def get_group(self, group_id: str, *, members: bool = True) -> Group:
        """The group, members' ``display`` filled with their ``user_name``. Raises ``NotFound``.

        With ``members=False`` the group comes with ``members`` empty, and the store reads
        none of them: that is how a group of 100,000 members is read cheaply (SCIM
        ``excludedAttributes=members``).
        """
        ...

    async def list_groups(self, query: ListQuery, *, members: bool = True) -> Page[Group]:
        """Groups matching ``query.filter``, ordered by ``query.sort`` then ``id``; as
        ``list_users``.

        ``members=False`` as in ``get_group`` (a filter may still name members).
        """
        ...

    async def add_members(
        self, group_id: str, user_ids: tuple[str, ...], *, last_modified: int,
        expected_version: int | None = None,
    ) -> Group:
        """Add users to the group's members, after the others, atomically; users already
        members are left as they are. Work and writes are proportional to ``user_ids``,
        not to the size of the group.

        When a member was added, ``version`` is incremented and ``last_modified`` set;
        when none was (all already members), nothing changes. Returns the group as it now
        is, without members (as ``get_group(members=False)``). With ``expected_version``,
        as ``replace_group``. Raises ``NotFound``, ``PreconditionFailed``, and
        ``InvalidReference`` (changing nothing) when one of ``user_ids`` is not a user.
        """
        ...

    async def remove_members(
        self, group_id: str, user_ids: tuple[str, ...], *, last_modified: int,
        expected_version: int | None = None,
    ) -> Group:
        """Remove users from the group's members, atomically; ids that are not members are
        ignored. Versions, the result and the cost as in ``add_members``. Raises
        ``NotFound`` and ``PreconditionFailed``.
        """
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

        The seed arrives sealed by the use cases: store it as the opaque string it is.
        Raises ``NotFound``.
        """
        ...

    async def set_verified_email(self, user_id: str, address: str | None) -> None:
        """Record the address the user proved by a verification link (None: none), as
        given (the use cases lower-case it). Raises ``NotFound``."""
        ...

    # Passkeys (``domain.passkeys``). A credential id is unique across all users.

    async def add_passkey(self, passkey: Passkey) -> None:
        """Keep a new passkey of ``passkey.user_id``. Raises ``Conflict`` when any user
        already holds its ``credential_id``, ``NotFound`` for no user."""
        ...

    async def list_passkeys(self, user_id: str) -> list[Passkey]:
        """The user's passkeys, oldest first (``created_at``, then ``credential_id``);
        empty for a user with none or no such user."""
        ...

    async def find_passkey(self, credential_id: str) -> Passkey | None:
        """The passkey with this credential id, whoever holds it, or None."""
        ...

    async def record_passkey_use(self, credential_id: str, sign_count: int, now: int) -> bool:
        """Accept one use of the passkey, atomically: when ``sign_count`` is greater than
        the stored count, or both are 0 (an authenticator without a counter), store it
        and ``last_used_at = now`` and return True. Otherwise (the counter went back or
        stood still: a cloned authenticator or a replay) change nothing and return False;
        of concurrent callers with the same count, on any instance, at most one gets True.
        False for an unknown credential."""
        ...

    async def rename_passkey(self, user_id: str, credential_id: str, name: str) -> bool:
        """Rename the user's passkey; False when the user holds no such passkey."""
        ...

    async def remove_passkey(self, user_id: str, credential_id: str) -> bool:
        """Forget the user's passkey; False when the user holds no such passkey."""
        ...

    async def remove_passkeys(self, user_id: str) -> int:
        """Forget all of the user's passkeys (an MFA reset); how many there were."""
        ...

    # Recovery codes (``domain.recovery``): stored as the SHA-256 hex of each code.

    async def replace_recovery_codes(self, user_id: str, code_hashes: Sequence[str]) -> None:
        """Make ``code_hashes`` the user's whole set of unused codes (empty: none); the old
        set is gone. Raises ``NotFound`` for no user."""
        ...

    async def use_recovery_code(self, user_id: str, code_hash: str) -> bool:
        """Spend one code, atomically: True when it was in the user's set (it is removed),
        False otherwise. Of concurrent callers with one code, on any instance, exactly one
        gets True."""
        ...

    async def count_recovery_codes(self, user_id: str) -> int:
        """How many unused codes the user has (0 for no such user)."""
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
        """Revoke every access token and remove every refresh token whose ``sub`` is this one,
        and remove the pending authorization codes whose ``user_id`` is this one.

        Returns how many live records changed (codes included). Lifetimes are kept.
        """
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
        checking it, so that parallel attempts cannot all pass, and gives it back after).

        Windows are aligned to multiples of ``window_seconds`` (not to the first hit): with
        60, the hits at 119 and 120 fall into different windows. A counter from an earlier
        window counts as 0 (it is not carried over), and it may be dropped from
        ``(window + 1) * window_seconds`` on, when its window has ended. The addition is
        atomic: concurrent hits are all counted.
        """
        ...


class ClientStore(Protocol):
    """The clients managed at run time (admin API, CLI, dynamic registration).

    Static clients (``CLIENTS_FILE``, ``CLIENT_CREDENTIALS``) are never stored here. A
    client is kept whole, secrets included as :class:`~domain.clients.ClientSecret` digests
    (and sealed values); the store never sees a secret in clear.
    """

    async def create_client(self, client: Client) -> Client:
        """Store a new client; return it as stored, with ``version`` 1 (other fields as
        given). Raises ``Conflict`` (``attribute`` ``"client_id"``) when a client with the
        same ``client_id`` (compared exactly) exists, and ``Conflict`` (``attribute``
        ``"resource_uri"``) when another stored client has the same ``resource_uri``
        (compared exactly): of concurrent creates with one ``resource_uri``, on one
        instance or several, exactly one wins."""
        ...

    async def get_client(self, client_id: str) -> Client | None:
        """The client with exactly this id, or None (also for an id the backend could
        never hold, such as one with a NUL on PostgreSQL: a lookup never raises
        ``InvalidValue``)."""
        ...

    async def find_client_by_resource(self, resource_uri: str) -> Client | None:
        """The stored client whose ``resource_uri`` (RFC 8707) is exactly this one, or
        None (at most one can be: create and replace keep them unique). A lookup never
        raises ``InvalidValue``, whatever the value."""
        ...

    async def list_clients(self, cursor: str | None, limit: int) -> Batch[Client]:
        """One page of clients in ascending ``client_id`` order (keyset paging, like the
        ``export_*`` methods: pass the returned cursor back for the next page)."""
        ...

    async def replace_client(self, client: Client, *, expected_version: int) -> Client:
        """Replace the client of ``client.client_id`` when its stored ``version`` is
        ``expected_version`` (compare-and-set: of two writers holding the same version,
        exactly one wins); return it as stored, with ``version`` ``expected_version + 1``.
        Raises ``NotFound`` when there is no such client, ``PreconditionFailed`` when the
        version differs, ``Conflict`` (``attribute`` ``"resource_uri"``) when another
        stored client has the new ``resource_uri``. The old ``resource_uri``, changed or
        removed, is free at once."""
        ...

    async def delete_client(self, client_id: str) -> bool:
        """Delete the client (its ``resource_uri`` is free at once); False when there was
        none."""
        ...

    async def save_initial_access_token(self, token: InitialAccessToken, now: int) -> None:
        """Keep ``token`` (by its digest; replacing one with the same digest)."""
        ...

    async def use_initial_access_token(self, digest: str, now: int) -> bool:
        """Spend one use of the initial access token with this digest, atomically: True
        when it was live (``uses_left`` > 0 and not expired at ``now``) and is now one use
        shorter; False otherwise. Concurrent callers never spend more uses than it had."""
        ...


class SessionStore(Protocol):
    """Browser sessions (:mod:`domain.sessions`), keyed by the SHA-256 of the cookie value
    (``id_hash``); ``sid`` is the public name of a session.

    A session is live while ``now`` is before both its ``idle_exp`` and its ``exp``; every
    method treats any other session as absent (and never returns it). Every instance over
    the same data sees a session at once: a session made on one is used on another, and
    one ended on one is ended on all.
    """

    async def create_session(self, session: Session, now: int) -> None:
        """Keep a new session (its ``clients`` as given, no grants)."""
        ...

    async def get_session(self, id_hash: str, now: int) -> Session | None:
        """The live session with this ``id_hash``, or None."""
        ...

    async def add_session_grant(
        self, id_hash: str, grant: SessionGrant, idle_exp: int, now: int
    ) -> Session | None:
        """Record ``grant`` in the live session ``id_hash`` and push its ``idle_exp`` to
        ``idle_exp`` (never back, never past ``exp``), atomically; return the session as
        it now is. The grant's client joins ``clients`` unless already there (concurrent
        calls for different clients all land). None, and nothing recorded, when there is no
        live session."""
        ...

    async def reauthenticate_session(
        self, id_hash: str, new_id_hash: str, *, auth_time: int, amr: tuple[str, ...],
        acr: str, idle_exp: int, now: int,
    ) -> Session | None:
        """The same user signed in again (``prompt=login``, ``max_age``, a step-up):
        re-key the live session ``id_hash`` to ``new_id_hash`` (the hash of a fresh cookie
        value), replace its ``auth_time``, ``amr`` and ``acr`` and push its ``idle_exp`` as
        :meth:`add_session_grant` does; ``sid``, ``clients``, grants, ``created_at`` and
        ``exp`` stay. Return the session as it now is (with ``id_hash`` ``new_id_hash``);
        None when there is no live session ``id_hash``.

        The re-key is what makes a step-up safe: a cookie copied before it (say, by someone
        who knew only the password) must not gain what the user proved afterwards. From
        the moment the call can succeed the old ``id_hash`` names no session on any
        instance, and the new one is usable by no one but the caller before the call
        returns. Of concurrent re-authentications of one session exactly one succeeds
        (the others get None). A backend that cannot move the session in one atomic step
        removes the old one first: a failure in between loses the session (the user signs
        in again), never keeps both."""
        ...

    async def list_sessions(self, user_id: str, now: int) -> tuple[Session, ...]:
        """The user's live sessions, oldest ``created_at`` first (ties by ``sid``)."""
        ...

    async def end_session(self, id_hash: str, now: int) -> SessionRecord | None:
        """End the live session ``id_hash``: remove it with its grants and return them.
        Of concurrent callers (on any instance) exactly one gets the record; the others,
        and any later call, get None."""
        ...

    async def end_session_by_sid(self, sid: str, now: int) -> SessionRecord | None:
        """:meth:`end_session` for the session whose public ``sid`` this is."""
        ...

    async def end_user_sessions(self, user_id: str, now: int) -> tuple[SessionRecord, ...]:
        """End every live session of the user (as :meth:`end_session` each, so a session
        is returned to one caller only); a session created after the call began may
        survive it."""
        ...


class ConsentStore(Protocol):
    """Consents (:mod:`domain.consent`), one per (user, client), and the grants issued
    under each. Ids are compared exactly."""

    async def get_consent(self, user_id: str, client_id: str) -> Consent | None:
        """The user's consent for the client, or None."""
        ...

    async def grant_consent(
        self, user_id: str, client_id: str, scopes: tuple[str, ...], now: int
    ) -> Consent:
        """Add ``scopes`` to the user's consent for the client (creating it, with
        ``created_at`` ``now``), atomically: concurrent grants of different scopes all
        land. ``updated_at`` becomes ``now``; the stored scopes are sorted, without
        duplicates. Return the consent as it now is."""
        ...

    async def list_consents(self, user_id: str) -> tuple[Consent, ...]:
        """The user's consents, by ``client_id``."""
        ...

    async def record_consent_grant(
        self, user_id: str, client_id: str, grant_id: str, exp: int, now: int
    ) -> bool:
        """Remember that ``grant_id`` was issued under the consent, until ``exp``. False,
        and nothing remembered, when there is no such consent (it was withdrawn): the
        caller must not issue the grant then."""
        ...

    async def withdraw_consent(
        self, user_id: str, client_id: str, now: int
    ) -> ConsentRecord | None:
        """Delete the consent; return it with the live grants recorded under it (those
        with ``exp`` after ``now``), or None when there was none. Of concurrent callers
        exactly one gets the record."""
        ...


class DeviceStore(Protocol):
    """Device authorizations (RFC 8628, :mod:`domain.device`), keyed by the SHA-256 of the
    device code and found by the SHA-256 of the user code. A record is live while ``now``
    is before its ``exp``; every method treats any other as absent."""

    async def save_device_authorization(
        self, authorization: DeviceAuthorization, now: int
    ) -> bool:
        """Keep a new authorization as given. False, and nothing kept, when a live one has
        the same ``device_code_hash`` or ``user_code_hash`` (the caller draws new codes)."""
        ...

    async def find_device_authorization(
        self, user_code_hash: str, now: int
    ) -> DeviceAuthorization | None:
        """The live authorization with this user code (pending or decided), or None."""
        ...

    async def decide_device_authorization(
        self, user_code_hash: str, decision: DeviceDecision, now: int
    ) -> DeviceAuthorization | None:
        """Record the user's decision on the live *pending* authorization with this user
        code, atomically, and return it as it now is. None when there is none or it was
        decided already: of concurrent deciders, on any instance, exactly one wins."""
        ...

    async def poll_device_authorization(self, device_code_hash: str, now: int) -> DevicePoll:
        """One poll by the device, atomically:

        - no live record: :class:`~domain.device.PollExpired`;
        - earlier than ``last_poll + interval``: :class:`~domain.device.PollSlowDown`, the
          interval lengthened by :data:`~domain.device.SLOW_DOWN_SECONDS` and ``last_poll``
          set to ``now``;
        - otherwise ``last_poll`` becomes ``now`` and: pending gives
          :class:`~domain.device.PollPending`; denied gives
          :class:`~domain.device.PollDenied` and removes the record; approved gives
          :class:`~domain.device.PollApproved` with the record, and removes it.

        Of concurrent polls of an approved record (on any instance) exactly one gets
        ``PollApproved``."""
        ...


class AccountTokenStore(Protocol):
    """Single-use links mailed to users (password reset, email verification;
    :class:`~domain.entities.AccountToken`), keyed by the SHA-256 hex of the secret. A
    record is live while ``now < exp``; every method treats any other as absent."""

    async def save_account_token(self, token: AccountToken, now: int) -> None:
        """Keep a new token until its ``exp``."""
        ...

    async def take_account_token(
        self, kind: AccountTokenKind, token_hash: str, now: int
    ) -> AccountToken | None:
        """Spend the live token of this kind and hash, atomically, and return it: of
        concurrent takers, on any instance, exactly one gets it; after that, and for an
        unknown, expired or other-kind hash, None (a token of another kind is left as
        it is)."""
        ...

    async def revoke_account_tokens(
        self, user_id: str, kind: AccountTokenKind, now: int
    ) -> int:
        """Forget every live token of this kind of the user (a password was set, an email
        changed); how many there were."""
        ...


class StoreAdmin(Protocol):
    async def health(self) -> dict[str, bool]:
        """Each component's state, e.g. ``{"store": True, "redis": False}``. Never raises."""
        ...

    async def counts(self, now: int) -> StoreCounts:
        """Sizes for metrics, as of ``now``. Raises ``StoreUnavailable``.

        ``users``, ``groups`` and ``clients`` (stored clients) count every one;
        ``access_tokens``, ``refresh_tokens`` and ``codes`` count unexpired records only.
        Revoked access tokens are counted (they are kept, inactive, until they expire); code
        tombstones and reuse markers are not.
        """
        ...

    async def purge_expired(self, now: int, batch_size: int = 1000) -> PurgeCounts:
        """Remove expired codes, tombstones, tokens, refresh tokens, reuse markers,
        ephemeral entries and dead initial access tokens, in batches of at most
        ``batch_size`` (no long locks); return counts.

        What counts where: expired codes and expired code tombstones under ``codes``;
        access tokens (revoked or not) under ``access_tokens``; refresh tokens under
        ``refresh_tokens``; reuse markers under ``reuse_markers``; ``claim_once`` claims and
        ``hit`` counters under ``other``; initial access tokens that can no longer be used
        (expired at ``now``, or every use spent; a store may also drop a spent one at its
        last use) under ``initial_access_tokens``. Live records, tombstones and markers are
        kept. A backend whose own TTLs delete records (Redis) counts only what it removed
        itself.
        """
        ...

    async def close(self) -> None:
        """Release connections. Idempotent."""
        ...


# Transfer: every record of a part, read in batches and written back exactly, so that
# ``auth-service store copy`` can move a store to another backend (domain/transfer.py).
#
# Shared semantics of every ``export_*`` / ``import_*`` pair:
#
# - ``export_*(cursor, limit, now)`` returns a :class:`~domain.records.Batch` of at most
#   ``limit`` records (``limit`` >= 1) and the cursor to pass to the next call; None
#   (first call) starts from the beginning, and a returned cursor of None means there is
#   no more. Over a whole pass each record present throughout is returned exactly once.
#   The cursor is opaque to callers; memory and sql page by the key named in each
#   docstring, in its ascending order, the cursor being the last key returned (keyset
#   paging: a batch is one index range scan, never an OFFSET). A record that expires at or
#   before ``now`` is not exported.
# - ``import_*(records, now)`` writes the records exactly as given (ids, versions, times,
#   hashes, expiries) and returns how many of them changed the store; a record the store
#   already holds identically is not written again and does not count, so importing the
#   same batch twice returns 0 the second time. A record expired at ``now`` is skipped.
#   One call is atomic: on any error nothing of the batch is written.
# - Security state only moves forward: an import never re-activates a revoked access
#   token, never brings back a code that was consumed or a refresh token that was rotated
#   in the target, and never shortens a tombstone, marker or claim.
# - Identities are taken from the records: the source's version of a user or group
#   replaces the target's. Nothing is ever deleted from the target but what a consumption
#   or rotation would remove.


class UserTransfer(Protocol):
    async def export_users(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[UserRecord]:
        """Users with their credentials, by ``id``; ``user.groups`` is empty."""
        ...

    async def import_users(self, records: tuple[UserRecord, ...], now: int) -> int:
        """Create or overwrite each user (``version``, ``created`` kept as given) and set its
        credentials to the record's (none in the record: none in the store).

        Raises ``Conflict`` (``userName``) when another user holds the name, compared
        case-insensitively; nothing of the batch is written then.
        """
        ...


class GroupTransfer(Protocol):
    async def export_groups(self, cursor: str | None, limit: int, now: int) -> Batch[Group]:
        """Groups with their members in stored order (``display`` None), by ``id``."""
        ...

    async def import_groups(self, records: tuple[Group, ...], now: int) -> int:
        """Create or overwrite each group and its whole member list (order and ``type``
        kept). Raises ``Conflict`` (``displayName``), and ``InvalidReference`` when a member
        is not a user of this store (users are imported first)."""
        ...


class CodeTransfer(Protocol):
    async def export_codes(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AuthorizationCode]:
        """Live (unconsumed, unexpired) authorization codes, by ``code_hash``."""
        ...

    async def import_codes(self, records: tuple[AuthorizationCode, ...], now: int) -> int:
        """Store each code until its ``exp``, unless this store has a live tombstone for it
        (it was consumed here: it must stay single use)."""
        ...

    async def export_consumed_codes(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ConsumedCodeRecord]:
        """Live tombstones of consumed codes, by ``code_hash``."""
        ...

    async def import_consumed_codes(
        self, records: tuple[ConsumedCodeRecord, ...], now: int
    ) -> int:
        """Keep each tombstone until the later of its ``exp`` and the stored one's, and
        remove a live code of the same hash (it was consumed in the source)."""
        ...


class TokenTransfer(Protocol):
    async def export_access_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AccessToken]:
        """Unexpired access-token records, revoked ones included, by ``token_hash``."""
        ...

    async def import_access_tokens(self, records: tuple[AccessToken, ...], now: int) -> int:
        """Store each record until its ``exp``, indexed by grant and subject as
        ``save_tokens`` does; a token revoked in this store stays revoked."""
        ...

    async def export_refresh_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[RefreshToken]:
        """Live refresh tokens, by ``token_hash``."""
        ...

    async def import_refresh_tokens(self, records: tuple[RefreshToken, ...], now: int) -> int:
        """Store each refresh token until its ``exp``, unless this store has a live reuse
        marker for it (it was rotated here). Its access token need not exist."""
        ...

    async def export_reuse_markers(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ReuseMarker]:
        """Live reuse markers of rotated refresh tokens, by ``token_hash``."""
        ...

    async def import_reuse_markers(self, records: tuple[ReuseMarker, ...], now: int) -> int:
        """Keep each marker until the later of its ``exp`` and the stored one's, and remove a
        live refresh token of the same hash (it was rotated in the source)."""
        ...


class EphemeralTransfer(Protocol):
    """``claim_once`` keys are copied: single-use protection (a TOTP code already used, a
    replay window) must survive a move. ``hit`` counters are not: they live one rate-limit
    window, and starting a window afresh once costs at most one window's allowance."""

    async def export_claims(self, cursor: str | None, limit: int, now: int) -> Batch[Claim]:
        """Live claims, by ``key``."""
        ...

    async def import_claims(self, records: tuple[Claim, ...], now: int) -> int:
        """Hold each key until the later of its ``exp`` and a live stored claim's."""
        ...


class ClientTransfer(Protocol):
    async def export_clients(self, cursor: str | None, limit: int, now: int) -> Batch[Client]:
        """Every stored client, by ``client_id``."""
        ...

    async def import_clients(self, records: tuple[Client, ...], now: int) -> int:
        """Write the clients as given (versions included), replacing the target's; the
        ``resource_uri`` look-up follows. Raises ``Conflict`` (``attribute``
        ``"resource_uri"``), writing none of the batch, when a record's ``resource_uri`` is
        held by another client of the target (or of the batch)."""
        ...

    async def export_initial_access_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[InitialAccessToken]:
        """Every live initial access token, by ``digest``."""
        ...

    async def import_initial_access_tokens(
        self, records: tuple[InitialAccessToken, ...], now: int
    ) -> int:
        """Keep each token; one the target already holds keeps the fewer ``uses_left``."""
        ...


class SessionTransfer(Protocol):
    async def export_sessions(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[SessionRecord]:
        """Every live session with its grants, by ``id_hash``."""
        ...

    async def import_sessions(self, records: tuple[SessionRecord, ...], now: int) -> int:
        """Keep each session with its grants; a session the target already holds gets the
        union of both grant lists and clients, the later ``auth_time`` (with its ``amr``
        and ``acr``) and the earlier ``exp`` and ``idle_exp`` (an import never prolongs a
        session). Skipped when not live at ``now``."""
        ...


class ConsentTransfer(Protocol):
    async def export_consents(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ConsentRecord]:
        """Every consent with its live grants, by (``user_id``, ``client_id``)."""
        ...

    async def import_consents(self, records: tuple[ConsentRecord, ...], now: int) -> int:
        """Keep each consent; one the target already holds gets the union of both scope
        sets and grant lists, the earlier ``created_at`` and the later ``updated_at``."""
        ...


class DeviceTransfer(Protocol):
    async def export_device_authorizations(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[DeviceAuthorization]:
        """Every live device authorization, by ``device_code_hash``."""
        ...

    async def import_device_authorizations(
        self, records: tuple[DeviceAuthorization, ...], now: int
    ) -> int:
        """Keep each record; one the target already holds is replaced only when the target's
        is pending and the record is decided (a decision is never undone, and a record the
        target already answered to a poll is not brought back). Expired ones are skipped."""
        ...


class AccountTokenTransfer(Protocol):
    async def export_account_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AccountToken]:
        """Every live account token, by ``token_hash``."""
        ...

    async def import_account_tokens(self, records: tuple[AccountToken, ...], now: int) -> int:
        """Keep each record; one the target already holds is left as it is. Expired
        ones are skipped."""
        ...


class Store(
    UserStore, GroupStore, CredentialStore, CodeStore, TokenStore, EphemeralStore, ClientStore,
    SessionStore, ConsentStore, DeviceStore, AccountTokenStore, StoreAdmin,
    UserTransfer, GroupTransfer, CodeTransfer, TokenTransfer, EphemeralTransfer, ClientTransfer,
    SessionTransfer, ConsentTransfer, DeviceTransfer, AccountTokenTransfer, Protocol,
):
    """Everything auth-service persists. See the module docstring for shared conventions."""


#: The parts of the port, by name: ``users`` (``UserStore``), ``groups`` (``GroupStore``),
#: ``credentials`` (``CredentialStore``), ``codes`` (``CodeStore``), ``tokens``
#: (``TokenStore``), ``ephemeral`` (``EphemeralStore``), ``clients`` (``ClientStore``),
#: ``sessions`` (``SessionStore``), ``consents`` (``ConsentStore``), ``device``
#: (``DeviceStore``), ``account_tokens`` (``AccountTokenStore``). New parts add their name
#: here.
StorePart = Literal[
    "users", "groups", "credentials", "codes", "tokens", "ephemeral", "clients", "sessions",
    "consents", "device", "account_tokens",
]
#: What the ``auth-service`` commands need, by command kind.
IDENTITY_PARTS: frozenset[StorePart] = frozenset({"users", "groups", "credentials"})
TOKEN_STATE_PARTS: frozenset[StorePart] = frozenset({"codes", "tokens", "ephemeral"})
CLIENT_PARTS: frozenset[StorePart] = frozenset({"clients"})
SESSION_PARTS: frozenset[StorePart] = frozenset({"sessions", "consents"})
DEVICE_PARTS: frozenset[StorePart] = frozenset({"device"})
ACCOUNT_TOKEN_PARTS: frozenset[StorePart] = frozenset({"account_tokens"})


@runtime_checkable
class Migratable(Protocol):
    """Optional: a store with a schema that must be migrated before it serves.

    ``auth-service serve`` and every other command call :meth:`migrate` right after
    opening such a store; ``auth-service migrate`` calls only it. A store without a schema
    simply does not have the method.
    """

    async def migrate(self) -> list[str]:
        """Apply the pending migrations; return the names of those applied (empty if none).

        Safe when several processes migrate at once (one applies, the others wait and find
        nothing to do). Raises ``StoreUnavailable`` when the backend cannot be reached and
        :class:`~domain.errors.StoreMisconfigured` when the migrations cannot be applied as
        shipped (a changed migration, a failing statement).
        """
        ...


@runtime_checkable
class ProcessLocal(Protocol):
    """Optional: a store that keeps some parts in the opening process's own memory.

    Another process (an ``auth-service`` command next to the server, a second worker) that
    opens the same configuration gets an empty, private copy of those parts, so the CLI
    refuses commands that would read or change them there. A store without the method
    keeps every part where every process that opens it sees it.
    """

    def process_local_parts(self) -> frozenset[StorePart]:
        """The parts whose data lives only in this process (may be empty)."""
        ...


@runtime_checkable
class Atomic(Protocol):
    """Optional: a store that can run several of its calls as one all-or-nothing unit.

    Callers check it with ``isinstance`` (:func:`domain.scim.writes.atomically`); a store
    without the method runs each call on its own, as it always does.
    """

    async def atomically(self, work: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``work``, whose calls on this store then form one transaction: they are all
        kept when ``work`` returns and none is when it raises (or the process dies first).

        ``work`` may run more than once (after a deadlock, or a connection lost before
        anything was committed): its store work is rolled back before it runs again, but
        anything else it does (an event emitted) happens again.
        A unit opened inside another one joins it. Raises what ``work`` raises, and
        ``StoreUnavailable`` when the commit fails.
        """
        ...

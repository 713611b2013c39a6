"""The state the memory parts share: the dicts, and the indexes that keep them consistent.

:class:`IdentityState` holds users, groups, memberships and credentials;
:class:`TokenState` holds codes, tombstones, tokens, reuse markers, claims and counters.
Each part of the port is a mixin over one of them (``identities`` and ``credentials`` over
the first; ``codes``, ``tokens``, ``ephemeral`` and the token half of ``admin`` over the
second), so that parts which share data share one object: ``revoke_subject`` (tokens) drops
a subject's pending codes through the same subject index that ``save_code`` fills.
"""

from __future__ import annotations

import msgspec

from domain.entities import (
    AccessToken,
    AuthorizationCode,
    ConsumedCode,
    Credentials,
    Group,
    Member,
    Passkey,
    RefreshToken,
    User,
)

# One hash is kept as a bare ``str``; a second one promotes the entry to a ``set``. Most
# subjects and grants hold one or two tokens, and an empty set costs 216 bytes.
_Hashes = str | set[str]


def _fold(name: str) -> str:
    """The key under which names are unique (SCIM ``caseExact: false``)."""
    return name.lower()


class _Expiring(msgspec.Struct, frozen=True, gc=False):
    """A value kept until ``exp`` (a tombstone, a reuse marker)."""

    exp: int


class _Tombstone(_Expiring, frozen=True, gc=False):
    code: ConsumedCode


class _ReuseMarker(_Expiring, frozen=True, gc=False):
    grant_id: str


class _Counter(_Expiring, frozen=True, gc=False):
    window: int
    value: int


class IdentityState:
    """Users, groups, memberships and credentials, held in dicts.

    Records are kept as the frozen entities themselves, stored without derived fields
    (``User.groups``, ``Member.display``), which are filled in on reads. Uniqueness of
    ``user_name`` and ``display_name`` is enforced through lower-cased indexes.
    """

    __slots__ = (
        "_credentials",
        "_group_ids_by_name",
        "_groups",
        "_groups_of_user",
        "_members",
        "_passkeys",
        "_passkeys_of_user",
        "_recovery_codes",
        "_user_ids_by_name",
        "_users",
    )

    def __init__(self) -> None:
        self._users: dict[str, User] = {}
        self._user_ids_by_name: dict[str, str] = {}
        # Groups without members; their members, in order, by user id (see identities).
        self._groups: dict[str, Group] = {}
        self._members: dict[str, dict[str, Member]] = {}
        self._group_ids_by_name: dict[str, str] = {}
        # Reverse index of memberships, so reading a user or deleting one is not a scan.
        self._groups_of_user: dict[str, set[str]] = {}
        # Only users with something set have an entry.
        self._credentials: dict[str, Credentials] = {}
        # Passkeys by credential id (unique across users), and each user's ids in the
        # order they were added; unused recovery code hashes by user id.
        self._passkeys: dict[str, Passkey] = {}
        self._passkeys_of_user: dict[str, list[str]] = {}
        self._recovery_codes: dict[str, set[str]] = {}

    @property
    def user_count(self) -> int:
        """How many users are stored."""
        return len(self._users)

    @property
    def group_count(self) -> int:
        """How many groups are stored."""
        return len(self._groups)


class TokenState:
    """Token state held in dicts keyed by SHA-256 hex digests.

    ``grant_id`` and ``sub`` indexes (to the access- and refresh-token hashes, and from a
    user to its pending codes) make family and subject revocation proportional to the
    family, not to the store; they are cleaned whenever a token or code leaves the store.
    Expired records stay until a purge (:mod:`adapters.memory.admin`) but are never returned.
    """

    __slots__ = (
        "_access",
        "_by_grant",
        "_by_sub",
        "_claims",
        "_codes",
        "_codes_by_sub",
        "_counters",
        "_refresh",
        "_reuse",
        "_tombstones",
    )

    def __init__(self) -> None:
        self._codes: dict[str, AuthorizationCode] = {}
        self._codes_by_sub: dict[str, _Hashes] = {}
        self._tombstones: dict[str, _Tombstone] = {}
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._reuse: dict[str, _ReuseMarker] = {}
        self._by_grant: dict[str, _Hashes] = {}
        self._by_sub: dict[str, _Hashes] = {}
        self._claims: dict[str, int] = {}
        self._counters: dict[str, _Counter] = {}

    def _index(self, token_hash: str, grant_id: str | None, sub: str | None) -> None:
        if grant_id is not None:
            _add(self._by_grant, grant_id, token_hash)
        if sub is not None:
            _add(self._by_sub, sub, token_hash)

    def _unindex(self, token_hash: str, grant_id: str | None, sub: str | None) -> None:
        if grant_id is not None:
            _discard(self._by_grant, grant_id, token_hash)
        if sub is not None:
            _discard(self._by_sub, sub, token_hash)

    def _forget_code(self, code_hash: str) -> None:
        code = self._codes.pop(code_hash, None)
        if code is not None:
            self._unindex_code(code)

    def _unindex_code(self, code: AuthorizationCode) -> None:
        if code.user_id is not None:
            _discard(self._codes_by_sub, code.user_id, code.code_hash)

    def _forget_access(self, token_hash: str) -> None:
        token = self._access.pop(token_hash, None)
        if token is not None:
            self._unindex(token_hash, token.grant_id, token.sub)

    def _forget_refresh(self, token_hash: str) -> None:
        token = self._refresh.pop(token_hash, None)
        if token is not None:
            self._unindex(token_hash, token.grant_id, token.sub)


def _add(index: dict[str, _Hashes], key: str, token_hash: str) -> None:
    entry = index.get(key)
    if entry is None:
        index[key] = token_hash
    elif isinstance(entry, str):
        if entry != token_hash:
            index[key] = {entry, token_hash}
    else:
        entry.add(token_hash)


def _discard(index: dict[str, _Hashes], key: str, token_hash: str) -> None:
    entry = index.get(key)
    if entry is None:
        return
    if isinstance(entry, str):
        if entry == token_hash:
            del index[key]
        return
    entry.discard(token_hash)
    if len(entry) == 1:
        index[key] = entry.pop()

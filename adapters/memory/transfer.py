"""The transfer Protocols of :mod:`ports.store` over the memory halves.

``IdentityTransferInMemory`` (users, groups) works on a :class:`MemoryIdentities`;
the token functions work on a :class:`MemoryTokenState`, so that ``hybrid`` reuses both.
They read the halves' dicts directly: a copy must see records exactly as stored, without
the fields that reads derive (``User.groups``, ``Member.display``) and with what no read
returns (credentials next to users, tombstones and markers with their expiries).

Every import completes without awaiting, so on one event loop it is atomic: it checks the
whole batch first and raises before changing anything.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from typing import TypeVar

import msgspec

from adapters.memory.identities import MemoryIdentities, stored_form
from adapters.memory.state import _fold, _ReuseMarker, _Tombstone
from adapters.memory.token_state import MemoryTokenState
from adapters.memory.tokens import _compact_access
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
from domain.errors import Conflict, InvalidValue
from domain.records import Batch, Claim, ConsumedCodeRecord, ReuseMarker, UserRecord

_V = TypeVar("_V")
_R = TypeVar("_R")


def _batch(
    records: Mapping[str, _V],
    cursor: str | None,
    limit: int,
    record_of: Callable[[str, _V], _R],
    live: Callable[[_V], bool] = lambda _: True,
) -> Batch[_R]:
    """The live records of the ``limit`` smallest keys above ``cursor`` (code-point order);
    the next cursor is the last key, or None when this batch is the last.

    One pass over the dict per batch, keeping only ``limit`` keys at a time, rather than a
    sorted copy of every key.
    """
    size = max(limit, 1)
    keys = heapq.nsmallest(size, (
        key for key, value in records.items()
        if (cursor is None or key > cursor) and live(value)
    ))
    return Batch(
        records=tuple(record_of(key, records[key]) for key in keys),
        cursor=keys[-1] if len(keys) == size else None,
    )


def _value(key: str, value: _R) -> _R:
    return value


def _credentials_of(record: UserRecord) -> Credentials | None:
    """The credentials entry the record means; None when it sets nothing (as stored)."""
    credentials = Credentials(
        user_id=record.user.id,
        password_hash=record.password_hash,
        totp_secret=record.totp_secret,
        totp_confirmed=record.totp_confirmed and record.totp_secret is not None,
        verified_email=record.verified_email,
    )
    return None if credentials == Credentials(user_id=record.user.id) else credentials


def _factors_of(record: UserRecord) -> tuple[tuple[Passkey, ...], frozenset[str]]:
    return tuple(record.passkeys), frozenset(record.recovery_codes)


def _factors_held(
    ids: MemoryIdentities, user_id: str
) -> tuple[tuple[Passkey, ...], frozenset[str]]:
    return (tuple(ids._passkeys[c] for c in ids._passkeys_of_user.get(user_id, ())),
            frozenset(ids._recovery_codes.get(user_id, ())))


def _claim_names(
    index: Mapping[str, str], claimed: dict[str, str], name: str, entity_id: str,
    attribute: str,
) -> None:
    """Check that ``name`` is free for ``entity_id`` in the store and in the batch so far."""
    key = _fold(name)
    owner = claimed.get(key) or index.get(key)
    if owner is not None and owner != entity_id:
        raise Conflict(f"{attribute} {name!r} is already taken by {owner}", attribute)
    claimed[key] = entity_id


class IdentityTransferInMemory:
    """:class:`ports.store.UserTransfer` and ``GroupTransfer`` over ``self.identities``."""

    __slots__ = ()
    identities: MemoryIdentities

    async def export_users(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[UserRecord]:
        """See :meth:`ports.store.UserTransfer.export_users`."""
        ids = self.identities

        def record_of(user_id: str, user: User) -> UserRecord:
            credentials = ids._credentials.get(user_id) or Credentials(user_id=user_id)
            return UserRecord(
                user=user,
                password_hash=credentials.password_hash,
                totp_secret=credentials.totp_secret,
                totp_confirmed=credentials.totp_confirmed,
                verified_email=credentials.verified_email,
                passkeys=tuple(ids._passkeys[c] for c in ids._passkeys_of_user.get(user_id, ())),
                recovery_codes=tuple(sorted(ids._recovery_codes.get(user_id, ()))),
            )

        return _batch(ids._users, cursor, limit, record_of)

    async def import_users(self, records: tuple[UserRecord, ...], now: int) -> int:
        """See :meth:`ports.store.UserTransfer.import_users`."""
        ids = self.identities
        claimed: dict[str, str] = {}
        changes: list[tuple[User, Credentials | None, UserRecord]] = []
        for record in records:
            user = stored_form(record.user)
            if not user.id:
                raise InvalidValue("a user record without an id")
            _claim_names(ids._user_ids_by_name, claimed, user.user_name, user.id, "userName")
            credentials = _credentials_of(record)
            for passkey in record.passkeys:
                holder = ids._passkeys.get(passkey.credential_id)
                if passkey.user_id != user.id or (holder is not None
                                                  and holder.user_id != user.id):
                    raise Conflict(f"passkey {passkey.credential_id!r} belongs to another "
                                   "user", "credential_id")
            if ids._users.get(user.id) != user or ids._credentials.get(user.id) != credentials \
                    or _factors_held(ids, user.id) != _factors_of(record):
                changes.append((user, credentials, record))
        for user, credentials, record in changes:
            old = ids._users.get(user.id)
            if old is not None and ids._user_ids_by_name.get(_fold(old.user_name)) == user.id:
                del ids._user_ids_by_name[_fold(old.user_name)]
            ids._users[user.id] = user
            ids._user_ids_by_name[_fold(user.user_name)] = user.id
            if credentials is None:
                ids._credentials.pop(user.id, None)
            else:
                ids._credentials[user.id] = credentials
            ids._drop_passkeys(user.id)
            for passkey in record.passkeys:
                ids._passkeys[passkey.credential_id] = passkey
                ids._passkeys_of_user.setdefault(user.id, []).append(passkey.credential_id)
            if record.recovery_codes:
                ids._recovery_codes[user.id] = set(record.recovery_codes)
            else:
                ids._recovery_codes.pop(user.id, None)
        return len(changes)

    async def export_groups(self, cursor: str | None, limit: int, now: int) -> Batch[Group]:
        """See :meth:`ports.store.GroupTransfer.export_groups`."""
        ids = self.identities
        return _batch(ids._groups, cursor, limit, lambda group_id, _: ids.stored_group(group_id))

    async def import_groups(self, records: tuple[Group, ...], now: int) -> int:
        """See :meth:`ports.store.GroupTransfer.import_groups`."""
        ids = self.identities
        claimed: dict[str, str] = {}
        changes: list[tuple[Group, dict[str, Member]]] = []
        for record in records:
            if not record.id:
                raise InvalidValue("a group record without an id")
            _claim_names(
                ids._group_ids_by_name, claimed, record.display_name, record.id, "displayName"
            )
            # Raises InvalidReference for a member that is no user, before any change.
            members = ids._checked_members(record.members)
            group = msgspec.structs.replace(record, members=tuple(members.values()))
            if group.id not in ids._groups or ids.stored_group(group.id) != group:
                changes.append((group, members))
        for group, members in changes:
            ids.put_group(group, members)
        return len(changes)


# Token state: functions over one MemoryTokenState, shared by memory and hybrid.


def export_codes(
    state: MemoryTokenState, cursor: str | None, limit: int, now: int
) -> Batch[AuthorizationCode]:
    """See :meth:`ports.store.CodeTransfer.export_codes`."""
    return _batch(state._codes, cursor, limit, _value, lambda code: code.exp > now)


def import_codes(
    state: MemoryTokenState, records: tuple[AuthorizationCode, ...], now: int
) -> int:
    """See :meth:`ports.store.CodeTransfer.import_codes`."""
    written = 0
    for code in records:
        tombstone = state._tombstones.get(code.code_hash)
        if code.exp <= now or (tombstone is not None and tombstone.exp > now):
            continue
        if state._codes.get(code.code_hash) != code:
            state._codes[code.code_hash] = code
            written += 1
    return written


def export_consumed_codes(
    state: MemoryTokenState, cursor: str | None, limit: int, now: int
) -> Batch[ConsumedCodeRecord]:
    """See :meth:`ports.store.CodeTransfer.export_consumed_codes`."""
    def record_of(key: str, tomb: _Tombstone) -> ConsumedCodeRecord:
        return ConsumedCodeRecord(
            code_hash=key, grant_id=tomb.code.grant_id, client_id=tomb.code.client_id,
            exp=tomb.exp,
        )

    return _batch(state._tombstones, cursor, limit, record_of, lambda tomb: tomb.exp > now)


def import_consumed_codes(
    state: MemoryTokenState, records: tuple[ConsumedCodeRecord, ...], now: int
) -> int:
    """See :meth:`ports.store.CodeTransfer.import_consumed_codes`."""
    written = 0
    for record in records:
        if record.exp <= now:
            continue
        old = state._tombstones.get(record.code_hash)
        held = old.exp if old is not None and old.exp > now else 0
        new = _Tombstone(
            exp=max(record.exp, held),
            code=ConsumedCode(record.code_hash, record.grant_id, record.client_id),
        )
        changed = old != new
        if changed:
            state._tombstones[record.code_hash] = new
        code = state._codes.pop(record.code_hash, None)
        if changed or (code is not None and code.exp > now):
            written += 1
    return written


def export_access_tokens(
    state: MemoryTokenState, cursor: str | None, limit: int, now: int
) -> Batch[AccessToken]:
    """See :meth:`ports.store.TokenTransfer.export_access_tokens`."""
    return _batch(state._access, cursor, limit, _value, lambda token: token.exp > now)


def import_access_tokens(
    state: MemoryTokenState, records: tuple[AccessToken, ...], now: int
) -> int:
    """See :meth:`ports.store.TokenTransfer.import_access_tokens`."""
    written = 0
    for token in records:
        if token.exp <= now:
            continue
        old = state._access.get(token.token_hash)
        if old is not None and old.exp > now and not old.active and token.active:
            token = msgspec.structs.replace(token, active=False)
        if old == token:
            continue
        state._forget_access(token.token_hash)
        token = _compact_access(token)
        state._access[token.token_hash] = token
        state._index(token.token_hash, token.grant_id, token.sub)
        written += 1
    return written


def export_refresh_tokens(
    state: MemoryTokenState, cursor: str | None, limit: int, now: int
) -> Batch[RefreshToken]:
    """See :meth:`ports.store.TokenTransfer.export_refresh_tokens`."""
    return _batch(state._refresh, cursor, limit, _value, lambda token: token.exp > now)


def import_refresh_tokens(
    state: MemoryTokenState, records: tuple[RefreshToken, ...], now: int
) -> int:
    """See :meth:`ports.store.TokenTransfer.import_refresh_tokens`."""
    written = 0
    for token in records:
        marker = state._reuse.get(token.token_hash)
        if token.exp <= now or (marker is not None and marker.exp > now):
            continue
        if state._refresh.get(token.token_hash) == token:
            continue
        state._forget_refresh(token.token_hash)
        state._refresh[token.token_hash] = token
        state._index(token.token_hash, token.grant_id, token.sub)
        written += 1
    return written


def export_reuse_markers(
    state: MemoryTokenState, cursor: str | None, limit: int, now: int
) -> Batch[ReuseMarker]:
    """See :meth:`ports.store.TokenTransfer.export_reuse_markers`."""
    def record_of(key: str, marker: _ReuseMarker) -> ReuseMarker:
        return ReuseMarker(token_hash=key, grant_id=marker.grant_id, exp=marker.exp)

    return _batch(state._reuse, cursor, limit, record_of, lambda marker: marker.exp > now)


def import_reuse_markers(
    state: MemoryTokenState, records: tuple[ReuseMarker, ...], now: int
) -> int:
    """See :meth:`ports.store.TokenTransfer.import_reuse_markers`."""
    written = 0
    for record in records:
        if record.exp <= now:
            continue
        old = state._reuse.get(record.token_hash)
        held = old.exp if old is not None and old.exp > now else 0
        new = _ReuseMarker(exp=max(record.exp, held), grant_id=record.grant_id)
        changed = old != new
        if changed:
            state._reuse[record.token_hash] = new
        token = state._refresh.get(record.token_hash)
        if token is not None:
            state._forget_refresh(record.token_hash)
        if changed or (token is not None and token.exp > now):
            written += 1
    return written


def export_claims(
    state: MemoryTokenState, cursor: str | None, limit: int, now: int
) -> Batch[Claim]:
    """See :meth:`ports.store.EphemeralTransfer.export_claims`."""
    return _batch(
        state._claims, cursor, limit, lambda key, exp: Claim(key=key, exp=exp),
        lambda exp: exp > now,
    )


def import_claims(state: MemoryTokenState, records: tuple[Claim, ...], now: int) -> int:
    """See :meth:`ports.store.EphemeralTransfer.import_claims`."""
    written = 0
    for claim in records:
        held = state._claims.get(claim.key)
        if claim.exp <= now or (held is not None and held > now and held >= claim.exp):
            continue
        state._claims[claim.key] = claim.exp
        written += 1
    return written


class TokenTransferInMemory:
    """:class:`ports.store.CodeTransfer`, ``TokenTransfer`` and ``EphemeralTransfer`` over
    ``self.tokens``."""

    __slots__ = ()
    tokens: MemoryTokenState

    async def export_codes(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AuthorizationCode]:
        """See :meth:`ports.store.CodeTransfer.export_codes`."""
        return export_codes(self.tokens, cursor, limit, now)

    async def import_codes(self, records: tuple[AuthorizationCode, ...], now: int) -> int:
        """See :meth:`ports.store.CodeTransfer.import_codes`."""
        return import_codes(self.tokens, records, now)

    async def export_consumed_codes(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ConsumedCodeRecord]:
        """See :meth:`ports.store.CodeTransfer.export_consumed_codes`."""
        return export_consumed_codes(self.tokens, cursor, limit, now)

    async def import_consumed_codes(
        self, records: tuple[ConsumedCodeRecord, ...], now: int
    ) -> int:
        """See :meth:`ports.store.CodeTransfer.import_consumed_codes`."""
        return import_consumed_codes(self.tokens, records, now)

    async def export_access_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AccessToken]:
        """See :meth:`ports.store.TokenTransfer.export_access_tokens`."""
        return export_access_tokens(self.tokens, cursor, limit, now)

    async def import_access_tokens(self, records: tuple[AccessToken, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_access_tokens`."""
        return import_access_tokens(self.tokens, records, now)

    async def export_refresh_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[RefreshToken]:
        """See :meth:`ports.store.TokenTransfer.export_refresh_tokens`."""
        return export_refresh_tokens(self.tokens, cursor, limit, now)

    async def import_refresh_tokens(self, records: tuple[RefreshToken, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_refresh_tokens`."""
        return import_refresh_tokens(self.tokens, records, now)

    async def export_reuse_markers(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ReuseMarker]:
        """See :meth:`ports.store.TokenTransfer.export_reuse_markers`."""
        return export_reuse_markers(self.tokens, cursor, limit, now)

    async def import_reuse_markers(self, records: tuple[ReuseMarker, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_reuse_markers`."""
        return import_reuse_markers(self.tokens, records, now)

    async def export_claims(self, cursor: str | None, limit: int, now: int) -> Batch[Claim]:
        """See :meth:`ports.store.EphemeralTransfer.export_claims`."""
        return export_claims(self.tokens, cursor, limit, now)

    async def import_claims(self, records: tuple[Claim, ...], now: int) -> int:
        """See :meth:`ports.store.EphemeralTransfer.import_claims`."""
        return import_claims(self.tokens, records, now)


class MemoryTransfer(IdentityTransferInMemory, TokenTransferInMemory):
    """Every transfer Protocol of the port, over ``self.identities`` and ``self.tokens``."""

    __slots__ = ()

"""Codes, tokens, reuse markers and ephemeral state in process memory.

This is the token half of the ``memory`` adapter and the in-process part of ``hybrid``.
Single-use operations (``take_code``, ``take_refresh_token``, ``claim_once``) never await
between reading and writing, so on one event loop each of them is atomic.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

import msgspec

from domain.entities import (
    AccessToken,
    AuthorizationCode,
    ConsumedCode,
    PurgeCounts,
    RefreshTake,
    RefreshToken,
    Reused,
    Taken,
    Unknown,
)

_V = TypeVar("_V")

# One hash is kept as a bare ``str``; a second one promotes the entry to a ``set``. Most
# subjects and grants hold one or two tokens, and an empty set costs 216 bytes.
_Hashes = str | set[str]


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


class MemoryTokenState:
    """Token state held in dicts keyed by SHA-256 hex digests.

    ``grant_id`` and ``sub`` indexes (to the access- and refresh-token hashes, and from a
    user to its pending codes) make family and subject revocation proportional to the
    family, not to the store; they are cleaned whenever a token or code leaves the store.
    Expired records stay until :meth:`purge_expired` but are never returned.
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

    # Codes

    async def save_code(self, code: AuthorizationCode, now: int) -> None:
        """See :meth:`ports.store.CodeStore.save_code`."""
        self._forget_code(code.code_hash)
        self._codes[code.code_hash] = code
        if code.user_id is not None:
            _add(self._codes_by_sub, code.user_id, code.code_hash)

    async def take_code(
        self, code_hash: str, now: int, *, remember_until: int
    ) -> AuthorizationCode | ConsumedCode | None:
        """See :meth:`ports.store.CodeStore.take_code`."""
        code = self._codes.get(code_hash)
        if code is not None and code.exp > now:
            self._forget_code(code_hash)
            consumed = ConsumedCode(code_hash, code.grant_id, code.client_id)
            self._tombstones[code_hash] = _Tombstone(exp=remember_until, code=consumed)
            return code
        tombstone = self._tombstones.get(code_hash)
        if tombstone is not None and tombstone.exp > now:
            return tombstone.code
        return None

    # Access and refresh tokens

    async def save_tokens(
        self, access: AccessToken, refresh: RefreshToken | None, now: int
    ) -> None:
        """See :meth:`ports.store.TokenStore.save_tokens`."""
        access = _compact_access(access)
        self._forget_access(access.token_hash)
        self._access[access.token_hash] = access
        self._index(access.token_hash, access.grant_id, access.sub)
        if refresh is not None:
            self._forget_refresh(refresh.token_hash)
            self._refresh[refresh.token_hash] = refresh
            self._index(refresh.token_hash, refresh.grant_id, refresh.sub)

    async def get_access_token(self, token_hash: str, now: int) -> AccessToken | None:
        """See :meth:`ports.store.TokenStore.get_access_token`."""
        token = self._access.get(token_hash)
        return token if token is not None and token.exp > now else None

    async def revoke_access_token(self, token_hash: str, now: int) -> bool:
        """See :meth:`ports.store.TokenStore.revoke_access_token`."""
        token = self._access.get(token_hash)
        if token is None or token.exp <= now:
            return False
        self._deactivate(token)
        return True

    async def get_refresh_token(self, token_hash: str, now: int) -> RefreshToken | None:
        """See :meth:`ports.store.TokenStore.get_refresh_token`."""
        token = self._refresh.get(token_hash)
        return token if token is not None and token.exp > now else None

    async def take_refresh_token(self, token_hash: str, now: int) -> RefreshTake:
        """See :meth:`ports.store.TokenStore.take_refresh_token`."""
        token = self._refresh.get(token_hash)
        if token is not None and token.exp > now:
            self._forget_refresh(token_hash)
            # The marker lives exactly as long as the token would have: no longer.
            self._reuse[token_hash] = _ReuseMarker(exp=token.exp, grant_id=token.grant_id)
            access = self._access.get(token.access_token_hash)
            if access is not None and access.active and access.exp > now:
                self._deactivate(access)
            return Taken(token)
        marker = self._reuse.get(token_hash)
        if marker is not None and marker.exp > now:
            self._revoke(self._by_grant, marker.grant_id, now, lambda t: t.grant_id)
            return Reused(marker.grant_id)
        return Unknown()

    async def revoke_grant(self, grant_id: str, now: int) -> int:
        """See :meth:`ports.store.TokenStore.revoke_grant`."""
        return self._revoke(self._by_grant, grant_id, now, lambda t: t.grant_id)

    async def revoke_subject(self, sub: str, now: int) -> int:
        """See :meth:`ports.store.TokenStore.revoke_subject`."""
        changed = self._revoke(self._by_sub, sub, now, lambda t: t.sub)
        entry = self._codes_by_sub.get(sub)
        hashes = [] if entry is None else [entry] if isinstance(entry, str) else list(entry)
        for code_hash in hashes:
            code = self._codes.get(code_hash)
            if code is not None and code.exp > now:
                changed += 1
            self._forget_code(code_hash)
        return changed

    def _revoke(
        self,
        index: dict[str, _Hashes],
        key: str,
        now: int,
        key_of: Callable[[AccessToken | RefreshToken], str | None],
    ) -> int:
        """Deactivate the live access tokens and drop the live refresh tokens under ``key``.

        Synchronous on purpose: a reuse detection must revoke the family in one step.
        """
        changed = 0
        entry = index.get(key)
        hashes = [] if entry is None else [entry] if isinstance(entry, str) else list(entry)
        for token_hash in hashes:
            access = self._access.get(token_hash)
            if access is not None and key_of(access) == key:
                if access.active and access.exp > now:
                    self._deactivate(access)
                    changed += 1
                continue
            refresh = self._refresh.get(token_hash)
            if refresh is not None and key_of(refresh) == key and refresh.exp > now:
                self._forget_refresh(token_hash)
                changed += 1
        return changed

    def _deactivate(self, token: AccessToken) -> None:
        # Same record with ``active`` false: ``exp`` is untouched, so the lifetime is kept.
        self._access[token.token_hash] = msgspec.structs.replace(token, active=False)

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

    # Ephemeral state

    async def claim_once(self, key: str, exp: int, now: int) -> bool:
        """See :meth:`ports.store.EphemeralStore.claim_once`."""
        held_until = self._claims.get(key)
        if held_until is not None and held_until > now:
            return False
        self._claims[key] = exp
        return True

    async def hit(self, key: str, window_seconds: int, now: int, amount: int = 1) -> int:
        """See :meth:`ports.store.EphemeralStore.hit`."""
        window = now // window_seconds
        counter = self._counters.get(key)
        value = counter.value if counter is not None and counter.window == window else 0
        if amount:
            value += amount
            self._counters[key] = _Counter(
                exp=(window + 1) * window_seconds, window=window, value=value
            )
        return value

    # Administration

    def count_codes(self, now: int) -> int:
        """Live (unexpired, unconsumed) authorization codes."""
        return sum(1 for code in self._codes.values() if code.exp > now)

    def count_access_tokens(self, now: int) -> int:
        """Unexpired access-token records, revoked ones included."""
        return sum(1 for token in self._access.values() if token.exp > now)

    def count_refresh_tokens(self, now: int) -> int:
        """Unexpired refresh tokens."""
        return sum(1 for token in self._refresh.values() if token.exp > now)

    async def purge_expired(self, now: int, batch_size: int = 1000) -> PurgeCounts:
        """See :meth:`ports.store.StoreAdmin.purge_expired`.

        Tombstones count as ``codes``; claims and counters as ``other``. Between batches the
        event loop runs other tasks, so a large purge does not stall requests.
        """
        batch = max(batch_size, 1)
        codes = await _purge(self._codes, lambda c: c.exp, now, batch, self._unindex_code)
        codes += await _purge(self._tombstones, lambda t: t.exp, now, batch)
        access = await _purge(
            self._access, lambda t: t.exp, now, batch,
            lambda t: self._unindex(t.token_hash, t.grant_id, t.sub),
        )
        refresh = await _purge(
            self._refresh, lambda t: t.exp, now, batch,
            lambda t: self._unindex(t.token_hash, t.grant_id, t.sub),
        )
        reuse = await _purge(self._reuse, lambda m: m.exp, now, batch)
        other = await _purge(self._claims, lambda exp: exp, now, batch)
        other += await _purge(self._counters, lambda c: c.exp, now, batch)
        return PurgeCounts(
            codes=codes,
            access_tokens=access,
            refresh_tokens=refresh,
            reuse_markers=reuse,
            other=other,
        )


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


def _compact_access(token: AccessToken) -> AccessToken:
    """The record with its ``scope`` and ``client_id`` shared with every other record.

    Each request parses its own copy of these few distinct strings; sharing them saves
    about a hundred bytes per stored token.
    """
    scope, client_id = sys.intern(token.scope), sys.intern(token.client_id)
    if scope is token.scope and client_id is token.client_id:
        return token
    return msgspec.structs.replace(token, scope=scope, client_id=client_id)


def _chunks(keys: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


async def _purge(
    records: dict[str, _V],
    exp_of: Callable[[_V], int],
    now: int,
    batch_size: int,
    on_remove: Callable[[_V], None] | None = None,
) -> int:
    """Remove the records whose expiry is at or before ``now``, ``batch_size`` at a time.

    Keys are snapshotted first because the dict may change while other tasks run between
    batches; each record is checked again just before it is removed.
    """
    removed = 0
    for chunk in _chunks(list(records), batch_size):
        for key in chunk:
            record = records.get(key)
            if record is not None and exp_of(record) <= now:
                del records[key]
                if on_remove is not None:
                    on_remove(record)
                removed += 1
        await asyncio.sleep(0)
    return removed

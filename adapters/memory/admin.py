"""``TokenStateAdmin``: the counts and the purge of :class:`ports.store.StoreAdmin` over one
:class:`~adapters.memory.state.TokenState`.

A base of the token half, :class:`~adapters.memory.token_state.MemoryTokenState`, so that
``hybrid`` purges its in-process state with it too. ``MemoryStore`` answers the rest of the
port (health, counts of users and groups, close) itself: a few lines, in ``store.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import TypeVar

from adapters.memory.state import TokenState
from domain.entities import PurgeCounts

_V = TypeVar("_V")


class TokenStateAdmin(TokenState):
    """Counts and purge of one :class:`~adapters.memory.state.TokenState`."""

    __slots__ = ()

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

"""``MemoryAccountTokens``: the ``AccountTokenStore`` port (and its transfer pair) in
process memory.

No method awaits between reading and writing, so on one event loop a take is atomic: a
link is spent once.
"""

from __future__ import annotations

import bisect

from domain.entities import AccountToken, AccountTokenKind
from domain.records import Batch


class MemoryAccountTokens:
    """:class:`ports.store.AccountTokenStore` and ``AccountTokenTransfer`` over a dict."""

    __slots__ = ("_by_hash", "_hashes")

    def __init__(self) -> None:
        self._by_hash: dict[str, AccountToken] = {}
        #: The token hashes in ascending order, for keyset paging.
        self._hashes: list[str] = []

    def count(self, now: int) -> int:
        return sum(1 for t in self._by_hash.values() if now < t.exp)

    def purge(self, now: int) -> int:
        dead = [h for h, t in self._by_hash.items() if t.exp <= now]
        for token_hash in dead:
            self._remove(token_hash)
        return len(dead)

    def _put(self, token: AccountToken) -> None:
        if token.token_hash not in self._by_hash:
            bisect.insort(self._hashes, token.token_hash)
        self._by_hash[token.token_hash] = token

    def _remove(self, token_hash: str) -> None:
        del self._by_hash[token_hash]
        del self._hashes[bisect.bisect_left(self._hashes, token_hash)]

    # AccountTokenStore

    async def save_account_token(self, token: AccountToken, now: int) -> None:
        """See :meth:`ports.store.AccountTokenStore.save_account_token`."""
        self._put(token)

    async def take_account_token(
        self, kind: AccountTokenKind, token_hash: str, now: int
    ) -> AccountToken | None:
        """See :meth:`ports.store.AccountTokenStore.take_account_token`."""
        held = self._by_hash.get(token_hash)
        if held is None or held.kind != kind or held.exp <= now:
            return None
        self._remove(token_hash)
        return held

    async def revoke_account_tokens(
        self, user_id: str, kind: AccountTokenKind, now: int
    ) -> int:
        """See :meth:`ports.store.AccountTokenStore.revoke_account_tokens`."""
        gone = [h for h, t in self._by_hash.items()
                if t.user_id == user_id and t.kind == kind and now < t.exp]
        for token_hash in gone:
            self._remove(token_hash)
        return len(gone)

    # AccountTokenTransfer

    async def export_account_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AccountToken]:
        """See :meth:`ports.store.AccountTokenTransfer.export_account_tokens`."""
        start = 0 if cursor is None else bisect.bisect_right(self._hashes, cursor)
        records: list[AccountToken] = []
        last: str | None = None
        for token_hash in self._hashes[start:]:
            if len(records) == limit:
                return Batch(tuple(records), last)
            last = token_hash
            held = self._by_hash[token_hash]
            if now < held.exp:
                records.append(held)
        return Batch(tuple(records), None)

    async def import_account_tokens(self, records: tuple[AccountToken, ...], now: int) -> int:
        """See :meth:`ports.store.AccountTokenTransfer.import_account_tokens`."""
        kept = 0
        for record in records:
            held = self._by_hash.get(record.token_hash)
            if record.exp <= now or (held is not None and now < held.exp):
                continue
            self._put(record)
            kept += 1
        return kept

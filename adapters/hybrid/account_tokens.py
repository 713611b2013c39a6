"""``HybridAccountTokens``: the ``AccountTokenStore`` port (and ``AccountTokenTransfer``)
for ``hybrid``.

Without Redis, account tokens (password-reset and email-verification links) live in this
process's memory (the memory adapter's
:class:`~adapters.memory.account_tokens.MemoryAccountTokens`): one instance, which decides
everything itself.

With Redis (one server or a cluster), Redis alone holds them (``redis_account_tokens.py``)
and every call is one Lua script there: a take that hands a link to exactly one caller, on
whichever instance, and a revoke that forgets every link of a user and kind in one step.
Nothing of the part is kept in this process's memory, not even as a fallback: during an
outage every call raises ``StoreUnavailable`` (fail closed). A link taken by one instance
alone could be taken again by another, and one revoked by one instance alone (a password
was set meanwhile) would still work on the others; the user asks for a new mail instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from adapters.hybrid.connection import _SKIP, HybridConnection
from adapters.hybrid.redis_account_tokens import RedisAccountTokens
from domain.entities import AccountToken, AccountTokenKind
from domain.errors import StoreUnavailable
from domain.records import Batch

_T = TypeVar("_T")


class HybridAccountTokens(HybridConnection):
    """:class:`ports.store.AccountTokenStore` and ``AccountTokenTransfer`` for
    :class:`~adapters.hybrid.HybridStore`; see the module docstring."""

    __slots__ = ()

    async def _on_shared_account_tokens(
        self, now: int, op: Callable[[RedisAccountTokens], Awaitable[_T]]
    ) -> _T:
        """``op``'s result on the configured Redis (callers check ``_shares`` first).
        Raises ``StoreUnavailable`` while it cannot be used: the part never falls back to
        this process's memory."""
        result = await self._ask(now, lambda redis: op(self._account_token_part(redis)))
        if result is _SKIP:
            raise StoreUnavailable("the shared account tokens are unreachable")
        return result

    # AccountTokenStore

    async def save_account_token(self, token: AccountToken, now: int) -> None:
        """See :meth:`ports.store.AccountTokenStore.save_account_token`."""
        if not self._shares:
            return await self.account_tokens.save_account_token(token, now)
        return await self._on_shared_account_tokens(
            now, lambda r: r.save_account_token(token, now)
        )

    async def take_account_token(
        self, kind: AccountTokenKind, token_hash: str, now: int
    ) -> AccountToken | None:
        """See :meth:`ports.store.AccountTokenStore.take_account_token`."""
        if not self._shares:
            return await self.account_tokens.take_account_token(kind, token_hash, now)
        return await self._on_shared_account_tokens(
            now, lambda r: r.take_account_token(kind, token_hash, now)
        )

    async def revoke_account_tokens(
        self, user_id: str, kind: AccountTokenKind, now: int
    ) -> int:
        """See :meth:`ports.store.AccountTokenStore.revoke_account_tokens`."""
        if not self._shares:
            return await self.account_tokens.revoke_account_tokens(user_id, kind, now)
        return await self._on_shared_account_tokens(
            now, lambda r: r.revoke_account_tokens(user_id, kind, now)
        )

    # AccountTokenTransfer

    async def export_account_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AccountToken]:
        """See :meth:`ports.store.AccountTokenTransfer.export_account_tokens`."""
        if not self._shares:
            return await self.account_tokens.export_account_tokens(cursor, limit, now)
        return await self._on_shared_account_tokens(
            now, lambda r: r.export_account_tokens(cursor, limit, now)
        )

    async def import_account_tokens(self, records: tuple[AccountToken, ...], now: int) -> int:
        """See :meth:`ports.store.AccountTokenTransfer.import_account_tokens`. With Redis,
        one script per call."""
        if not self._shares:
            return await self.account_tokens.import_account_tokens(records, now)
        return await self._on_shared_account_tokens(
            now, lambda r: r.import_account_tokens(records, now)
        )

"""The transfer Protocols of :mod:`ports.store` for ``hybrid``.

Identities are the memory adapter's (:class:`IdentityTransferInMemory`). Token state is
too when no Redis is configured. With Redis, Redis is the source of truth for token state
and is what gets copied: exports read it and imports write it (``redis_transfer.py``,
``cluster_transfer.py``); this process's memory, a fallback for what it issued itself, is
neither read nor filled. While a configured Redis cannot be used, every token-state
transfer raises ``StoreUnavailable``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from adapters.hybrid.cluster_state import ClusterTokenState
from adapters.hybrid.cluster_transfer import ClusterTransfer
from adapters.hybrid.connection import _SKIP, HybridConnection
from adapters.hybrid.redis_state import RedisTokenState, SharedTokenState
from adapters.hybrid.redis_transfer import RedisTransfer, StateTransfer
from adapters.memory import transfer as memory
from adapters.memory.transfer import IdentityTransferInMemory
from domain.entities import AccessToken, AuthorizationCode, RefreshToken
from domain.records import Batch, Claim, ConsumedCodeRecord, ReuseMarker

_T = TypeVar("_T")
# An operation on the transfer of the shared token state.
_Op = Callable[[StateTransfer], Awaitable[_T]]


def state_transfer(state: SharedTokenState) -> StateTransfer:
    """The transfer of the key layout ``state`` uses."""
    if isinstance(state, ClusterTokenState):
        return ClusterTransfer(state)
    if isinstance(state, RedisTokenState):
        return RedisTransfer(state)
    raise TypeError(f"no transfer for {type(state).__name__}")


class HybridTransfer(IdentityTransferInMemory, HybridConnection):
    """Every transfer Protocol of the port for :class:`~adapters.hybrid.HybridStore`."""

    __slots__ = ()

    async def _on_shared_state(self, now: int, op: _Op[_T]) -> _T | None:
        """``op``'s result on Redis's token state; None when no Redis is configured (token
        state is then this process's memory). Raises ``StoreUnavailable`` while a
        configured Redis cannot be used. Only Redis is copied from or into (never this
        instance's memory alone), so a transfer is refused during an outage. The
        transfer is made once: an export keeps its snapshot of key names between batches."""

        def on(redis: SharedTokenState) -> Awaitable[_T]:
            if self._state_transfer is None:
                self._state_transfer = state_transfer(redis)
            return op(self._state_transfer)

        result = await self._shared(now, on)
        return None if result is _SKIP else result

    async def export_codes(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AuthorizationCode]:
        """See :meth:`ports.store.CodeTransfer.export_codes`."""
        shared = await self._on_shared_state(now, lambda t: t.export_codes(cursor, limit, now))
        return memory.export_codes(self.tokens, cursor, limit, now) if shared is None else shared

    async def import_codes(self, records: tuple[AuthorizationCode, ...], now: int) -> int:
        """See :meth:`ports.store.CodeTransfer.import_codes`."""
        shared = await self._on_shared_state(now, lambda t: t.import_codes(records, now))
        return memory.import_codes(self.tokens, records, now) if shared is None else shared

    async def export_consumed_codes(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ConsumedCodeRecord]:
        """See :meth:`ports.store.CodeTransfer.export_consumed_codes`."""
        shared = await self._on_shared_state(
            now, lambda t: t.export_consumed_codes(cursor, limit, now)
        )
        if shared is None:
            return memory.export_consumed_codes(self.tokens, cursor, limit, now)
        return shared

    async def import_consumed_codes(
        self, records: tuple[ConsumedCodeRecord, ...], now: int
    ) -> int:
        """See :meth:`ports.store.CodeTransfer.import_consumed_codes`."""
        shared = await self._on_shared_state(now, lambda t: t.import_consumed_codes(records, now))
        if shared is None:
            return memory.import_consumed_codes(self.tokens, records, now)
        return shared

    async def export_access_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AccessToken]:
        """See :meth:`ports.store.TokenTransfer.export_access_tokens`."""
        shared = await self._on_shared_state(
            now, lambda t: t.export_access_tokens(cursor, limit, now)
        )
        if shared is None:
            return memory.export_access_tokens(self.tokens, cursor, limit, now)
        return shared

    async def import_access_tokens(self, records: tuple[AccessToken, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_access_tokens`."""
        shared = await self._on_shared_state(now, lambda t: t.import_access_tokens(records, now))
        if shared is None:
            return memory.import_access_tokens(self.tokens, records, now)
        return shared

    async def export_refresh_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[RefreshToken]:
        """See :meth:`ports.store.TokenTransfer.export_refresh_tokens`."""
        shared = await self._on_shared_state(
            now, lambda t: t.export_refresh_tokens(cursor, limit, now)
        )
        if shared is None:
            return memory.export_refresh_tokens(self.tokens, cursor, limit, now)
        return shared

    async def import_refresh_tokens(self, records: tuple[RefreshToken, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_refresh_tokens`."""
        shared = await self._on_shared_state(now, lambda t: t.import_refresh_tokens(records, now))
        if shared is None:
            return memory.import_refresh_tokens(self.tokens, records, now)
        return shared

    async def export_reuse_markers(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ReuseMarker]:
        """See :meth:`ports.store.TokenTransfer.export_reuse_markers`."""
        shared = await self._on_shared_state(
            now, lambda t: t.export_reuse_markers(cursor, limit, now)
        )
        if shared is None:
            return memory.export_reuse_markers(self.tokens, cursor, limit, now)
        return shared

    async def import_reuse_markers(self, records: tuple[ReuseMarker, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_reuse_markers`."""
        shared = await self._on_shared_state(now, lambda t: t.import_reuse_markers(records, now))
        if shared is None:
            return memory.import_reuse_markers(self.tokens, records, now)
        return shared

    async def export_claims(self, cursor: str | None, limit: int, now: int) -> Batch[Claim]:
        """See :meth:`ports.store.EphemeralTransfer.export_claims`."""
        shared = await self._on_shared_state(now, lambda t: t.export_claims(cursor, limit, now))
        return memory.export_claims(self.tokens, cursor, limit, now) if shared is None else shared

    async def import_claims(self, records: tuple[Claim, ...], now: int) -> int:
        """See :meth:`ports.store.EphemeralTransfer.import_claims`."""
        shared = await self._on_shared_state(now, lambda t: t.import_claims(records, now))
        return memory.import_claims(self.tokens, records, now) if shared is None else shared

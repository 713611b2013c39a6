"""The transfer Protocols of :mod:`ports.store` for ``hybrid``.

Identities are the memory adapter's (:class:`IdentityTransferInMemory`). Token state is
too when no Redis is configured. With Redis, Redis is the source of truth for token state,
and copying it needs Redis operations of its own (paging through the key space by kind,
writing tombstones, reuse markers and refresh tokens without their access tokens) that
belong in ``redis_state.py`` next to the key layout; until they exist, every token-state
transfer of a Redis-backed store raises :class:`~domain.errors.NotSupported` before
touching anything.
"""

from __future__ import annotations

from adapters.hybrid.redis_state import SharedTokenState
from adapters.memory import transfer as memory
from adapters.memory.token_state import MemoryTokenState
from adapters.memory.transfer import IdentityTransferInMemory
from domain.entities import AccessToken, AuthorizationCode, RefreshToken
from domain.errors import NotSupported
from domain.records import Batch, Claim, ConsumedCodeRecord, ReuseMarker


class HybridTransfer(IdentityTransferInMemory):
    """Every transfer Protocol of the port for :class:`~adapters.hybrid.HybridStore`."""

    __slots__ = ()
    tokens: MemoryTokenState
    _redis: SharedTokenState | None

    def _memory_tokens(self, part: str) -> MemoryTokenState:
        """The token state to copy: this process's memory, unless Redis holds it.

        TODO(store copy, Redis key layout): implement the Redis-backed token-state transfer
        in redis_state.py once its key layout settles, and drop this refusal.
        """
        if self._redis is not None:
            raise NotSupported(
                f"copying {part} of hybrid with Redis is not supported yet"
            )
        return self.tokens

    async def export_codes(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AuthorizationCode]:
        """See :meth:`ports.store.CodeTransfer.export_codes`."""
        return memory.export_codes(self._memory_tokens("codes"), cursor, limit, now)

    async def import_codes(self, records: tuple[AuthorizationCode, ...], now: int) -> int:
        """See :meth:`ports.store.CodeTransfer.import_codes`."""
        return memory.import_codes(self._memory_tokens("codes"), records, now)

    async def export_consumed_codes(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ConsumedCodeRecord]:
        """See :meth:`ports.store.CodeTransfer.export_consumed_codes`."""
        state = self._memory_tokens("consumed codes")
        return memory.export_consumed_codes(state, cursor, limit, now)

    async def import_consumed_codes(
        self, records: tuple[ConsumedCodeRecord, ...], now: int
    ) -> int:
        """See :meth:`ports.store.CodeTransfer.import_consumed_codes`."""
        return memory.import_consumed_codes(self._memory_tokens("consumed codes"), records, now)

    async def export_access_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AccessToken]:
        """See :meth:`ports.store.TokenTransfer.export_access_tokens`."""
        state = self._memory_tokens("access tokens")
        return memory.export_access_tokens(state, cursor, limit, now)

    async def import_access_tokens(self, records: tuple[AccessToken, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_access_tokens`."""
        return memory.import_access_tokens(self._memory_tokens("access tokens"), records, now)

    async def export_refresh_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[RefreshToken]:
        """See :meth:`ports.store.TokenTransfer.export_refresh_tokens`."""
        state = self._memory_tokens("refresh tokens")
        return memory.export_refresh_tokens(state, cursor, limit, now)

    async def import_refresh_tokens(self, records: tuple[RefreshToken, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_refresh_tokens`."""
        return memory.import_refresh_tokens(self._memory_tokens("refresh tokens"), records, now)

    async def export_reuse_markers(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ReuseMarker]:
        """See :meth:`ports.store.TokenTransfer.export_reuse_markers`."""
        state = self._memory_tokens("reuse markers")
        return memory.export_reuse_markers(state, cursor, limit, now)

    async def import_reuse_markers(self, records: tuple[ReuseMarker, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_reuse_markers`."""
        return memory.import_reuse_markers(self._memory_tokens("reuse markers"), records, now)

    async def export_claims(self, cursor: str | None, limit: int, now: int) -> Batch[Claim]:
        """See :meth:`ports.store.EphemeralTransfer.export_claims`."""
        return memory.export_claims(self._memory_tokens("claims"), cursor, limit, now)

    async def import_claims(self, records: tuple[Claim, ...], now: int) -> int:
        """See :meth:`ports.store.EphemeralTransfer.import_claims`."""
        return memory.import_claims(self._memory_tokens("claims"), records, now)

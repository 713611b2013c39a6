"""``MemoryStore``: the whole ``Store`` port in process memory.

The store for unit tests and development, and the reference the contract suite is checked
against first. It is two separable halves, :class:`MemoryIdentities` and
:class:`MemoryTokenState`, so that ``hybrid`` can reuse the identity half next to its own
token state.
"""

from __future__ import annotations

from adapters.memory.delegation import IdentitiesInMemory
from adapters.memory.identities import MemoryIdentities
from adapters.memory.token_state import MemoryTokenState
from adapters.memory.transfer import MemoryTransfer
from domain.entities import (
    AccessToken,
    AuthorizationCode,
    ConsumedCode,
    PurgeCounts,
    RefreshTake,
    RefreshToken,
    StoreCounts,
)


class MemoryStore(IdentitiesInMemory, MemoryTransfer):
    """Implements :class:`ports.store.Store` with dicts; nothing survives the process.

    ``identities`` and ``tokens`` may be passed in to share them (a test that inspects one
    half, or an adapter composing them); by default each store gets fresh, empty halves.
    """

    __slots__ = ("identities", "tokens")

    def __init__(
        self,
        identities: MemoryIdentities | None = None,
        tokens: MemoryTokenState | None = None,
    ) -> None:
        self.identities = identities if identities is not None else MemoryIdentities()
        self.tokens = tokens if tokens is not None else MemoryTokenState()

    # CodeStore

    async def save_code(self, code: AuthorizationCode, now: int) -> None:
        """See :meth:`ports.store.CodeStore.save_code`."""
        await self.tokens.save_code(code, now)

    async def take_code(
        self, code_hash: str, now: int, *, remember_until: int
    ) -> AuthorizationCode | ConsumedCode | None:
        """See :meth:`ports.store.CodeStore.take_code`."""
        return await self.tokens.take_code(code_hash, now, remember_until=remember_until)

    # TokenStore

    async def save_tokens(
        self, access: AccessToken, refresh: RefreshToken | None, now: int
    ) -> None:
        """See :meth:`ports.store.TokenStore.save_tokens`."""
        await self.tokens.save_tokens(access, refresh, now)

    async def get_access_token(self, token_hash: str, now: int) -> AccessToken | None:
        """See :meth:`ports.store.TokenStore.get_access_token`."""
        return await self.tokens.get_access_token(token_hash, now)

    async def revoke_access_token(self, token_hash: str, now: int) -> bool:
        """See :meth:`ports.store.TokenStore.revoke_access_token`."""
        return await self.tokens.revoke_access_token(token_hash, now)

    async def get_refresh_token(self, token_hash: str, now: int) -> RefreshToken | None:
        """See :meth:`ports.store.TokenStore.get_refresh_token`."""
        return await self.tokens.get_refresh_token(token_hash, now)

    async def take_refresh_token(self, token_hash: str, now: int) -> RefreshTake:
        """See :meth:`ports.store.TokenStore.take_refresh_token`."""
        return await self.tokens.take_refresh_token(token_hash, now)

    async def revoke_grant(self, grant_id: str, now: int) -> int:
        """See :meth:`ports.store.TokenStore.revoke_grant`."""
        return await self.tokens.revoke_grant(grant_id, now)

    async def revoke_subject(self, sub: str, now: int) -> int:
        """See :meth:`ports.store.TokenStore.revoke_subject`."""
        return await self.tokens.revoke_subject(sub, now)

    # EphemeralStore

    async def claim_once(self, key: str, exp: int, now: int) -> bool:
        """See :meth:`ports.store.EphemeralStore.claim_once`."""
        return await self.tokens.claim_once(key, exp, now)

    async def hit(self, key: str, window_seconds: int, now: int, amount: int = 1) -> int:
        """See :meth:`ports.store.EphemeralStore.hit`."""
        return await self.tokens.hit(key, window_seconds, now, amount)

    # StoreAdmin

    async def health(self) -> dict[str, bool]:
        """Always ``{"store": True}``: process memory cannot be unreachable."""
        return {"store": True}

    async def counts(self, now: int) -> StoreCounts:
        """See :meth:`ports.store.StoreAdmin.counts`."""
        return StoreCounts(
            users=self.identities.user_count,
            groups=self.identities.group_count,
            access_tokens=self.tokens.count_access_tokens(now),
            refresh_tokens=self.tokens.count_refresh_tokens(now),
            codes=self.tokens.count_codes(now),
        )

    async def purge_expired(self, now: int, batch_size: int = 1000) -> PurgeCounts:
        """See :meth:`ports.store.StoreAdmin.purge_expired`."""
        return await self.tokens.purge_expired(now, batch_size)

    async def close(self) -> None:
        """Nothing to release."""

"""``HybridEphemeral``: the ``EphemeralStore`` port for ``hybrid``. With Redis, only Redis
claims and counts, so single use and rate limits hold across instances and fail closed
during an outage."""

from __future__ import annotations

from adapters.hybrid.connection import _SKIP, HybridConnection


class HybridEphemeral(HybridConnection):
    """:class:`ports.store.EphemeralStore` for :class:`~adapters.hybrid.HybridStore`."""

    __slots__ = ()

    async def claim_once(self, key: str, exp: int, now: int) -> bool:
        """See :meth:`ports.store.EphemeralStore.claim_once`.

        With Redis, only Redis decides; ``StoreUnavailable`` while it cannot (a TOTP code
        claimed on one instance alone could be replayed on another).
        """
        shared = await self._shared(now, lambda r: r.claim_once(key, exp, now))
        # Mirrored in memory like every write, so that purge_expired counts agree.
        local = await self.tokens.claim_once(key, exp, now)
        return local if shared is _SKIP else shared

    async def hit(self, key: str, window_seconds: int, now: int, amount: int = 1) -> int:
        """See :meth:`ports.store.EphemeralStore.hit`.

        With Redis, only Redis counts; ``StoreUnavailable`` while it cannot, so rate limits
        and sign-in throttling fail closed (503) instead of counting per instance.
        """
        shared = await self._shared(now, lambda r: r.hit(key, window_seconds, now, amount))
        local = await self.tokens.hit(key, window_seconds, now, amount)
        return local if shared is _SKIP else shared

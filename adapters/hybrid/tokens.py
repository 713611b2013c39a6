"""``HybridTokens``: the ``TokenStore`` port for ``hybrid``. With Redis, Redis is read (one
round trip, no cache) and decides rotations; every write is mirrored in this process's
memory, and revocations Redis missed are always queued for it."""

from __future__ import annotations

import msgspec

from adapters.hybrid.connection import _SKIP, HybridConnection
from domain.entities import AccessToken, RefreshTake, RefreshToken, Reused, Taken


class HybridTokens(HybridConnection):
    """:class:`ports.store.TokenStore` for :class:`~adapters.hybrid.HybridStore`."""

    __slots__ = ()

    async def save_tokens(
        self, access: AccessToken, refresh: RefreshToken | None, now: int
    ) -> None:
        """See :meth:`ports.store.TokenStore.save_tokens`.

        With Redis, a pair saved for a grant that was revoked meanwhile (a rotation that
        raced a reuse detection) is stored revoked, so the revocation cannot be outrun.
        """
        kept = await self._ask(now, lambda r: r.save_tokens(access, refresh, now))
        if kept is _SKIP:
            self._defer(lambda r, n: r.save_tokens(access, refresh, n), now)
        elif not kept:
            access = msgspec.structs.replace(access, active=False)
            refresh = None
        await self.tokens.save_tokens(access, refresh, now)

    async def get_access_token(self, token_hash: str, now: int) -> AccessToken | None:
        """See :meth:`ports.store.TokenStore.get_access_token`. One Redis GET."""
        shared = await self._ask(now, lambda r: r.get_access_token(token_hash, now))
        if shared is _SKIP:
            return await self.tokens.get_access_token(token_hash, now)
        if shared is not None and not shared.active:
            # Revoked elsewhere: make this instance's fallback copy agree.
            await self.tokens.revoke_access_token(token_hash, now)
        return shared

    async def revoke_access_token(self, token_hash: str, now: int) -> bool:
        """See :meth:`ports.store.TokenStore.revoke_access_token`."""
        shared = await self._ask(now, lambda r: r.revoke_access_token(token_hash, now))
        local = await self.tokens.revoke_access_token(token_hash, now)
        if shared is not _SKIP:
            return shared
        self._defer(lambda r, n: r.revoke_access_token(token_hash, n), now, revocation=True)
        return local

    async def get_refresh_token(self, token_hash: str, now: int) -> RefreshToken | None:
        """See :meth:`ports.store.TokenStore.get_refresh_token`."""
        shared = await self._ask(now, lambda r: r.get_refresh_token(token_hash, now))
        if shared is _SKIP:
            return await self.tokens.get_refresh_token(token_hash, now)
        return shared

    async def take_refresh_token(self, token_hash: str, now: int) -> RefreshTake:
        """See :meth:`ports.store.TokenStore.take_refresh_token`.

        With Redis, one Lua script does the whole step, and while Redis cannot be used the
        rotation is refused (``StoreUnavailable``): rotated on one instance alone, the same
        token could be rotated again on another.
        """
        shared = await self._shared(now, lambda r: r.take_refresh_token(token_hash, now))
        if shared is _SKIP:
            return await self.tokens.take_refresh_token(token_hash, now)
        if isinstance(shared, Taken):
            await self.tokens.take_refresh_token(token_hash, now)
        elif isinstance(shared, Reused):
            await self.tokens.revoke_grant(shared.grant_id, now)
        return shared

    async def revoke_grant(self, grant_id: str, now: int) -> int:
        """See :meth:`ports.store.TokenStore.revoke_grant`.

        With Redis, the grant is also flagged revoked for as long as its index lives (at
        least an hour), so tokens saved for it afterwards are stored revoked.
        """
        shared = await self._ask(now, lambda r: r.revoke_grant(grant_id, now))
        local = await self.tokens.revoke_grant(grant_id, now)
        if shared is not _SKIP:
            return shared
        self._defer(lambda r, n: r.revoke_grant(grant_id, n), now, revocation=True)
        return local

    async def revoke_subject(self, sub: str, now: int) -> int:
        """See :meth:`ports.store.TokenStore.revoke_subject`."""
        shared = await self._ask(now, lambda r: r.revoke_subject(sub, now))
        local = await self.tokens.revoke_subject(sub, now)
        if shared is not _SKIP:
            return shared
        self._defer(lambda r, n: r.revoke_subject(sub, n), now, revocation=True)
        return local

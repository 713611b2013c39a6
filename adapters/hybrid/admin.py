"""``HybridAdmin``: the ``StoreAdmin`` port for ``hybrid`` (health, counts, purge, close) and
``ProcessLocal`` (which parts live in this process only)."""

from __future__ import annotations

import msgspec

from adapters.hybrid.connection import _SKIP, HybridConnection
from adapters.hybrid.redis_errors import is_redis_failure
from adapters.hybrid.redis_state import SharedTokenState
from domain.entities import PurgeCounts, StoreCounts
from domain.errors import StoreUnavailable
from ports.store import (
    ACCOUNT_TOKEN_PARTS,
    CLIENT_PARTS,
    DEVICE_PARTS,
    IDENTITY_PARTS,
    SESSION_PARTS,
    TOKEN_STATE_PARTS,
    StorePart,
)


class HybridAdmin(HybridConnection):
    """:class:`ports.store.StoreAdmin` and :class:`ports.store.ProcessLocal` for
    :class:`~adapters.hybrid.HybridStore`."""

    __slots__ = ()

    async def health(self) -> dict[str, bool]:
        """``{"store": True}``, plus ``"redis"`` when Redis is configured. Never raises.

        Pings Redis even inside the back-off interval, so readiness notices a recovery
        without waiting for traffic; a recovery replays the queued writes.
        """
        if not self._shares:
            return {"store": True}
        try:
            redis = self._redis or await self._open()
            await redis.ping()
            if self._backlog:
                await self._replay(redis, None)
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            self._went_down(exc)
            return {"store": True, "redis": False}
        if not self._up:
            self._came_up()
        return {"store": True, "redis": True}

    def process_local_parts(self) -> frozenset[StorePart]:
        """See :class:`ports.store.ProcessLocal`: identities always; token state, clients,
        sessions, consents, device authorizations and account tokens without Redis."""
        if not self._shares:
            return (IDENTITY_PARTS | TOKEN_STATE_PARTS | CLIENT_PARTS | SESSION_PARTS
                    | DEVICE_PARTS | ACCOUNT_TOKEN_PARTS)
        return IDENTITY_PARTS

    async def counts(self, now: int) -> StoreCounts:
        """See :meth:`ports.store.StoreAdmin.counts`.

        Token counts come from Redis when it is up (a SCAN of the key space, meant for a
        metrics scrape), else from this instance's memory. Stored clients are counted in
        Redis (one ``ZCARD``), live sessions and consents too (a SCAN each), and device
        authorizations and account tokens (one ``ZCOUNT`` each); during an outage the
        counts last read there are reported (memory holds none of those to count when
        Redis is configured).
        """

        async def from_redis(r: SharedTokenState) -> tuple[int, int, int]:
            self._client_count = await self._client_part(r).count_clients()
            self._session_count = await self._session_part(r).count(now)
            self._consent_count = await self._consent_part(r).count()
            self._device_count = await self._device_part(r).count_live(now)
            self._account_token_count = await self._account_token_part(r).count_live(now)
            return (
                await r.count_live("t", now),
                await r.count_live("r", now),
                await r.count_live("c", now),
            )

        shared = await self._ask(now, from_redis)
        if shared is _SKIP:
            shared = (
                self.tokens.count_access_tokens(now),
                self.tokens.count_refresh_tokens(now),
                self.tokens.count_codes(now),
            )
        clients = self._client_count if self._shares else self.clients.client_count
        sessions = self._session_count if self._shares else self.sessions.count(now)
        consents = self._consent_count if self._shares else self.consents.count
        device = self._device_count if self._shares else self.device.count(now)
        account_tokens = (self._account_token_count if self._shares
                          else self.account_tokens.count(now))
        return StoreCounts(
            users=self.identities.user_count,
            groups=self.identities.group_count,
            access_tokens=shared[0],
            refresh_tokens=shared[1],
            codes=shared[2],
            clients=clients,
            sessions=sessions,
            consents=consents,
            device_authorizations=device,
            account_tokens=account_tokens,
        )

    async def purge_expired(self, now: int, batch_size: int = 1000) -> PurgeCounts:
        """See :meth:`ports.store.StoreAdmin.purge_expired`.

        Purges this instance's memory and returns its counts. Redis needs no purge of token
        state: every key carries a TTL equal to its record's remaining lifetime. Initial
        access tokens are purged where they live: in Redis (the ones whose uses are spent
        or whose expiry, by ``now``, has passed before their key's TTL; skipped during an
        outage, as purging is about space, not correctness), else in memory. So are
        sessions past their expiry and expired consent grants: in Redis, the ones ``now``
        has passed before their keys' TTLs did; and device authorizations and account
        tokens: their keys expire with them, but the indexes listing them do not.
        """
        counts = await self.tokens.purge_expired(now, batch_size)
        if not self._shares:
            dead = self.clients.purge_initial_access_tokens(now)
            sessions = self.sessions.purge(now)
            grants = self.consents.purge(now)
            dead_devices = self.device.purge(now)
            dead_links = self.account_tokens.purge(now)
        else:

            async def in_redis(r: SharedTokenState) -> tuple[int, int, int, int, int]:
                return (
                    await self._client_part(r).purge_initial_access_tokens(now, batch_size),
                    await self._session_part(r).purge(now, batch_size),
                    await self._consent_part(r).purge(now, batch_size),
                    await self._device_part(r).purge(now, batch_size),
                    await self._account_token_part(r).purge(now, batch_size),
                )

            purged = await self._ask(now, in_redis)
            dead, sessions, grants, dead_devices, dead_links = (
                (0, 0, 0, 0, 0) if purged is _SKIP else purged)
        return msgspec.structs.replace(
            counts, initial_access_tokens=dead, sessions=sessions, consent_grants=grants,
            device_authorizations=dead_devices, account_tokens=dead_links)

    async def close(self) -> None:
        """Close the Redis connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._redis is not None:
                await self._redis.close()
            if self._connector is not None:
                await self._connector.aclose()
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            raise StoreUnavailable("closing the token store failed") from exc

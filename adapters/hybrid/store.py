"""``HybridStore``: identities in memory; token state in memory and, when configured, Redis.

With Redis, Redis is the source of truth for token state: every read of it goes to Redis
(one round trip, no cache), so a token revoked on one instance reads as inactive on every
other at once. Every write also lands in this process's memory, which serves reads while
Redis is unreachable. Decisions that are only safe on the shared view -- taking a code,
rotating a refresh token, a single-use claim, a rate-limit count -- are refused during an
outage (``StoreUnavailable``, a 503), never made by one instance alone. Other writes made
during an outage are queued and replayed into Redis, in order, before Redis is used again,
so tokens issued meanwhile stay valid and revocations reach every instance; the queue is
bounded for ordinary writes (past the bound they are refused), never for revocations.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, Literal, Protocol, TypeVar

import msgspec
from redis.exceptions import RedisClusterException, RedisError

from adapters.hybrid.redis_state import SharedTokenState
from adapters.hybrid.redis_transfer import StateTransfer
from adapters.hybrid.transfer import HybridTransfer, state_transfer
from adapters.memory.delegation import IdentitiesInMemory
from adapters.memory.identities import MemoryIdentities
from adapters.memory.token_state import MemoryTokenState
from domain.entities import (
    AccessToken,
    AuthorizationCode,
    ConsumedCode,
    PurgeCounts,
    RefreshTake,
    RefreshToken,
    Reused,
    StoreCounts,
    Taken,
)
from domain.errors import StoreUnavailable
from ports.store import IDENTITY_PARTS, TOKEN_STATE_PARTS, StorePart

_log = logging.getLogger(__name__)

_T = TypeVar("_T")
# A write to replay into Redis: called with the Redis state and the replay time.
_Deferred = Callable[[SharedTokenState, int], Awaitable[object]]

# Socket errors normally surface as redis ConnectionError, but not on every path; a cluster
# client that reaches no node raises RedisClusterException, which is no RedisError.
_REDIS_ERRORS: Final = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError)
DEFAULT_BACKLOG: Final = 100_000


class _Skip(enum.Enum):
    """Redis was not asked (not configured, or inside the back-off after a failure)."""

    SKIP = 0


_SKIP: Final = _Skip.SKIP


class Connector(Protocol):
    """Opens the shared token state once Redis answers (e.g. after finding out whether it
    is a cluster); ``open`` raises redis-py errors while it does not."""

    async def open(self) -> SharedTokenState: ...
    async def aclose(self) -> None: ...


class HybridStore(IdentitiesInMemory, HybridTransfer):
    """Implements :class:`ports.store.Store`; see the module docstring.

    ``redis`` and ``connector`` are None for a memory-only store: one instance, which
    decides everything locally. With a ``connector``, the shared state is opened on the
    first call that reaches Redis; until then Redis counts as unreachable. After a failed
    Redis call, Redis is not tried again for ``retry_after`` seconds, so an outage costs
    one timeout per interval, not one per request. While
    ``max_backlog`` or more writes are queued, new writes other than revocations raise
    ``StoreUnavailable`` (said so once in the log); revocations are always queued.
    """

    __slots__ = (
        "_backlog",
        "_backlog_overflowed",
        "_closed",
        "_connector",
        "_deferred_now",
        "_max_backlog",
        "_open_lock",
        "_redis",
        "_replay_lock",
        "_retry_after",
        "_retry_at",
        "_state_transfer",
        "_up",
        "identities",
        "tokens",
    )

    def __init__(
        self,
        redis: SharedTokenState | None = None,
        *,
        connector: Connector | None = None,
        identities: MemoryIdentities | None = None,
        tokens: MemoryTokenState | None = None,
        retry_after: float = 1.0,
        max_backlog: int = DEFAULT_BACKLOG,
    ) -> None:
        self.identities = identities if identities is not None else MemoryIdentities()
        self.tokens = tokens if tokens is not None else MemoryTokenState()
        self._redis = redis
        self._connector = connector
        self._open_lock = asyncio.Lock()
        self._retry_after = retry_after
        self._retry_at = 0.0
        # Optimistic until the first failure: the first call then finds out.
        self._up = True
        # Unbounded as a deque: the bound is enforced by _defer, for all but revocations.
        self._backlog: deque[_Deferred] = deque()
        self._max_backlog = max_backlog
        self._backlog_overflowed = False
        self._deferred_now = 0
        self._replay_lock = asyncio.Lock()
        self._closed = False
        self._state_transfer: StateTransfer | None = None

    # Redis availability

    @property
    def _shares(self) -> bool:
        """Whether token state is shared through Redis (configured, reachable or not)."""
        return self._redis is not None or self._connector is not None

    async def _open(self) -> SharedTokenState:
        """The shared state, opened through the connector on first use."""
        async with self._open_lock:
            if self._redis is None:
                assert self._connector is not None
                self._redis = await self._connector.open()
            return self._redis

    async def _ask(
        self, now: int | None, op: Callable[[SharedTokenState], Awaitable[_T]]
    ) -> _T | Literal[_Skip.SKIP]:
        """Run ``op`` on Redis, or return ``_SKIP`` when Redis is not to be used now.

        Queued writes are replayed first, so that ``op`` sees them.
        """
        redis = self._redis
        if redis is None and self._connector is None:
            return _SKIP
        if not self._up and time.monotonic() < self._retry_at:
            return _SKIP
        try:
            if redis is None:
                redis = await self._open()
            if self._backlog:
                await self._replay(redis, now)
            result = await op(redis)
        except _REDIS_ERRORS as exc:
            self._went_down(exc)
            return _SKIP
        if not self._up:
            self._came_up()
        return result

    async def _shared(
        self, now: int, op: Callable[[SharedTokenState], Awaitable[_T]]
    ) -> _T | Literal[_Skip.SKIP]:
        """Like :meth:`_ask`, for a decision only the shared view may make: ``_SKIP``
        only without Redis (then this instance decides); raises ``StoreUnavailable``
        while a configured Redis cannot be used."""
        if not self._shares:
            return _SKIP
        result = await self._ask(now, op)
        if result is _SKIP:
            raise StoreUnavailable("the shared token state is unreachable")
        return result

    def _defer(self, op: _Deferred, now: int, *, revocation: bool = False) -> None:
        """Queue a write that Redis missed, to replay it when Redis is back.

        Called before the write touches memory, so that a refused write has no effect.
        A revocation is always queued: dropping one would revive a token everywhere else.
        """
        if not self._shares:
            return
        if not revocation and len(self._backlog) >= self._max_backlog:
            if not self._backlog_overflowed:
                self._backlog_overflowed = True
                _log.warning(
                    "token-state write queue full (%d); new writes are refused until "
                    "Redis is back (revocations are still queued)",
                    self._max_backlog,
                )
            raise StoreUnavailable("the token-state write queue is full")
        self._backlog.append(op)
        self._deferred_now = max(self._deferred_now, now)

    async def _replay(self, redis: SharedTokenState, now: int | None) -> None:
        async with self._replay_lock:
            replay_now = max(now or 0, self._deferred_now)
            while self._backlog:
                await self._backlog[0](redis, replay_now)
                self._backlog.popleft()

    def _went_down(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self._retry_after
        if self._up:
            self._up = False
            _log.warning(
                "Redis unreachable (%s); token state is served from this instance's "
                "memory until it is back",
                type(exc).__name__,
            )

    def _came_up(self) -> None:
        self._up = True
        self._backlog_overflowed = False
        _log.info("Redis reachable again; token state is shared through it again")

    # CodeStore

    async def save_code(self, code: AuthorizationCode, now: int) -> None:
        """See :meth:`ports.store.CodeStore.save_code`."""
        if await self._ask(now, lambda r: r.save_code(code, now)) is _SKIP:
            self._defer(lambda r, n: r.save_code(code, n), now)
        await self.tokens.save_code(code, now)

    async def take_code(
        self, code_hash: str, now: int, *, remember_until: int
    ) -> AuthorizationCode | ConsumedCode | None:
        """See :meth:`ports.store.CodeStore.take_code`.

        With Redis, Redis decides (``StoreUnavailable`` while it cannot); this instance's
        copy is taken too, so that its memory agrees.
        """
        shared = await self._shared(now, lambda r: r.take_code(code_hash, now, remember_until))
        local = await self.tokens.take_code(code_hash, now, remember_until=remember_until)
        return local if shared is _SKIP else shared

    # TokenStore

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

    # EphemeralStore

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

    # Transfer

    async def _on_shared_state(
        self, now: int, op: Callable[[StateTransfer], Awaitable[_T]]
    ) -> _T | None:
        """See :meth:`HybridTransfer._on_shared_state`. Only Redis is copied from or into
        (never this instance's memory alone), so a transfer is refused during an outage. The
        transfer is made once: an export keeps its snapshot of key names between batches."""

        def on(redis: SharedTokenState) -> Awaitable[_T]:
            if self._state_transfer is None:
                self._state_transfer = state_transfer(redis)
            return op(self._state_transfer)

        result = await self._shared(now, on)
        return None if result is _SKIP else result

    # StoreAdmin

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
        except _REDIS_ERRORS as exc:
            self._went_down(exc)
            return {"store": True, "redis": False}
        if not self._up:
            self._came_up()
        return {"store": True, "redis": True}

    def process_local_parts(self) -> frozenset[StorePart]:
        """See :class:`ports.store.ProcessLocal`: identities always, token state without Redis."""
        if self._redis is None:
            return IDENTITY_PARTS | TOKEN_STATE_PARTS
        return IDENTITY_PARTS

    async def counts(self, now: int) -> StoreCounts:
        """See :meth:`ports.store.StoreAdmin.counts`.

        Token counts come from Redis when it is up (a SCAN of the key space, meant for a
        metrics scrape), else from this instance's memory.
        """

        async def from_redis(r: SharedTokenState) -> tuple[int, int, int]:
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
        return StoreCounts(
            users=self.identities.user_count,
            groups=self.identities.group_count,
            access_tokens=shared[0],
            refresh_tokens=shared[1],
            codes=shared[2],
        )

    async def purge_expired(self, now: int, batch_size: int = 1000) -> PurgeCounts:
        """See :meth:`ports.store.StoreAdmin.purge_expired`.

        Purges this instance's memory and returns its counts. Redis needs no purge: every
        key carries a TTL equal to its record's remaining lifetime.
        """
        return await self.tokens.purge_expired(now, batch_size)

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
        except _REDIS_ERRORS as exc:
            raise StoreUnavailable("closing the token store failed") from exc

"""``HybridConnection``: the shared-state plumbing every part of
:class:`~adapters.hybrid.store.HybridStore` runs on.

It holds this process's memory (the identity half and the token-state half of the memory
adapter), the shared token state in Redis (or the connector that opens it), and decides
when Redis is asked: :meth:`HybridConnection._ask` for a write or a read that memory can
serve during an outage, :meth:`HybridConnection._shared` for a decision only the shared view
may make. Every redis-py error is caught here, once: it marks Redis down for a back-off
interval and never crosses the port. Writes that Redis missed are queued
(:meth:`HybridConnection._defer`) and replayed, in order, before Redis is used again.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, Literal, Protocol, TypeVar

from adapters.hybrid.redis_account_tokens import RedisAccountTokens, account_tokens_of
from adapters.hybrid.redis_clients import RedisClients, clients_of
from adapters.hybrid.redis_consents import RedisConsents, consents_of
from adapters.hybrid.redis_device import RedisDevice, device_of
from adapters.hybrid.redis_errors import is_redis_failure, is_torn_connection
from adapters.hybrid.redis_sessions import RedisSessions, sessions_of
from adapters.hybrid.redis_state import SharedTokenState
from adapters.hybrid.redis_transfer import StateTransfer
from adapters.memory.account_tokens import MemoryAccountTokens
from adapters.memory.clients import MemoryClients
from adapters.memory.consents import MemoryConsents
from adapters.memory.device import MemoryDevice
from adapters.memory.identities import MemoryIdentities
from adapters.memory.sessions import MemorySessions
from adapters.memory.token_state import MemoryTokenState
from domain.errors import StoreUnavailable

# The name the outage warnings were logged under while the adapter was one module: log
# configurations (and the tests) filter on it, so the move keeps it.
_log = logging.getLogger("adapters.hybrid.store")

_T = TypeVar("_T")
# A write to replay into Redis: called with the Redis state and the replay time.
_Deferred = Callable[[SharedTokenState, int], Awaitable[object]]

DEFAULT_BACKLOG: Final = 100_000


async def _asked_again_if_torn(
    redis: SharedTokenState, op: Callable[[SharedTokenState], Awaitable[_T]]
) -> _T:
    """``op`` on ``redis``, asked once more when redis-py's connection was torn down under
    it (``is_torn_connection``: no outage, the client reconnects on next use). As with the
    cluster client's own retry after a connection error, Redis still decides single use:
    a code take asked again gets its first answer (the same taker), a refresh take asked
    twice answers "already used" at worst (the request fails closed)."""
    try:
        return await op(redis)
    except Exception as exc:
        if not is_torn_connection(exc):
            raise
    return await op(redis)


class _Skip(enum.Enum):
    """Redis was not asked (not configured, or inside the back-off after a failure)."""

    SKIP = 0


_SKIP: Final = _Skip.SKIP


class Connector(Protocol):
    """Opens the shared token state once Redis answers (e.g. after finding out whether it
    is a cluster); ``open`` raises redis-py errors while it does not."""

    async def open(self) -> SharedTokenState: ...
    async def aclose(self) -> None: ...


class HybridConnection:
    """This process's memory and the shared token state, and how Redis is used: the base of
    every part of :class:`~adapters.hybrid.store.HybridStore`.

    ``redis`` and ``connector`` are None for a memory-only store: one instance, which
    decides everything locally. With a ``connector``, the shared state is opened on the
    first call that reaches Redis; until then Redis counts as unreachable. After a failed
    Redis call, Redis is not tried again for ``retry_after`` seconds, so an outage costs
    one timeout per interval, not one per request. While
    ``max_backlog`` or more writes are queued, new writes other than revocations raise
    ``StoreUnavailable`` (said so once in the log); revocations are always queued.
    """


    __slots__ = (
        "_account_token_count",
        "_account_token_state",
        "_backlog",
        "_backlog_overflowed",
        "_client_count",
        "_client_state",
        "_closed",
        "_connector",
        "_consent_count",
        "_consent_state",
        "_deferred_now",
        "_device_count",
        "_device_state",
        "_max_backlog",
        "_open_lock",
        "_redis",
        "_replay_lock",
        "_retry_after",
        "_retry_at",
        "_session_count",
        "_session_state",
        "_state_transfer",
        "_up",
        "account_tokens",
        "clients",
        "consents",
        "device",
        "identities",
        "sessions",
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
        # The client part without Redis (with Redis, it lives in Redis only).
        self.clients = MemoryClients()
        # The session and consent parts without Redis (with Redis, they live in Redis
        # only: adapters/hybrid/sessions.py, consents.py).
        self.sessions = MemorySessions()
        self.consents = MemoryConsents()
        # The device part without Redis (adapters/hybrid/device.py).
        self.device = MemoryDevice()
        # The account-token part without Redis (adapters/hybrid/account_tokens.py).
        self.account_tokens = MemoryAccountTokens()
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
        # The client part on the same Redis, made on first use (adapters/hybrid/clients.py).
        self._client_state: RedisClients | None = None
        # The number of stored clients last counted in Redis (StoreAdmin.counts).
        self._client_count = 0
        # The session and consent parts on the same Redis, made on first use, and their
        # sizes last counted there.
        self._session_state: RedisSessions | None = None
        self._consent_state: RedisConsents | None = None
        self._session_count = 0
        self._consent_count = 0
        # The device part on the same Redis, made on first use (adapters/hybrid/device.py),
        # and the number of live device authorizations last counted there.
        self._device_state: RedisDevice | None = None
        self._device_count = 0
        # The account-token part on the same Redis, made on first use
        # (adapters/hybrid/account_tokens.py), and the number of live tokens last counted.
        self._account_token_state: RedisAccountTokens | None = None
        self._account_token_count = 0

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
            result = await _asked_again_if_torn(redis, op)
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
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

    def _client_part(self, redis: SharedTokenState) -> RedisClients:
        """The client part on ``redis``, made once (``redis_clients.py``)."""
        if self._client_state is None:
            self._client_state = clients_of(redis)
        return self._client_state

    def _session_part(self, redis: SharedTokenState) -> RedisSessions:
        """The session part on ``redis``, made once (``redis_sessions.py``)."""
        if self._session_state is None:
            self._session_state = sessions_of(redis)
        return self._session_state

    def _consent_part(self, redis: SharedTokenState) -> RedisConsents:
        """The consent part on ``redis``, made once (``redis_consents.py``)."""
        if self._consent_state is None:
            self._consent_state = consents_of(redis)
        return self._consent_state

    def _device_part(self, redis: SharedTokenState) -> RedisDevice:
        """The device part on ``redis``, made once (``redis_device.py``)."""
        if self._device_state is None:
            self._device_state = device_of(redis)
        return self._device_state

    def _account_token_part(self, redis: SharedTokenState) -> RedisAccountTokens:
        """The account-token part on ``redis``, made once (``redis_account_tokens.py``)."""
        if self._account_token_state is None:
            self._account_token_state = account_tokens_of(redis)
        return self._account_token_state

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

"""The ``hybrid`` adapter: identities in memory, token state in memory and Redis.

See ``docs/hybrid-backend.md`` for the key layout, TTLs and failure behaviour.
:func:`open_store` is the ``hybrid`` entry point of the ``auth_service.stores`` group.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.hybrid.redis_state import RedisTokenState
from adapters.hybrid.store import HybridStore
from domain.errors import StoreMisconfigured
from ports.store_settings import StoreSettings

__all__ = ["HybridStore", "RedisTokenState", "open_hybrid_store", "open_store", "redis_client"]

# Short timeouts: while Redis is away, a request waits at most this long once per back-off
# interval before it is served from memory.
CONNECT_TIMEOUT_SECONDS = 0.5
COMMAND_TIMEOUT_SECONDS = 1.0


async def open_hybrid_store(redis_url: str | None, *, key_prefix: str = "as:") -> HybridStore:
    """A :class:`HybridStore`, sharing token state through ``redis_url`` when given.

    An unreachable Redis is not an error: the store starts degraded (``health()`` says
    ``"redis": False``, one warning is logged) and uses Redis as soon as it answers.
    A malformed URL raises ``ValueError``.
    """
    if redis_url is None:
        return HybridStore()
    store = HybridStore(RedisTokenState(redis_client(redis_url), key_prefix))
    await store.health()
    return store


async def open_store(settings: StoreSettings) -> HybridStore:
    """The ``hybrid`` backend (:class:`ports.store_settings.OpenStore`).

    Uses ``settings.redis_url`` (``REDIS_URL``) only; ``url`` and the pool settings are for
    other backends.
    """
    try:
        return await open_hybrid_store(settings.redis_url)
    except ValueError as exc:
        raise StoreMisconfigured(f"is not a usable Redis URL: {exc}", "REDIS_URL") from exc


def redis_client(redis_url: str) -> Redis:
    """A client for the store: short timeouts, no retries of its own. Connects lazily."""
    return Redis.from_url(
        redis_url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=COMMAND_TIMEOUT_SECONDS,
        # No retries inside redis-py: a failure is handled once, by the store's back-off.
        retry=Retry(NoBackoff(), 0),
        protocol=2,
    )

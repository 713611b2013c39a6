"""The ``hybrid`` adapter: identities in memory, token state in memory and Redis.

See ``docs/hybrid-backend.md`` for the key layout, TTLs and failure behaviour.
:func:`open_store` is the ``hybrid`` entry point of the ``auth_service.stores`` group.

One module per part of the port that ``hybrid`` implements itself, as in ``sql``: ``codes``,
``tokens``, ``ephemeral``, ``clients``, ``sessions``, ``consents``, ``device``,
``account_tokens``, ``transfer`` and ``admin`` (health, counts, purge, close), each a
mixin of ``HybridStore`` (``store``), all over ``connection`` (this process's memory, the
shared state in Redis, the outage handling and the write-back queue). There is no
``identities`` or ``credentials`` module: users, groups and credentials live only in
process memory, so those parts are the memory adapter's (``MemoryIdentities``, forwarded by
``adapters.memory.delegation.IdentitiesInMemory``) with nothing to add. The Redis side:
``redis_state`` and ``cluster_state`` (one method per port call, on one Redis or a
cluster), ``redis_transfer`` and ``cluster_transfer`` (copying), ``scripts`` (Lua) and
``codec`` (the compact encodings); ``redis_clients``, ``redis_sessions``,
``redis_consents``, ``redis_device`` and ``redis_account_tokens`` (the parts that live in
Redis only, on one Redis or a cluster alike, with their scripts in ``scripts`` and
``session_scripts``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.hybrid.cluster_state import ClusterTokenState
from adapters.hybrid.redis_state import RedisTokenState, SharedTokenState
from adapters.hybrid.store import HybridStore
from domain.errors import StoreMisconfigured
from ports.store_settings import StoreSettings

__all__ = [
    "ClusterTokenState",
    "HybridStore",
    "RedisTokenState",
    "cluster_client",
    "open_hybrid_store",
    "open_store",
    "redis_client",
]

# Short timeouts: while Redis is away, a request waits at most this long once per back-off
# interval before it is served from memory.
CONNECT_TIMEOUT_SECONDS = 0.5
COMMAND_TIMEOUT_SECONDS = 1.0
# Connections of one instance to a single Redis (see redis_client).
MAX_CONNECTIONS = 16


async def open_hybrid_store(
    redis_url: str | None, *, key_prefix: str = "as:", cluster: bool | None = None
) -> HybridStore:
    """A :class:`HybridStore`, sharing token state through ``redis_url`` when given.

    ``cluster``: True for a Redis Cluster, False for a single Redis (or a primary with
    replicas), None to ask the server (``INFO cluster``) on first contact.

    An unreachable Redis is not an error: the store starts degraded (``health()`` says
    ``"redis": False``, one warning is logged) and uses Redis as soon as it answers.
    A malformed URL (or a cluster behind a ``unix://`` URL) raises ``ValueError``.
    """
    if redis_url is None:
        return HybridStore()
    if cluster is None and urlsplit(redis_url).scheme == "unix":
        cluster = False  # cluster nodes talk TCP: nothing to find out
    if cluster is None:
        store = HybridStore(connector=_Detect(redis_url, key_prefix))
    elif cluster:
        store = HybridStore(ClusterTokenState(cluster_client(redis_url), key_prefix))
    else:
        store = HybridStore(RedisTokenState(redis_client(redis_url), key_prefix))
    await store.health()
    return store


async def open_store(settings: StoreSettings) -> HybridStore:
    """The ``hybrid`` backend (:class:`ports.store_settings.OpenStore`).

    Uses ``settings.redis_url`` (``REDIS_URL``) and ``settings.redis_cluster``
    (``REDIS_CLUSTER``) only; ``url`` and the pool settings are for other backends.
    """
    try:
        return await open_hybrid_store(settings.redis_url, cluster=settings.redis_cluster)
    except ValueError as exc:
        raise StoreMisconfigured(f"is not a usable Redis URL: {exc}", "REDIS_URL") from exc


def redis_client(redis_url: str) -> Redis:
    """A client for the store: short timeouts, no retries of its own. Connects lazily.

    At most ``MAX_CONNECTIONS`` connections; a command that finds them all busy waits for
    one (up to the command timeout). Not unbounded: a burst of concurrent requests on a
    cold or busy instance would otherwise open as many connections at once, and under CPU
    pressure part of them miss the connect timeout -- an error that takes the whole store
    down for a back-off interval. Not redis-py's default either (100, then an error for
    the 101st concurrent command, which has the same effect).
    """
    pool = BlockingConnectionPool.from_url(
        redis_url,
        max_connections=MAX_CONNECTIONS,
        timeout=COMMAND_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=COMMAND_TIMEOUT_SECONDS,
        # No retries inside redis-py: a failure is handled once, by the store's back-off.
        retry=Retry(NoBackoff(), 0),
        protocol=2,
    )
    return Redis.from_pool(pool)


def cluster_client(redis_url: str) -> RedisCluster:
    """A cluster client for the store, from the URL of any node; connects lazily.

    MOVED and ASK redirections (a failover, a resharding) are followed. One retry, after
    reloading the cluster's layout, on a connection error or timeout: a node that was
    restarted or replaced leaves dead connections and a stale slot map behind, and
    without it the first command to reach one would take the whole store down for a
    back-off interval. A retry cannot hand anything out twice: Redis decides single use,
    so a refresh take whose first answer was lost answers "already used" (fail closed),
    and a code take asked again gets the answer of its first ask (scripts.TAKE_CODE).
    """
    if urlsplit(redis_url).scheme == "unix":
        raise ValueError("a Redis Cluster is reached over TCP: use redis:// or rediss://")
    return RedisCluster.from_url(
        redis_url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=COMMAND_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 1),
        # A MOVED reply patches the slot map (a failover moves a master's slots one
        # reply at a time). redis-py's default, a full reset every 5th MOVED, closes the
        # connections of commands still in flight: under load, a failover would fail them.
        reinitialize_steps=0,
        # Per node, unbounded: the cluster client's default
        # (100) answers a busy instance's 101st concurrent command with an error.
        max_connections=2**31,
        protocol=2,
    )


class _Detect:
    """Opens the shared state of whatever answers at the URL: a cluster or one Redis."""

    def __init__(self, redis_url: str, key_prefix: str) -> None:
        self._url = redis_url
        self._prefix = key_prefix
        self._probe: Redis | None = redis_client(redis_url)  # parses the URL now

    async def open(self) -> SharedTokenState:
        probe = self._probe
        assert probe is not None, "opened twice"
        info = await probe.info("cluster")
        self._probe = None
        if info.get("cluster_enabled"):
            await probe.aclose()
            return ClusterTokenState(cluster_client(self._url), self._prefix)
        return RedisTokenState(probe, self._prefix)

    async def aclose(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            await probe.aclose()

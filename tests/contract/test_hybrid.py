"""The Store contract suite against ``hybrid``: without Redis, with Redis and with a Redis
Cluster (where the tests "across instances" race two stores on the same Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from adapters.hybrid import open_hybrid_store
from adapters.testing import StoreContract
from ports.store import Store
from tests.services.redis_server import session_redis_url


class TestHybridStoreWithoutRedis(StoreContract):
    @pytest_asyncio.fixture
    async def store(self) -> AsyncIterator[Store]:
        hybrid = await open_hybrid_store(None)
        yield hybrid
        await hybrid.close()


@pytest.mark.redis
class TestHybridStoreWithRedis(StoreContract):
    @pytest.fixture
    def prefix(self) -> str:
        # A unique key prefix per test: tests are isolated without flushing a shared Redis.
        return f"test:{uuid.uuid4().hex[:12]}:"

    @pytest_asyncio.fixture
    async def store(self, prefix: str) -> AsyncIterator[Store]:
        hybrid = await open_hybrid_store(session_redis_url(), key_prefix=prefix)
        assert (await hybrid.health())["redis"], "the test Redis does not answer"
        yield hybrid
        await hybrid.close()

    @pytest_asyncio.fixture
    async def other_instance(self, prefix: str, store: Store) -> AsyncIterator[Store]:
        """A second instance on the same Redis and prefix (its own connections, memory)."""
        hybrid = await open_hybrid_store(session_redis_url(), key_prefix=prefix)
        yield hybrid
        await hybrid.close()

    async def test_health_reports_redis(self, store: Store) -> None:
        assert await store.health() == {"store": True, "redis": True}


@pytest.mark.redis_cluster
class TestHybridStoreWithRedisCluster(StoreContract):
    @pytest.fixture
    def prefix(self) -> str:
        return f"test:{uuid.uuid4().hex[:12]}:"

    @pytest_asyncio.fixture
    async def store(self, redis_cluster_url: str, prefix: str) -> AsyncIterator[Store]:
        # Found to be a cluster on connect, as in production without REDIS_CLUSTER.
        hybrid = await open_hybrid_store(redis_cluster_url, key_prefix=prefix)
        assert (await hybrid.health())["redis"], "the test Redis Cluster does not answer"
        yield hybrid
        await hybrid.close()

    @pytest_asyncio.fixture
    async def other_instance(
        self, redis_cluster_url: str, prefix: str, store: Store
    ) -> AsyncIterator[Store]:
        hybrid = await open_hybrid_store(redis_cluster_url, key_prefix=prefix)
        yield hybrid
        await hybrid.close()

    async def test_health_reports_redis(self, store: Store) -> None:
        assert await store.health() == {"store": True, "redis": True}

"""The Store contract suite against ``hybrid``: without Redis, and with Redis."""

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
    @pytest_asyncio.fixture
    async def store(self) -> AsyncIterator[Store]:
        # A unique key prefix per test: tests are isolated without flushing a shared Redis.
        hybrid = await open_hybrid_store(
            session_redis_url(), key_prefix=f"test:{uuid.uuid4().hex[:12]}:"
        )
        assert (await hybrid.health())["redis"], "the test Redis does not answer"
        yield hybrid
        await hybrid.close()

    async def test_health_reports_redis(self, store: Store) -> None:
        assert await store.health() == {"store": True, "redis": True}


@pytest.mark.redis_cluster
class TestHybridStoreWithRedisCluster(StoreContract):
    @pytest_asyncio.fixture
    async def store(self, redis_cluster_url: str) -> AsyncIterator[Store]:
        # Found to be a cluster on connect, as in production without REDIS_CLUSTER.
        hybrid = await open_hybrid_store(
            redis_cluster_url, key_prefix=f"test:{uuid.uuid4().hex[:12]}:"
        )
        assert (await hybrid.health())["redis"], "the test Redis Cluster does not answer"
        yield hybrid
        await hybrid.close()

    async def test_health_reports_redis(self, store: Store) -> None:
        assert await store.health() == {"store": True, "redis": True}

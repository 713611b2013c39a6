"""The Store contract suite against the sql adapter, on a real PostgreSQL.

Each test starts from empty tables (the session's migrated database, truncated), so tests
are independent.
No test of the suite is skipped for this adapter; the concurrency tests run for real
(50 callers over a pool of connections, each single-use operation decided by PostgreSQL),
and those "across instances" race two stores, each with its own pool, on one database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from adapters.sql import open_sql_store
from adapters.testing import StoreContract
from ports.store import Store
from tests.services.postgres_server import empty_migrated_database

pytestmark = pytest.mark.postgres


class TestSqlStore(StoreContract):
    @pytest_asyncio.fixture
    async def url(self) -> str:
        return await empty_migrated_database()

    @pytest_asyncio.fixture
    async def store(self, url: str) -> AsyncIterator[Store]:
        sql = await open_sql_store(url, migrate=False, pool_size=10, connect_timeout=5)
        yield sql
        await sql.close()

    @pytest_asyncio.fixture
    async def other_instance(self, url: str, store: Store) -> AsyncIterator[Store]:
        """A second store (its own pool) on the same database, as a second instance."""
        sql = await open_sql_store(url, migrate=False, pool_size=10, connect_timeout=5)
        yield sql
        await sql.close()

"""The sql store's driver-level read path returns pooled connections cleanly."""

from __future__ import annotations

import asyncio
import logging

import pytest

from adapters.sql import open_sql_store
from tests.services.postgres_server import create_migrated_database, drop_database, postgres_url

pytestmark = pytest.mark.postgres


async def test_concurrent_reads_beyond_the_pool_close_overflow_connections_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # pool_size 1 means one overflow connection, closed whenever it comes back to a full
    # pool; that close used to run outside SQLAlchemy's greenlet and fail with a traceback.
    url = await create_migrated_database(postgres_url())
    store = await open_sql_store(url, pool_size=1)
    try:
        with caplog.at_level(logging.ERROR):
            found = await asyncio.gather(
                *(store.get_access_token("0" * 64, 0) for _ in range(20))
            )
        assert found == [None] * 20
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    finally:
        await store.close()
        await drop_database(url)

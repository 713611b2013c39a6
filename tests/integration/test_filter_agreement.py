"""The sql adapter's SCIM filter push-down agrees with the memory evaluator.

The check itself ships in ``adapters.testing`` (:class:`FilterAgreement`), for any adapter
that evaluates filters itself; here it runs against PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from adapters.sql import open_sql_store
from adapters.testing import FilterAgreement
from ports.store import Store
from tests.services.postgres_server import empty_migrated_database

pytestmark = pytest.mark.postgres


class TestSqlFilterAgreement(FilterAgreement):
    @pytest_asyncio.fixture
    async def store(self) -> AsyncIterator[Store]:
        sql = await open_sql_store(await empty_migrated_database(), migrate=False)
        yield sql
        await sql.close()

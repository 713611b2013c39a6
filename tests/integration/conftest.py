"""Fixtures for integration tests against real services."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.services.postgres_server import (
    create_empty_database,
    create_migrated_database,
    drop_database,
    postgres_url,
)


@pytest.fixture
async def empty_database_url() -> AsyncIterator[str]:
    """A new PostgreSQL database with no tables at all, dropped after the test."""
    url = await create_empty_database(postgres_url())
    yield url
    await drop_database(url)


@pytest.fixture
async def migrated_database_url() -> AsyncIterator[str]:
    """A new PostgreSQL database at the head migration, with no rows, dropped after the test."""
    url = await create_migrated_database(postgres_url())
    yield url
    await drop_database(url)

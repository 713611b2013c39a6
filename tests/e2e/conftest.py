"""Fixtures shared by the e2e tests: the store backend the app runs on.

``store`` is parametrized over every backend an e2e test should pass on. ``memory`` hands
the app a fresh ``MemoryStore``; ``sql`` points the app at an emptied, migrated PostgreSQL
database (tests/services/postgres_server.py; skipped when no server can be had, a failure
with ``CI=true``) and lets the app's own lifespan open the store, so that its connection
pool lives on the app's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from adapters.memory.store import MemoryStore
from ports.store import Store


@dataclass
class StoreBackend:
    """How to run the app on one backend: an instance to pass, or environment to set."""

    name: str
    instance: Store | None = None
    env: dict[str, str] = field(default_factory=dict)


def _sql_backend() -> StoreBackend:
    from tests.services.postgres_server import empty_migrated_database

    url = asyncio.run(empty_migrated_database())
    return StoreBackend("sql", env={"STORE_BACKEND": "sql", "DATABASE_URL": url})


@pytest.fixture(params=["memory", pytest.param("sql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[StoreBackend]:
    if request.param == "memory":
        yield StoreBackend("memory", instance=MemoryStore())
    else:
        yield _sql_backend()

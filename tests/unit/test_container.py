"""The container opens only the chosen backend, and tests can override the store."""

from __future__ import annotations

from typing import Any

import pytest
from dependency_injector import providers

import adapters.hybrid
import adapters.sql
from entrypoints.container import build_container, open_backend
from entrypoints.settings import load_settings


class FakeStore:
    closed = False

    async def close(self) -> None:
        self.closed = True


class MigratableFakeStore(FakeStore):
    migrations = 0

    async def migrate(self) -> list[str]:
        self.migrations += 1
        return ["0001"]


def forbid(name: str) -> Any:
    async def opener(*args: object, **kwargs: object) -> object:
        raise AssertionError(f"{name} must not be opened")

    return opener


async def test_hybrid_never_opens_a_postgresql_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapters.sql, "open_sql_store", forbid("sql"), raising=False)
    fake = FakeStore()

    async def open_hybrid(redis_url: str | None, **kwargs: object) -> FakeStore:
        return fake

    monkeypatch.setattr(adapters.hybrid, "open_hybrid_store", open_hybrid)
    container = build_container(load_settings({}))
    backend = await open_backend(container)
    assert container.store() is fake
    await backend.close()
    assert fake.closed


async def test_sql_never_opens_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapters.hybrid, "open_hybrid_store", forbid("hybrid"))
    fake = MigratableFakeStore()
    seen: dict[str, object] = {}

    async def open_sql(database_url: str, **kwargs: object) -> FakeStore:
        seen.update(url=database_url, **kwargs)
        return fake

    monkeypatch.setattr(adapters.sql, "open_sql_store", open_sql, raising=False)
    settings = load_settings(
        {"STORE_BACKEND": "sql", "DATABASE_URL": "postgres://u@db/auth", "DATABASE_POOL_SIZE": "7",
         "REDIS_URL": "redis://localhost:1"}
    )
    container = build_container(settings)
    backend = await open_backend(container)
    assert container.store() is fake
    # Opened unmigrated by the sql entry point, then migrated once through the port.
    assert seen == {"url": "postgres://u@db/auth", "pool_size": 7, "connect_timeout": 30,
                    "migrate": False}
    assert fake.migrations == 1
    await backend.close()
    assert fake.closed


async def test_an_overridden_store_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapters.hybrid, "open_hybrid_store", forbid("hybrid"))
    container = build_container(load_settings({}))
    fake = FakeStore()
    container.store.override(providers.Object(fake))
    backend = await open_backend(container)
    assert container.store() is fake
    await backend.close()
    assert not fake.closed  # the test owns it

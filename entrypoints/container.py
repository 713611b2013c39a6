"""The dependency-injector containers.

One small container per backend, so that opening resources opens only the chosen one's:
``hybrid`` never builds a PostgreSQL pool and ``sql`` never connects to Redis. The adapter
modules are imported inside the resource functions for the same reason.

``Container`` holds what the application needs. Its ``store`` is a ``Dependency``: the
lifespan fills it with the chosen backend's store, unless a test has already overridden it
(``container.store.override(providers.Object(MemoryStore()))``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from dependency_injector import containers, providers

from adapters.passwords import Argon2PasswordHasher
from adapters.totp import PyotpTotp
from entrypoints.clients import load_clients
from entrypoints.metrics import Metrics
from entrypoints.settings import Settings
from entrypoints.signing import load_signer, load_signin_sealer
from entrypoints.telemetry import TelemetryEvents
from ports.clock import SystemClock
from ports.security import SecretsTokenGenerator
from ports.store import Store


async def _hybrid_store(settings: Settings) -> AsyncIterator[Store]:
    from adapters.hybrid import open_hybrid_store

    store = await open_hybrid_store(settings.redis_url, cluster=settings.redis_cluster)
    try:
        yield store
    finally:
        await store.close()


async def _sql_store(settings: Settings) -> AsyncIterator[Store]:
    from adapters.sql import open_sql_store

    assert settings.database_url is not None  # guaranteed by load_settings
    store = await open_sql_store(
        settings.database_url,
        pool_size=settings.database_pool_size,
        connect_timeout=settings.database_connect_timeout_seconds,
    )
    try:
        yield store
    finally:
        await store.close()


class HybridBackend(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    store = providers.Resource(_hybrid_store, settings)


class SqlBackend(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    store = providers.Resource(_sql_store, settings)


#: ``STORE_BACKEND`` value -> its container. A new adapter adds one entry here.
BACKENDS: dict[str, type[containers.DeclarativeContainer]] = {
    "hybrid": HybridBackend,
    "sql": SqlBackend,
}


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    store: providers.Dependency[Store] = providers.Dependency()
    clock = providers.Singleton(SystemClock)
    token_generator = providers.Singleton(SecretsTokenGenerator)
    password_hasher = providers.Singleton(Argon2PasswordHasher)
    metrics = providers.Singleton(Metrics, settings.provided.store_backend)
    events = providers.Singleton(TelemetryEvents, metrics)
    signer = providers.Singleton(load_signer, settings)
    clients = providers.Singleton(load_clients, settings)
    totp = providers.Singleton(PyotpTotp)
    signin_sealer = providers.Singleton(load_signin_sealer, signer)


def build_container(settings: Settings) -> Container:
    return Container(settings=settings)


class OpenedBackend:
    """The backend container opened for this process; ``close()`` releases its resources."""

    def __init__(self, backend: containers.DeclarativeContainer | None) -> None:
        self._backend = backend

    async def close(self) -> None:
        if self._backend is not None:
            result: Any = self._backend.shutdown_resources()
            if result is not None:
                await result


async def open_backend(container: Container) -> OpenedBackend:
    """Open the configured backend and make it ``container.store`` (unless overridden)."""
    if container.store.overridden:
        return OpenedBackend(None)
    settings: Settings = container.settings()
    backend = BACKENDS[settings.store_backend](settings=settings)
    init: Any = backend.init_resources()
    if init is not None:
        await init
    store = await backend.store()
    container.store.override(providers.Object(store))
    return OpenedBackend(backend)

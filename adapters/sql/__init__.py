"""The ``sql`` adapter: the whole ``Store`` port in PostgreSQL.

:func:`open_sql_store` normalises the URL, waits for the database (with back-off, for a
bounded time), applies the migrations and returns a :class:`SqlStore` whose pool recovers
by itself after a database restart. :func:`open_store` is the ``sql`` entry point of the
``auth_service.stores`` group: the same, with the migrations left to the caller
(``SqlStore.migrate``, the ``Migratable`` port).

One module per part of the port, each a mixin of ``SqlStore`` (``store``): ``identities``
(users, groups), ``credentials``, ``codes``, ``tokens``, ``ephemeral``, ``clients``,
``sessions``, ``consents``, ``device``, ``account_tokens``, ``transfer`` and ``admin``
(health, counts, purge, close), all over ``connection`` (the engine, autocommit and
retried transactions, the one translation of driver errors). ``tables`` describes the schema;
``filtering`` turns SCIM filters into SQL.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import create_async_engine

from adapters.sql.store import SqlStore
from domain.errors import StoreMisconfigured, StoreUnavailable
from migrations.errors import MigrationError
from migrations.runner import asyncpg_dsn, migrate
from ports.store_settings import StoreSettings

__all__ = ["MigrationError", "SqlStore", "open_sql_store", "open_store", "sqlalchemy_url"]

logger = logging.getLogger(__name__)

# A statement that runs longer than this is treated as a failure of the store.
_COMMAND_TIMEOUT_SECONDS = 30.0
# How long opening one connection may take before the attempt counts as failed.
_CONNECT_ATTEMPT_SECONDS = 5.0
_POOL_CHECKOUT_SECONDS = 10.0


def sqlalchemy_url(database_url: str) -> str:
    """``postgres://``, ``postgresql://`` or ``postgresql+asyncpg://`` as SQLAlchemy wants it.

    Raises ``ValueError`` for any other scheme.
    """
    return "postgresql+asyncpg://" + asyncpg_dsn(database_url).removeprefix("postgresql://")


async def open_sql_store(
    database_url: str,
    *,
    pool_size: int = 10,
    migrate: bool = True,
    connect_timeout: float = 30.0,
) -> SqlStore:
    """Open a :class:`SqlStore` on ``database_url``, ready to serve.

    An unreachable database is retried with exponential back-off for ``connect_timeout``
    seconds, then ``StoreUnavailable`` is raised. With ``migrate`` (the default) pending
    migrations are applied first; a changed migration file raises ``MigrationError``.
    A malformed URL raises ``ValueError``.
    """
    url = sqlalchemy_url(database_url)
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max(pool_size // 2, 1),
        pool_timeout=_POOL_CHECKOUT_SECONDS,
        # No ping at checkout: it would double the round trips of every request. A
        # connection that died with the server is detected on use instead, the pool is
        # invalidated and the work retried once on a fresh connection (SqlStore), so the
        # store still recovers by itself after a database restart.
        pool_pre_ping=False,
        # Single-statement work needs no BEGIN/COMMIT round trips; transactions opt in.
        isolation_level="AUTOCOMMIT",
        connect_args={
            "timeout": _CONNECT_ATTEMPT_SECONDS,
            "command_timeout": _COMMAND_TIMEOUT_SECONDS,
            "server_settings": {"application_name": "auth-service"},
        },
    )
    store = SqlStore(engine, migration_url=database_url)
    deadline = time.monotonic() + connect_timeout
    delay = 0.1
    while True:
        try:
            if migrate:
                await _run_migrations(database_url)
            if (await store.health())["store"]:
                return store
            failure = "the database did not answer"
        except StoreUnavailable as exc:
            failure = str(exc)
        except BaseException:
            await store.close()
            raise
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            await store.close()
            raise StoreUnavailable(
                f"the database could not be reached within {connect_timeout:g}s: {failure}"
            )
        logger.warning("database not reachable yet, retrying in %.1fs", min(delay, remaining))
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, 2.0)


async def open_store(settings: StoreSettings) -> SqlStore:
    """The ``sql`` backend (:class:`ports.store_settings.OpenStore`), on ``settings.url``.

    Raises ``StoreMisconfigured`` for a missing URL or one that is not PostgreSQL's.
    """
    if settings.url is None:
        # DATABASE_URL is the name the sql backend is documented with (STORE_URL works too).
        raise StoreMisconfigured(f"is required when STORE_BACKEND={settings.backend}",
                                 "DATABASE_URL")
    try:
        sqlalchemy_url(settings.url)
    except ValueError:
        raise StoreMisconfigured(
            "must look like postgresql://user:password@host:5432/dbname "
            "(postgres://, postgresql:// or postgresql+asyncpg://)", settings.url_variable,
        ) from None
    return await open_sql_store(
        settings.url,
        pool_size=settings.pool_size,
        migrate=False,
        connect_timeout=settings.connect_timeout_seconds,
    )


async def _run_migrations(database_url: str) -> None:
    applied = await migrate(database_url)
    if applied:
        logger.info("applied migrations %s", ", ".join(applied))

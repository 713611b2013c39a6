"""A small runner for the plain-SQL migrations shipped in this package.

Each ``NNNN_name.sql`` file is one migration, applied once, in version order, each in its
own transaction, and recorded in ``schema_migrations`` with the SHA-256 of its text. A
PostgreSQL advisory lock serialises runners, so several instances may start at once. A
file changed after it was applied stops the runner with :class:`MigrationError`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from importlib import resources

import asyncpg
import msgspec

from domain.errors import StoreUnavailable
from migrations.errors import MigrationError

# Any constant shared by every runner works; this one reads "auth-svc" in ASCII.
ADVISORY_LOCK_KEY = 0x617574682D737663

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  version TEXT PRIMARY KEY NOT NULL,
  name TEXT NOT NULL,
  checksum TEXT NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""

_URL_SCHEMES = ("postgresql+asyncpg://", "postgresql://", "postgres://")


class Migration(msgspec.Struct, frozen=True):
    """One migration file: ``version`` (``"0001"``), ``name``, its SQL and its checksum."""

    version: str
    name: str
    sql: str
    checksum: str

    @property
    def file_name(self) -> str:
        return f"{self.version}_{self.name}.sql"


def asyncpg_dsn(database_url: str) -> str:
    """The URL in the form asyncpg accepts (``postgresql://``), from any form we accept.

    Raises ``ValueError`` naming the accepted schemes for anything else.
    """
    for scheme in _URL_SCHEMES:
        if database_url.startswith(scheme):
            return "postgresql://" + database_url[len(scheme):]
    raise ValueError(
        "DATABASE_URL must start with postgres://, postgresql:// or postgresql+asyncpg://"
    )


def load_migrations() -> list[Migration]:
    """Every migration shipped in this package, in version order."""
    found: list[Migration] = []
    for entry in resources.files("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        data = entry.read_bytes()
        found.append(
            Migration(
                version=match.group(1),
                name=match.group(2),
                sql=data.decode("utf-8"),
                checksum=hashlib.sha256(data).hexdigest(),
            )
        )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share one version number")
    return found


async def _connect(database_url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(asyncpg_dsn(database_url), timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise StoreUnavailable(f"database unreachable: {type(exc).__name__}") from exc


async def applied(database_url: str) -> list[str]:
    """Versions already recorded in ``schema_migrations`` (empty when it does not exist)."""
    conn = await _connect(database_url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not exists:
            return []
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        return [str(r["version"]) for r in rows]
    except (OSError, asyncpg.PostgresError) as exc:
        raise StoreUnavailable(f"database error: {type(exc).__name__}") from exc
    finally:
        await conn.close()


def _check_applied(migrations: Sequence[Migration], recorded: dict[str, str]) -> None:
    for migration in migrations:
        checksum = recorded.get(migration.version)
        if checksum is not None and checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.file_name} was changed after it was applied "
                f"(checksum {migration.checksum[:12]} in the file, {checksum[:12]} in the "
                "database); restore the file and add a new migration instead"
            )


async def migrate(database_url: str) -> list[str]:
    """Apply every pending migration; return the versions applied by this call.

    Safe to run from several processes at once: runners wait for each other on an advisory
    lock, and a re-run applies nothing. Raises :class:`MigrationError` when an applied
    file was changed or a migration fails, and ``StoreUnavailable`` when the database
    cannot be reached.
    """
    migrations = load_migrations()
    conn = await _connect(database_url)
    done: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        try:
            await conn.execute(_CREATE_TABLE)
            rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
            recorded = {str(r["version"]): str(r["checksum"]) for r in rows}
            _check_applied(migrations, recorded)
            for migration in migrations:
                if migration.version in recorded:
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum)"
                            " VALUES ($1, $2, $3)",
                            migration.version,
                            migration.name,
                            migration.checksum,
                        )
                except asyncpg.PostgresError as exc:
                    raise MigrationError(
                        f"migration {migration.file_name} failed: {exc}"
                    ) from exc
                done.append(migration.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
        raise StoreUnavailable(f"database error during migration: {type(exc).__name__}") from exc
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"migration bookkeeping failed: {exc}") from exc
    finally:
        await conn.close()
    return done

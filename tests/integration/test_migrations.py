"""The migration runner against a real PostgreSQL: empty to head, re-runs, concurrency,
and a changed file."""

from __future__ import annotations

import asyncio
import hashlib

import asyncpg
import msgspec
import pytest

from migrations import runner
from migrations.runner import MigrationError, applied, asyncpg_dsn, load_migrations, migrate

pytestmark = pytest.mark.postgres


async def _ledger(url: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
        )
    finally:
        await conn.close()
    return [(r["version"], r["name"], r["checksum"]) for r in rows]


def test_migrations_are_numbered_without_gaps_from_0001() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == [f"{n:04d}" for n in range(1, len(versions) + 1)]
    assert load_migrations()[0].name == "initial"


def test_checksums_are_sha256_of_the_file_bytes() -> None:
    first = load_migrations()[0]
    assert first.checksum == hashlib.sha256(first.sql.encode()).hexdigest()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@h:5/db", "postgresql://u:p@h:5/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql+asyncpg://u@h/db?x=1", "postgresql://u@h/db?x=1"),
    ],
)
def test_every_accepted_url_form_is_normalised(url: str, expected: str) -> None:
    assert asyncpg_dsn(url) == expected


def test_other_url_schemes_are_refused_naming_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match="postgres://, postgresql:// or postgresql\\+asyncpg://"):
        asyncpg_dsn("mysql://u@h/db")


async def test_empty_database_to_head(empty_database_url: str) -> None:
    assert await applied(empty_database_url) == []
    done = await migrate(empty_database_url)
    everything = [m.version for m in load_migrations()]
    assert done == everything
    assert await applied(empty_database_url) == everything
    ledger = await _ledger(empty_database_url)
    assert [(v, n, c) for v, n, c in ledger] == [
        (m.version, m.name, m.checksum) for m in load_migrations()
    ]


async def test_rerun_is_a_no_op(empty_database_url: str) -> None:
    await migrate(empty_database_url)
    before = await _ledger(empty_database_url)
    assert await migrate(empty_database_url) == []
    assert await _ledger(empty_database_url) == before


async def test_two_runners_at_once_serialise_and_apply_each_migration_once(
    empty_database_url: str,
) -> None:
    first, second = await asyncio.gather(migrate(empty_database_url), migrate(empty_database_url))
    everything = [m.version for m in load_migrations()]
    # One runner did all the work while the other waited on the lock, then found nothing.
    assert sorted([first, second], key=len) == [[], everything]
    assert [v for v, _, _ in await _ledger(empty_database_url)] == everything


async def test_many_runners_at_once_all_succeed(empty_database_url: str) -> None:
    results = await asyncio.gather(*(migrate(empty_database_url) for _ in range(5)))
    assert sum(len(r) for r in results) == len(load_migrations())


async def test_a_changed_migration_stops_the_runner_naming_the_file(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate(empty_database_url)
    original = load_migrations()
    tampered = [
        msgspec.structs.replace(m, checksum="0" * 64) if m.version == "0002" else m
        for m in original
    ]
    monkeypatch.setattr(runner, "load_migrations", lambda: tampered)
    with pytest.raises(MigrationError) as caught:
        await runner.migrate(empty_database_url)
    message = str(caught.value)
    assert "0002_grants.sql" in message
    assert "changed after it was applied" in message
    assert "\n" not in message


async def test_a_new_migration_is_applied_on_top(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate(empty_database_url)
    extra_sql = "CREATE TABLE extra_for_test (x INTEGER);"
    extra = runner.Migration(
        version="9999", name="extra", sql=extra_sql,
        checksum=hashlib.sha256(extra_sql.encode()).hexdigest(),
    )
    monkeypatch.setattr(runner, "load_migrations", lambda: [*load_migrations(), extra])
    assert await runner.migrate(empty_database_url) == ["9999"]
    assert (await runner.applied(empty_database_url))[-1] == "9999"


async def test_a_failing_migration_is_rolled_back_and_reported(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate(empty_database_url)
    bad_sql = "CREATE TABLE half_done (x INTEGER); SELECT no_such_function();"
    bad = runner.Migration(
        version="9999", name="broken", sql=bad_sql,
        checksum=hashlib.sha256(bad_sql.encode()).hexdigest(),
    )
    monkeypatch.setattr(runner, "load_migrations", lambda: [*load_migrations(), bad])
    with pytest.raises(MigrationError, match=r"9999_broken\.sql failed"):
        await runner.migrate(empty_database_url)
    assert "9999" not in await runner.applied(empty_database_url)
    conn = await asyncpg.connect(asyncpg_dsn(empty_database_url))
    try:
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
    finally:
        await conn.close()


def test_the_migrate_command_applies_them_through_the_port(empty_database_url: str) -> None:
    # The CLI knows no backend: it opens the configured store and calls Migratable.migrate.
    from tests.e2e.test_cli import run_cli

    env = {"STORE_BACKEND": "sql", "DATABASE_URL": empty_database_url}
    first = run_cli("migrate", env=env)
    assert first.returncode == 0, first.stderr
    versions = [m.version for m in load_migrations()]
    assert first.stdout.strip() == f"applied {len(versions)} migration(s): {', '.join(versions)}"
    again = run_cli("migrate", env=env)
    assert again.stdout.strip() == "applied 0 migration(s)"

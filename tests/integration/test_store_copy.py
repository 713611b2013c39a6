"""``store copy`` / ``export`` / ``import`` between real backends: memory -> sql, sql -> sql.

Every test seeds a source with one of everything (``tests/transfer_sample.py``), copies
it, compares the two stores part by part through the port (every record, not a sample),
then checks that the copied records behave in the target (a rotated refresh token is still
caught as reused, a consumed code as replayed, a revoked token stays revoked).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest

from adapters.memory import MemoryStore
from adapters.sql import SqlStore, open_sql_store
from domain.entities import AuthorizationCode, Reused, Taken
from domain.errors import InvalidValue, StoreUnavailable
from domain.tokens import hash_token
from domain.transfer import (
    TransferFailed,
    TransferReport,
    copy_store,
    export_store,
    import_store,
)
from ports.store import Store
from tests.doubles import T0, FakeClock
from tests.services.postgres_server import (
    create_empty_database,
    create_migrated_database,
    drop_database,
    postgres_url,
)
from tests.transfer_sample import EXPECTED, USERS, check_target, seed, snapshot

pytestmark = pytest.mark.postgres

CLI = shutil.which("auth-service", path=str(Path(sys.executable).parent)) or "auth-service"


def read_counts(report: TransferReport) -> dict[str, int]:
    return {part.name: part.read for part in report.parts}


@pytest.fixture
async def database_urls() -> AsyncIterator[list[str]]:
    """Makes migrated databases on demand; drops them all afterwards."""
    urls: list[str] = []
    yield urls
    for url in urls:
        await drop_database(url)


async def new_database(urls: list[str], *, migrated: bool = True) -> str:
    server = postgres_url()
    url = await (create_migrated_database(server) if migrated else create_empty_database(server))
    urls.append(url)
    return url


@pytest.fixture
async def sql_stores(database_urls: list[str]) -> AsyncIterator[list[SqlStore]]:
    stores: list[SqlStore] = []
    yield stores
    for store in stores:
        await store.close()


async def open_sql(url: str, stores: list[SqlStore], *, migrate: bool = False) -> SqlStore:
    store = await open_sql_store(url, migrate=migrate, pool_size=4, connect_timeout=10)
    stores.append(store)
    return store


async def test_memory_to_sql_copies_every_part_exactly(
    database_urls: list[str], sql_stores: list[SqlStore]
) -> None:
    clock = FakeClock(T0)
    source = MemoryStore()
    await seed(source, T0)
    # An empty database: the target gets its schema through its own migrations first.
    target = await open_sql(await new_database(database_urls, migrated=False), sql_stores,
                            migrate=True)
    report = await copy_store(source, target, clock, batch_size=2)
    assert read_counts(report) == EXPECTED
    assert report.written == sum(EXPECTED.values())
    assert await snapshot(target, T0) == await snapshot(source, T0)
    await check_target(target, T0)


async def test_sql_to_sql_copies_every_part_exactly_and_a_rerun_changes_nothing(
    database_urls: list[str], sql_stores: list[SqlStore]
) -> None:
    clock = FakeClock(T0)
    source = await open_sql(await new_database(database_urls), sql_stores)
    target = await open_sql(await new_database(database_urls), sql_stores)
    await seed(source, T0)
    report = await copy_store(source, target, clock, batch_size=3)
    assert read_counts(report) == EXPECTED
    before = await snapshot(target, T0)
    assert before == await snapshot(source, T0)

    again = await copy_store(source, target, clock, batch_size=3)
    assert read_counts(again) == EXPECTED
    assert again.written == 0
    assert all(part.unchanged == part.read for part in again.parts)
    assert await snapshot(target, T0) == before
    await check_target(target, T0)


async def test_a_rerun_after_changes_in_the_source_writes_only_those(
    database_urls: list[str], sql_stores: list[SqlStore]
) -> None:
    clock = FakeClock(T0)
    source = await open_sql(await new_database(database_urls), sql_stores)
    target = await open_sql(await new_database(database_urls), sql_stores)
    await seed(source, T0)
    await copy_store(source, target, clock)
    clock.advance(10)
    now = clock.now()
    await source.set_password_hash("u-02", "$argon2id$new")
    assert isinstance(await source.take_code(hash_token("ac_live"), now, remember_until=now + 60),
                      AuthorizationCode)
    assert isinstance(await source.take_refresh_token(hash_token("rt_first"), now), Taken)

    again = await copy_store(source, target, clock)
    written = {part.name: part.written for part in again.parts if part.written}
    # The user's credentials; the consumed code (its tombstone, and the live copy removed);
    # the access token the rotation revoked; the rotated refresh token's marker.
    assert written == {"users": 1, "consumed_codes": 1, "access_tokens": 1, "reuse_markers": 1}
    assert await snapshot(target, now) == await snapshot(source, now)
    assert await target.take_refresh_token(hash_token("rt_first"), now) == Reused("grant-1")


class FailingTarget:
    """The target store, failing every import after the first ``batches`` ones."""

    def __init__(self, store: Store, batches: int) -> None:
        self._store = store
        self._left = batches

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not name.startswith("import_"):
            return attribute

        async def fail_after(*args: Any) -> Any:
            if self._left == 0:
                raise StoreUnavailable("the database is unavailable or failed")
            self._left -= 1
            return await attribute(*args)

        return fail_after


async def test_an_interrupted_copy_leaves_whole_batches_and_a_rerun_finishes_it(
    database_urls: list[str], sql_stores: list[SqlStore]
) -> None:
    clock = FakeClock(T0)
    source = await open_sql(await new_database(database_urls), sql_stores)
    target = await open_sql(await new_database(database_urls), sql_stores)
    await seed(source, T0)
    # Users come in batches of 2 (2, 2, 2, 1); the third batch fails.
    with pytest.raises(TransferFailed) as failed:
        await copy_store(source, cast(Store, FailingTarget(target, 2)), clock, batch_size=2)
    assert failed.value.part == "users"
    assert isinstance(failed.value.cause, StoreUnavailable)
    assert "rerun" in str(failed.value)
    assert failed.value.report.part("users").read == 4
    partial = await snapshot(target, T0)
    assert [r.user.id for r in partial["users"]] == ["u-00", "u-01", "u-02", "u-03"]
    assert all(not records for name, records in partial.items() if name != "users")

    report = await copy_store(source, target, clock, batch_size=2)
    assert report.part("users").written == USERS - 4
    assert report.part("users").unchanged == 4
    assert read_counts(report) == EXPECTED
    assert await snapshot(target, T0) == await snapshot(source, T0)
    await check_target(target, T0)


async def test_export_then_import_through_json_lines_round_trips(
    database_urls: list[str], sql_stores: list[SqlStore], tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    source = await open_sql(await new_database(database_urls), sql_stores)
    target = await open_sql(await new_database(database_urls), sql_stores)
    await seed(source, T0)
    path = tmp_path / "store.jsonl"
    with path.open("wb") as out:
        async for line in export_store(source, clock, batch_size=2):
            out.write(line + b"\n")
    lines = path.read_bytes().splitlines()
    assert msgspec.json.decode(lines[0])["format"] == "auth-service-store"
    assert len(lines) == 2 + sum(EXPECTED.values())
    assert b"rt_first" not in path.read_bytes()  # tokens travel by hash only

    report = await import_store(target, path.read_bytes().splitlines(), clock, batch_size=2)
    assert read_counts(report) == EXPECTED
    assert await snapshot(target, T0) == await snapshot(source, T0)
    again = await import_store(target, lines, clock, batch_size=2)
    assert again.written == 0
    await check_target(target, T0)


async def test_a_truncated_export_is_refused_after_whole_batches_and_a_rerun_finishes(
    database_urls: list[str], sql_stores: list[SqlStore]
) -> None:
    clock = FakeClock(T0)
    source = MemoryStore()
    await seed(source, T0)
    lines = [line async for line in export_store(source, clock)]
    target = await open_sql(await new_database(database_urls), sql_stores)
    with pytest.raises(InvalidValue, match="truncated"):
        await import_store(target, lines[:5], clock, batch_size=2)
    assert len((await snapshot(target, T0))["users"]) == 4
    await import_store(target, lines, clock, batch_size=2)
    assert await snapshot(target, T0) == await snapshot(source, T0)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STORE_", "DATABASE_", "REDIS_"))}
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


async def test_cli_copies_into_an_empty_database_and_prints_a_summary(
    database_urls: list[str], sql_stores: list[SqlStore]
) -> None:
    now = int(__import__("time").time())
    source_url = await new_database(database_urls)
    target_url = await new_database(database_urls, migrated=False)
    source = await open_sql(source_url, sql_stores)
    await seed(source, now)

    result = run_cli("store", "copy", "--from", f"sql:{source_url}", "--to", f"sql:{target_url}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "users: 7 read, 7 written, 0 unchanged" in lines
    assert "reuse_markers: 1 read, 1 written, 0 unchanged" in lines
    assert lines[-1] == f"total: {sum(EXPECTED.values())} read, {sum(EXPECTED.values())} " \
        "written, 0 unchanged"
    assert result.stderr == ""  # no progress bar without a terminal

    again = run_cli("store", "copy", "--from", f"sql:{source_url}", "--to", f"sql:{target_url}")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == \
        f"total: {sum(EXPECTED.values())} read, 0 written, {sum(EXPECTED.values())} unchanged"
    target = await open_sql(target_url, sql_stores)
    assert await snapshot(target, now) == await snapshot(source, now)


async def test_cli_export_and_import_through_a_file(
    database_urls: list[str], sql_stores: list[SqlStore], tmp_path: Path
) -> None:
    now = int(__import__("time").time())
    source_url = await new_database(database_urls)
    target_url = await new_database(database_urls, migrated=False)
    source = await open_sql(source_url, sql_stores)
    await seed(source, now)
    path = tmp_path / "export.jsonl"

    exported = run_cli("store", "export", "--from", f"sql:{source_url}", "--output", str(path))
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.strip().splitlines()[-1] == f"total: {sum(EXPECTED.values())} exported"
    assert path.stat().st_mode & 0o777 == 0o600
    imported = run_cli("store", "import", "--to", f"sql:{target_url}", "--input", str(path))
    assert imported.returncode == 0, imported.stderr
    assert "claims: 1 read, 1 written, 0 unchanged" in imported.stdout.splitlines()
    target = await open_sql(target_url, sql_stores)
    assert await snapshot(target, now) == await snapshot(source, now)


@pytest.mark.redis
async def test_cli_refuses_hybrid_whose_identities_live_in_the_serving_process(
    database_urls: list[str],
) -> None:
    from tests.services.redis_server import session_redis_url

    target_url = await new_database(database_urls)
    result = run_cli("store", "copy", "--from", f"hybrid:{session_redis_url()}",
                     "--to", f"sql:{target_url}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == ("auth-service: store copy: hybrid keeps its users, groups and "
                        "credentials in the memory of the serving process, out of this "
                        "command's reach")


async def test_cli_copies_sql_into_a_third_party_backend_and_back(
    database_urls: list[str], sql_stores: list[SqlStore], tmp_path: Path
) -> None:
    # The test plugin (tests/store_plugin, STORE_BACKEND=filestore) is installed as its own
    # distribution: a third-party backend takes part in a copy like the built-in ones.
    from auth_filestore import FileStore

    now = int(__import__("time").time())
    source_url = await new_database(database_urls)
    source = await open_sql(source_url, sql_stores)
    await seed(source, now)
    store_file = tmp_path / "auth.store"

    into = run_cli("store", "copy", "--from", f"sql:{source_url}",
                   "--to", f"filestore:{store_file}")
    assert into.returncode == 0, into.stderr
    assert into.stdout.strip().splitlines()[-1] == \
        f"total: {sum(EXPECTED.values())} read, {sum(EXPECTED.values())} written, 0 unchanged"
    plugin = FileStore(store_file)
    try:
        assert await snapshot(plugin, now) == await snapshot(source, now)
        await check_target(plugin, now)  # uses (so changes) the copied codes and tokens
        used = await snapshot(plugin, now)
    finally:
        await plugin.close()

    back_url = await new_database(database_urls, migrated=False)
    back = run_cli("store", "copy", "--from", f"filestore:{store_file}", "--to", f"sql:{back_url}")
    assert back.returncode == 0, back.stderr
    target = await open_sql(back_url, sql_stores)
    assert await snapshot(target, now) == used

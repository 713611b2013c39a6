"""Store backends are entry points: chosen by name, opened one way, refused when out of reach."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from importlib.metadata import EntryPoint

import pytest

import entrypoints.settings
from adapters.memory import MemoryStore
from domain.errors import StoreMisconfigured
from entrypoints.backends import OutOfReach, command_store, load_opener, open_store
from entrypoints.settings import ConfigError, load_settings
from ports.store import IDENTITY_PARTS, Migratable, ProcessLocal, StorePart
from ports.store_settings import StoreSettings


class FakeStore(MemoryStore):
    closed = False

    async def close(self) -> None:
        self.closed = True


class MigratingStore(FakeStore):
    def __init__(self, failure: Exception | None = None) -> None:
        super().__init__()
        self.failure = failure
        self.migrated = 0

    async def migrate(self) -> list[str]:
        if self.failure is not None:
            raise self.failure
        self.migrated += 1
        return ["0001"]


class LocalStore(FakeStore):
    def __init__(self, parts: frozenset[StorePart]) -> None:
        super().__init__()
        self.parts = parts

    def process_local_parts(self) -> frozenset[StorePart]:
        return self.parts


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    """Installed backends: the real ones plus what the test puts in the returned dict, each
    a module-level ``open_store`` of a fake module ``fake_backends``."""
    module = types.ModuleType("fake_backends")
    monkeypatch.setitem(sys.modules, "fake_backends", module)
    stores: dict[str, object] = {}
    real = entrypoints.settings.entry_points

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        extra = [EntryPoint(name, f"fake_backends:{name}", group) for name in stores]
        return [*real(group=group), *extra]

    def lookup(name: str) -> object:
        return stores[name]

    module.__getattr__ = lookup  # type: ignore[method-assign]
    monkeypatch.setattr(entrypoints.settings, "entry_points", fake_entry_points)
    yield stores


def opener(store: object) -> object:
    async def open_it(settings: StoreSettings) -> object:
        return store

    return open_it


def test_store_url_wins_and_database_url_is_its_fallback() -> None:
    both = load_settings({"STORE_BACKEND": "sql", "STORE_URL": "postgresql://a@db/x",
                          "DATABASE_URL": "postgresql://b@db/y", "DATABASE_POOL_SIZE": "3",
                          "DATABASE_CONNECT_TIMEOUT_SECONDS": "7", "REDIS_URL": "redis://r"})
    assert both.store == StoreSettings(
        backend="sql", url="postgresql://a@db/x", url_variable="STORE_URL", pool_size=3,
        connect_timeout_seconds=7, redis_url="redis://r",
    )
    legacy = load_settings({"STORE_BACKEND": "sql", "DATABASE_URL": "postgresql://b@db/y"})
    assert (legacy.store.url, legacy.store.url_variable) == ("postgresql://b@db/y", "DATABASE_URL")
    neither = load_settings({})
    assert (neither.store.url, neither.store.url_variable) == (None, "STORE_URL")


def test_a_backend_name_must_be_installed(plugins: dict[str, object]) -> None:
    plugins["mine"] = opener(FakeStore())
    assert load_settings({"STORE_BACKEND": "Mine"}).store_backend == "mine"
    with pytest.raises(ConfigError) as caught:
        load_settings({"STORE_BACKEND": "yours"})
    assert str(caught.value) == ("STORE_BACKEND: must be one of the installed backends "
                                 "filestore, hybrid, mine, sql (got 'yours')")


def test_a_name_claimed_by_two_packages_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def twice(*, group: str) -> list[EntryPoint]:
        return [EntryPoint("dup", "first_pkg:open_store", group),
                EntryPoint("dup", "second_pkg.store:open_store", group)]

    monkeypatch.setattr(entrypoints.settings, "entry_points", twice)
    with pytest.raises(ConfigError, match=r"more than one installed package \(first_pkg, "
                                          r"second_pkg\)"):
        load_settings({"STORE_BACKEND": "dup"})


def test_a_backend_that_fails_to_import_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*, group: str) -> list[EntryPoint]:
        return [EntryPoint("broken", "no_such_module_anywhere:open_store", group)]

    monkeypatch.setattr(entrypoints.settings, "entry_points", broken)
    with pytest.raises(ConfigError) as caught:
        load_opener("broken")
    message = str(caught.value)
    assert message.startswith("STORE_BACKEND: backend 'broken' from package "
                              "'no_such_module_anywhere' failed to import")
    assert "ModuleNotFoundError" in message and "\n" not in message


def test_a_backend_that_is_no_function_is_refused(plugins: dict[str, object]) -> None:
    plugins["constant"] = 42
    with pytest.raises(ConfigError, match="not a function"):
        load_opener("constant")


async def test_the_built_in_backends_are_entry_points_too() -> None:
    from adapters.hybrid import open_store as open_hybrid
    from adapters.sql import open_store as open_sql

    assert load_opener("hybrid") is open_hybrid
    assert load_opener("sql") is open_sql
    store = await open_store(load_settings({}).store)
    assert isinstance(store, ProcessLocal) and not isinstance(store, Migratable)
    await store.close()


async def test_open_store_migrates_a_migratable_store_unless_told_not_to(
    plugins: dict[str, object],
) -> None:
    store = MigratingStore()
    plugins["schema"] = opener(store)
    settings = StoreSettings(backend="schema")
    assert await open_store(settings) is store and store.migrated == 1
    await open_store(settings, migrate=False)
    assert store.migrated == 1


async def test_a_failing_migration_closes_the_store(plugins: dict[str, object]) -> None:
    store = MigratingStore(StoreMisconfigured("migration 0002 was changed"))
    plugins["schema"] = opener(store)
    with pytest.raises(StoreMisconfigured):
        await open_store(StoreSettings(backend="schema"))
    assert store.closed


async def test_the_sql_backend_names_the_variable_of_a_bad_url() -> None:
    from adapters.sql import open_store as open_sql

    with pytest.raises(StoreMisconfigured) as missing:
        await open_sql(StoreSettings(backend="sql"))
    assert missing.value.variable == "DATABASE_URL"
    with pytest.raises(StoreMisconfigured) as wrong:
        await open_sql(StoreSettings(backend="sql", url="mysql://db/x", url_variable="STORE_URL"))
    assert wrong.value.variable == "STORE_URL" and "postgresql://" in str(wrong.value)


async def test_a_command_is_refused_the_parts_that_live_in_the_server(
    plugins: dict[str, object],
) -> None:
    store = LocalStore(frozenset({"users", "credentials"}))
    plugins["local"] = opener(store)
    settings = load_settings({"STORE_BACKEND": "local"})
    with pytest.raises(OutOfReach) as caught:
        async with command_store(settings, command="user frobnicate", needs=IDENTITY_PARTS,
                                 hint="use SCIM"):
            raise AssertionError("must not run")
    assert caught.value.variable == "STORE_BACKEND"
    assert caught.value.parts == {"users", "credentials"}
    assert str(caught.value) == (
        "STORE_BACKEND: user frobnicate cannot reach the users and credentials of "
        "STORE_BACKEND=local: they live in the memory of the serving process, and this "
        "command would only see an empty copy of its own; use SCIM")
    assert store.closed


async def test_a_command_runs_on_parts_every_process_shares(
    plugins: dict[str, object],
) -> None:
    store = LocalStore(frozenset({"codes"}))
    plugins["local"] = opener(store)
    async with command_store(load_settings({"STORE_BACKEND": "local"}), command="user x",
                             needs=IDENTITY_PARTS) as opened:
        assert opened is store
    assert store.closed


async def test_a_store_that_cannot_be_opened_names_the_variable_to_fix(
    plugins: dict[str, object],
) -> None:
    async def misconfigured(settings: StoreSettings) -> object:
        raise StoreMisconfigured("must be file:///path")

    plugins["picky"] = misconfigured
    settings = load_settings({"STORE_BACKEND": "picky", "STORE_URL": "nope"})
    with pytest.raises(ConfigError) as caught:
        async with command_store(settings, command="purge", needs=()):
            pass
    assert str(caught.value) == "STORE_URL: must be file:///path"

"""The filestore backend against auth-service's own test kit, as an outside project runs it.

This directory has its own pytest.ini (pytest-asyncio in strict mode) and imports nothing
from auth-service's tests: only the installed ``adapters.testing`` and the port.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from auth_filestore import FileStore, open_store

from adapters.testing import FilterAgreement, StoreContract
from domain.entities import AccessToken
from domain.errors import StoreMisconfigured, StoreUnavailable
from ports.store import Migratable, Store
from ports.store_settings import StoreSettings


async def migrated_store(directory: Path) -> FileStore:
    store = await open_store(
        StoreSettings(backend="filestore", url=f"file://{directory / 'auth.store'}")
    )
    assert isinstance(store, Migratable)
    assert await store.migrate() == ["0001_create_store_file"]
    return store


class FreshFileStore:
    """The one fixture both suites need: a migrated, empty store in its own directory."""

    @pytest_asyncio.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[Store]:
        store = await migrated_store(tmp_path)
        yield store
        await store.close()


class TestFileStoreContract(FreshFileStore, StoreContract):
    """Every test of the contract, the concurrency tests included; nothing is skipped."""

    @pytest_asyncio.fixture
    async def other_instance(self, store: FileStore) -> AsyncIterator[Store]:
        """A second store on the same file, as another process opens it."""
        other = FileStore(store.path)
        yield other
        await other.close()


class TestFileStoreFilters(FreshFileStore, FilterAgreement):
    """The memory evaluator runs inside, so this agrees by construction; it still shows
    that the check runs from an outside project."""


def test_this_suite_runs_in_strict_mode(pytestconfig: pytest.Config) -> None:
    # Strict is what an outside project gets by default; the kit must not need auto mode.
    mode = pytestconfig.getoption("asyncio_mode") or pytestconfig.getini("asyncio_mode")
    assert str(mode) == "strict"


@pytest.mark.asyncio
async def test_two_stores_on_one_file_share_everything(tmp_path: Path) -> None:
    """What makes the CLI work next to a server: each process opens its own FileStore."""
    first = await migrated_store(tmp_path)
    second = await open_store(StoreSettings(backend="filestore", url=str(first.path)))
    now = 1_700_000_000
    token = AccessToken(token_hash="a" * 64, token_display="tk_a...", active=True, scope="read",
                        client_id="svc", exp=now + 60, iat=now)
    await first.save_tokens(token, None, now)
    assert await second.get_access_token(token.token_hash, now) == token
    assert await second.revoke_access_token(token.token_hash, now)
    found = await first.get_access_token(token.token_hash, now)
    assert found is not None and not found.active
    await first.close()
    await second.close()


@pytest.mark.asyncio
async def test_concurrent_claims_from_two_stores_have_one_winner(tmp_path: Path) -> None:
    first = await migrated_store(tmp_path)
    second = await open_store(StoreSettings(backend="filestore", url=str(first.path)))
    now = 1_700_000_000
    results = await asyncio.gather(
        *(store.claim_once("totp:alice:123456", now + 30, now)
          for _ in range(25) for store in (first, second))
    )
    assert results.count(True) == 1
    await first.close()
    await second.close()


@pytest.mark.asyncio
async def test_an_unmigrated_file_is_unavailable_and_unhealthy(tmp_path: Path) -> None:
    store = await open_store(StoreSettings(backend="filestore", url=str(tmp_path / "none")))
    assert await store.health() == {"store": False}
    with pytest.raises(StoreUnavailable, match="migrate"):
        await store.counts(0)
    await store.close()
    assert not (tmp_path / "none").exists()  # opening created nothing


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url", [None, "redis://localhost/0", "file://elsewhere/x", "/no/such/directory/auth.store"]
)
async def test_a_bad_store_url_is_misconfigured_and_names_its_variable(url: str | None) -> None:
    with pytest.raises(StoreMisconfigured) as caught:
        await open_store(StoreSettings(backend="filestore", url=url, url_variable="STORE_URL"))
    assert caught.value.variable == "STORE_URL"
    assert "\n" not in str(caught.value)

"""The contract suite's shape: one class per part of the port, named as the adapters' modules.

``StoreContract`` must stay exactly the sum of its parts (no test lost or run twice when the
suite is split), and a part must run on its own, so that a team implementing some parts of
the port can test those first.
"""

from __future__ import annotations

import pkgutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

import adapters.testing
import adapters.testing.contract
from adapters.memory import MemoryStore
from adapters.testing import CodeContract, EphemeralContract, StoreContract
from adapters.testing.contract.fixtures import StoreFixtures
from ports.store import Store

ROOT = Path(__file__).resolve().parents[2]

#: The modules of the port's parts, as in adapters/sql and adapters/memory, and their classes.
PART_CLASSES = {
    "identities": "IdentityContract",
    "credentials": "CredentialContract",
    "codes": "CodeContract",
    "tokens": "TokenContract",
    "ephemeral": "EphemeralContract",
    "clients": "ClientContract",
    "sessions": "SessionContract",
    "consents": "ConsentContract",
    "device": "DeviceContract",
    "account_tokens": "AccountTokenContract",
    "transfer": "TransferContract",
    "admin": "AdminContract",
}
# Exported by adapters.testing, where an outside project imports them from.
PARTS: dict[str, type[StoreFixtures]] = {
    module: getattr(adapters.testing, name) for module, name in PART_CLASSES.items()
}


def own_tests(cls: type) -> set[str]:
    return {name for name in vars(cls) if name.startswith("test_")}


def all_tests(cls: type) -> set[str]:
    return {name for name in dir(cls) if name.startswith("test_")}


def test_the_contract_has_one_module_per_part_named_as_in_the_adapters() -> None:
    modules = {m.name for m in pkgutil.iter_modules(adapters.testing.contract.__path__)}
    assert modules - {"fixtures", "store"} == set(PARTS)
    for adapter in ("sql", "memory"):
        assert all((ROOT / "adapters" / adapter / f"{part}.py").is_file() for part in PARTS)
    # hybrid's identities and credentials are the memory adapter's: no module of its own.
    hybrid_parts = set(PARTS) - {"identities", "credentials"}
    assert all((ROOT / "adapters" / "hybrid" / f"{part}.py").is_file() for part in hybrid_parts)
    assert not any((ROOT / "adapters" / "hybrid" / f"{part}.py").exists()
                   for part in set(PARTS) - hybrid_parts)


@pytest.mark.parametrize("module", sorted(PARTS))
def test_each_part_class_lives_in_the_module_of_its_part(module: str) -> None:
    assert PARTS[module].__module__ == f"adapters.testing.contract.{module}"
    assert issubclass(PARTS[module], StoreFixtures)
    assert "asyncio" in {mark.name for mark in PARTS[module].pytestmark}


def test_store_contract_is_exactly_the_sum_of_its_parts() -> None:
    assert set(StoreContract.__bases__) == set(PARTS.values())
    assert own_tests(StoreContract) == set()
    seen: set[str] = set()
    for part in PARTS.values():
        assert own_tests(part), part
        assert not own_tests(part) & seen, part
        seen |= own_tests(part)
    assert all_tests(StoreContract) == seen


class TestMemoryCodesAndEphemeralAlone(CodeContract, EphemeralContract):
    """Two parts without the rest, as a team that has only its token-state side would run them."""

    @pytest_asyncio.fixture
    async def store(self) -> AsyncIterator[Store]:
        memory = MemoryStore()
        yield memory
        await memory.close()


def test_a_class_of_some_parts_runs_only_their_tests() -> None:
    chosen = all_tests(TestMemoryCodesAndEphemeralAlone)
    assert chosen == own_tests(CodeContract) | own_tests(EphemeralContract)

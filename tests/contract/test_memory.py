"""The Store contract suite against the memory adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.memory import MemoryStore
from adapters.testing import StoreContract
from ports.store import Store


class TestMemoryStore(StoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[Store]:
        memory = MemoryStore()
        yield memory
        await memory.close()

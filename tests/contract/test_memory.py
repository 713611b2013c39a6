"""The Store contract suite against the memory adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from adapters.memory import MemoryStore
from adapters.testing import StoreContract
from ports.store import Store


class TestMemoryStore(StoreContract):
    @pytest_asyncio.fixture
    async def store(self) -> AsyncIterator[Store]:
        memory = MemoryStore()
        yield memory
        await memory.close()

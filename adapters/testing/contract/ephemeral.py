"""The ephemeral-state part of the Store contract: claims and hit counters (the
``EphemeralStore`` port)."""

from __future__ import annotations

import asyncio

from adapters.testing.contract.fixtures import CONCURRENCY, StoreFixtures
from ports.store import Store


class EphemeralContract(StoreFixtures):
    """``claim_once`` (one winner until the claim expires, concurrent callers included) and
    ``hit`` (counts per aligned window, reads with 0, gives back with a negative amount).
    """

    async def test_claim_once_has_one_winner_until_it_expires(
        self, store: Store, now: int
    ) -> None:
        assert await store.claim_once("totp:u1:123456", now + 90, now) is True
        assert await store.claim_once("totp:u1:123456", now + 90, now + 89) is False
        assert await store.claim_once("totp:u1:123456", now + 200, now + 90) is True

    async def test_claim_once_keys_are_independent(self, store: Store, now: int) -> None:
        assert await store.claim_once("lock:a", now + 60, now) is True
        assert await store.claim_once("lock:b", now + 60, now) is True

    async def test_concurrent_claims_have_exactly_one_winner(
        self, store: Store, now: int
    ) -> None:
        self._require_concurrency()
        results = await asyncio.gather(
            *(store.claim_once("lock:race", now + 60, now) for _ in range(CONCURRENCY))
        )
        assert results.count(True) == 1

    async def test_hit_counts_within_a_window(self, store: Store, now: int) -> None:
        start = now - now % 60
        assert await store.hit("login:alice", 60, start) == 1
        assert await store.hit("login:alice", 60, start + 30) == 2
        assert await store.hit("login:alice", 60, start + 59, amount=3) == 5

    async def test_hit_starts_again_in_the_next_window(self, store: Store, now: int) -> None:
        start = now - now % 60
        await store.hit("login:alice", 60, start, amount=4)
        assert await store.hit("login:alice", 60, start + 60) == 1

    async def test_hit_with_amount_0_only_reads(self, store: Store, now: int) -> None:
        start = now - now % 60
        assert await store.hit("login:alice", 60, start, amount=0) == 0
        await store.hit("login:alice", 60, start, amount=2)
        assert await store.hit("login:alice", 60, start + 1, amount=0) == 2
        assert await store.hit("login:alice", 60, start + 2, amount=0) == 2
        assert await store.hit("login:alice", 60, start + 60, amount=0) == 0

    async def test_hit_with_a_negative_amount_gives_hits_back(
        self, store: Store, now: int
    ) -> None:
        start = now - now % 60
        await store.hit("login:alice", 60, start, amount=3)
        assert await store.hit("login:alice", 60, start + 1, amount=-1) == 2
        assert await store.hit("login:alice", 60, start + 2, amount=0) == 2

    async def test_hit_keys_are_independent(self, store: Store, now: int) -> None:
        await store.hit("login:alice", 60, now, amount=5)
        assert await store.hit("login:bob", 60, now) == 1

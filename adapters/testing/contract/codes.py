"""The authorization-code part of the Store contract (the ``CodeStore`` port)."""

from __future__ import annotations

import asyncio

import msgspec

from adapters.testing.contract.fixtures import CONCURRENCY, StoreFixtures, _code
from domain.entities import AuthorizationCode, ConsumedCode
from domain.tokens import hash_token
from ports.store import Store


class CodeContract(StoreFixtures):
    """Authorization codes: taken at most once before they expire, then remembered as a
    tombstone (a replay revokes the grant) until ``remember_until``; one winner among
    concurrent takes.
    """

    async def test_take_code_returns_the_saved_code(self, store: Store, now: int) -> None:
        code = _code("ac_one", now + 600)
        await store.save_code(code, now)
        assert await store.take_code(code.code_hash, now, remember_until=now + 600) == code

    async def test_a_code_keeps_its_resources(self, store: Store, now: int) -> None:
        code = msgspec.structs.replace(
            _code("ac_resources", now + 600),
            resources=("https://api.example/v1", "urn:example:reports"))
        await store.save_code(code, now)
        assert await store.take_code(code.code_hash, now, remember_until=now + 600) == code

    async def test_take_unknown_code_returns_none(self, store: Store, now: int) -> None:
        assert await store.take_code(hash_token("ac_none"), now, remember_until=now + 60) is None

    async def test_an_expired_code_is_never_returned(self, store: Store, now: int) -> None:
        code = _code("ac_old", now + 600)
        await store.save_code(code, now)
        taken = await store.take_code(code.code_hash, now + 600, remember_until=now + 1200)
        assert taken is None

    async def test_second_take_of_a_code_returns_its_tombstone(
        self, store: Store, now: int
    ) -> None:
        code = _code("ac_twice", now + 600, grant_id="grant-x")
        await store.save_code(code, now)
        await store.take_code(code.code_hash, now, remember_until=now + 600)
        again = await store.take_code(code.code_hash, now + 1, remember_until=now + 600)
        assert again == ConsumedCode(code.code_hash, "grant-x", "client-a")

    async def test_code_tombstone_is_kept_until_remember_until_only(
        self, store: Store, now: int
    ) -> None:
        code = _code("ac_tomb", now + 60)
        await store.save_code(code, now)
        await store.take_code(code.code_hash, now, remember_until=now + 900)
        later = await store.take_code(code.code_hash, now + 899, remember_until=now + 900)
        assert isinstance(later, ConsumedCode)
        assert await store.take_code(code.code_hash, now + 900, remember_until=now + 900) is None

    async def test_concurrent_takes_of_a_code_have_exactly_one_winner(
        self, store: Store, now: int
    ) -> None:
        self._require_concurrency()
        code = _code("ac_race", now + 600)
        await store.save_code(code, now)
        results = await asyncio.gather(
            *(
                store.take_code(code.code_hash, now, remember_until=now + 600)
                for _ in range(CONCURRENCY)
            )
        )
        assert [r for r in results if isinstance(r, AuthorizationCode)] == [code]
        # Every loser came after the winner: it must see a replay, so the grant gets revoked.
        losers = [r for r in results if not isinstance(r, AuthorizationCode)]
        assert losers == [ConsumedCode(code.code_hash, code.grant_id, code.client_id)] * (
            CONCURRENCY - 1
        )

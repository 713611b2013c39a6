"""The administration part of the Store contract: purge, counts and health (the
``StoreAdmin`` port)."""

from __future__ import annotations

from adapters.testing.contract.fixtures import (
    StoreFixtures,
    _access,
    _code,
    _group,
    _pair,
    _refresh,
    _user,
)
from domain.entities import ConsumedCode, Reused
from ports.store import Store


class AdminContract(StoreFixtures):
    """``purge_expired`` (only what has expired, in batches, tombstones and reuse markers
    kept while live), ``counts`` (live records, revoked tokens included) and ``health``.

    The records purged and counted are written through every other part, so these tests
    need the whole port.
    """

    async def test_purge_removes_only_expired_data_and_counts_it(
        self, store: Store, now: int
    ) -> None:
        short_code, long_code = _code("ac_short", now + 60), _code("ac_long", now + 600)
        taken_code = _code("ac_taken", now + 60)
        for code in (short_code, long_code, taken_code):
            await store.save_code(code, now)
        await store.take_code(taken_code.code_hash, now, remember_until=now + 100)
        short_access = _access("tk_short", now, ttl=60)
        await store.save_tokens(short_access, None, now)
        short_pair = _access("tk_pair", now, ttl=60, grant_id="grant-1", sub="user-1")
        short_refresh = _refresh("rt_short", short_pair, now, ttl=100)
        await store.save_tokens(short_pair, short_refresh, now)
        long_access, long_refresh = await _pair(store, 1, now, grant_id="grant-2")
        rotated_access = _access("tk_rotated", now, ttl=100, grant_id="grant-3")
        rotated = _refresh("rt_rotated", rotated_access, now, ttl=100, grant_id="grant-3")
        await store.save_tokens(rotated_access, rotated, now)
        await store.take_refresh_token(rotated.token_hash, now)
        await store.claim_once("lock:short", now + 60, now)
        await store.claim_once("lock:long", now + 600, now)
        await store.hit("counter", 60, now - now % 60)

        purged = await store.purge_expired(now + 100)

        assert (purged.codes, purged.access_tokens, purged.refresh_tokens) == (2, 3, 1)
        assert (purged.reuse_markers, purged.other) == (1, 2)
        taken = await store.take_code(long_code.code_hash, now + 100, remember_until=now + 700)
        assert taken == long_code
        assert await store.get_access_token(long_access.token_hash, now + 100) == long_access
        assert await store.get_refresh_token(long_refresh.token_hash, now + 100) == long_refresh
        assert await store.claim_once("lock:long", now + 600, now + 100) is False

    async def test_purge_in_small_batches_removes_everything_expired(
        self, store: Store, now: int
    ) -> None:
        for n in range(7):
            await store.save_tokens(_access(f"tk_batch_{n}", now, ttl=10), None, now)
        purged = await store.purge_expired(now + 10, batch_size=2)
        assert purged.access_tokens == 7
        assert (await store.purge_expired(now + 10, batch_size=2)).total == 0

    async def test_purge_of_an_empty_store_removes_nothing(self, store: Store, now: int) -> None:
        assert (await store.purge_expired(now)).total == 0

    async def test_purge_keeps_tombstones_and_reuse_markers_while_live(
        self, store: Store, now: int
    ) -> None:
        code = _code("ac_kept", now + 60)
        await store.save_code(code, now)
        await store.take_code(code.code_hash, now, remember_until=now + 900)
        _, refresh = await _pair(store, 1, now)
        await store.take_refresh_token(refresh.token_hash, now)
        await store.purge_expired(now + 60)
        tombstone = await store.take_code(code.code_hash, now + 60, remember_until=now + 900)
        assert isinstance(tombstone, ConsumedCode)
        assert isinstance(await store.take_refresh_token(refresh.token_hash, now + 60), Reused)

    async def test_counts_report_live_records(self, store: Store, now: int) -> None:
        alice = await store.create_user(_user("alice"))
        await store.create_user(_user("bob"))
        await store.create_group(_group("staff", alice.id))
        await store.save_code(_code("ac_live", now + 600), now)
        await store.save_code(_code("ac_dead", now + 10), now)
        await _pair(store, 1, now)
        await store.save_tokens(_access("tk_dead", now, ttl=10), None, now)
        counts = await store.counts(now + 10)
        assert (counts.users, counts.groups, counts.codes) == (2, 1, 1)
        assert (counts.access_tokens, counts.refresh_tokens) == (1, 1)

    async def test_counts_include_revoked_tokens_but_no_tombstones_or_markers(
        self, store: Store, now: int
    ) -> None:
        revoked = _access("tk_counted", now)
        await store.save_tokens(revoked, None, now)
        await store.revoke_access_token(revoked.token_hash, now)
        _, rotated = await _pair(store, 1, now)
        await store.take_refresh_token(rotated.token_hash, now)
        code = _code("ac_counted", now + 600)
        await store.save_code(code, now)
        await store.take_code(code.code_hash, now, remember_until=now + 600)
        counts = await store.counts(now)
        assert (counts.access_tokens, counts.refresh_tokens, counts.codes) == (2, 0, 0)

    async def test_health_reports_every_component_up(self, store: Store) -> None:
        health = await store.health()
        assert health
        assert all(health.values())

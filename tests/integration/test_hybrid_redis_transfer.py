"""Copying the token state ``hybrid`` keeps in Redis, on one Redis and on a Redis Cluster:
exports over many batches, keys and TTLs of imported records, a whole copy in and out,
and what only Redis has (revoked-grant flags, pointers, outages)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from adapters.hybrid import HybridStore, RedisTokenState, open_hybrid_store, redis_client
from adapters.memory import MemoryStore
from adapters.testing.contract.transfer import drain
from domain.entities import AccessToken, AuthorizationCode, RefreshToken, Reused
from domain.errors import Conflict, StoreUnavailable
from domain.records import Batch, Claim, ConsumedCodeRecord, ReuseMarker
from domain.tokens import hash_token
from domain.transfer import copy_store
from tests.doubles import T0, FakeClock
from tests.services.redis_server import LocalRedis, local_redis, session_redis_url
from tests.transfer_sample import EXPECTED, check_target, seed, snapshot


def _now() -> int:
    # Real time: some tests look at real Redis TTLs.
    return int(time.time())


def _access(name: str, now: int, *, grant_id: str | None = "grant-1", sub: str | None = "u-1",
            ttl: int = 3600, active: bool = True) -> AccessToken:
    return AccessToken(
        token_hash=hash_token(name), token_display=name[:7] + "...", active=active,
        scope="openid", client_id="client-1", exp=now + ttl, iat=now, sub=sub,
        grant_id=grant_id,
    )


def _refresh(name: str, access: AccessToken, now: int, *, grant_id: str = "grant-1",
             ttl: int = 86400) -> RefreshToken:
    return RefreshToken(
        token_hash=hash_token(name), access_token_hash=access.token_hash, exp=now + ttl,
        iat=now, grant_id=grant_id, client_id="client-1", scope="openid", sub=access.sub,
    )


def _code(name: str, exp: int) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=hash_token(name), client_id="client-1", redirect_uri="https://app/cb",
        scope="openid", exp=exp, grant_id=f"grant-{name}", user_id="u-1",
    )


@dataclass
class Target:
    """One Redis (or cluster) and a key prefix of this test's own."""

    cluster: bool
    url: str
    prefix: str
    raw: Redis | RedisCluster
    opened: list[HybridStore]

    async def open(self) -> HybridStore:
        """Another instance of the service on the same Redis and prefix."""
        store = await open_hybrid_store(self.url, key_prefix=self.prefix)
        assert (await store.health())["redis"]
        self.opened.append(store)
        return store

    def key(self, kind: str, name: str, grant_id: str | None = None) -> str:
        """A record's key: in the cluster, a grant's records carry its tag and a code its own."""
        if not self.cluster:
            return f"{self.prefix}{kind}:{name}"
        if kind in ("c", "cx"):
            return f"{self.prefix}{kind}:{{{name}}}"
        if grant_id is not None:
            return f"{self.prefix}{kind}:{{g:{grant_id}}}{name}"
        return f"{self.prefix}{kind}:{name}"

    def grant_set(self, grant_id: str) -> str:
        return self.key("g", "", grant_id) if self.cluster else f"{self.prefix}g:{grant_id}"

    async def ttls(self) -> dict[bytes, int]:
        return {key: await self.raw.ttl(key)
                async for key in self.raw.scan_iter(match=self.prefix + "*")}


@asynccontextmanager
async def _target(cluster: bool, url: str) -> AsyncIterator[Target]:
    raw: Redis | RedisCluster
    if cluster:
        raw = RedisCluster.from_url(url)
        await raw.initialize()
    else:
        raw = Redis.from_url(url)
    opened: list[HybridStore] = []
    try:
        yield Target(cluster, url, f"xf:{uuid.uuid4().hex[:12]}:", raw, opened)
    finally:
        for store in opened:
            await store.close()
        await raw.aclose()


@pytest.fixture(params=[
    pytest.param(False, marks=pytest.mark.redis, id="redis"),
    pytest.param(True, marks=pytest.mark.redis_cluster, id="redis_cluster"),
])
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    """One Redis, then a Redis Cluster."""
    cluster = bool(request.param)
    url = request.getfixturevalue("redis_cluster_url") if cluster else session_redis_url()
    async with _target(cluster, url) as found:
        yield found


@pytest.fixture
async def one_redis() -> AsyncIterator[Target]:
    async with _target(False, session_redis_url()) as found:
        yield found


@pytest.fixture
async def cluster(redis_cluster_url: str) -> AsyncIterator[Target]:
    async with _target(True, redis_cluster_url) as found:
        yield found


Export = Callable[[str | None, int, int], Awaitable[Batch[Any]]]


async def _batches(export: Export, now: int, limit: int, cursor: str | None = None,
                   count: int | None = None) -> tuple[list[Batch[Any]], str | None]:
    """``count`` batches (all, when None) from ``cursor`` on, and the cursor after them."""
    batches: list[Batch[Any]] = []
    while count is None or len(batches) < count:
        batch = await export(cursor, limit, now)
        assert len(batch.records) <= limit
        batches.append(batch)
        cursor = batch.cursor
        if cursor is None:
            break
    return batches, cursor


# Exports over many batches


async def test_an_export_returns_each_record_once_even_when_another_instance_goes_on(
    target: Target,
) -> None:
    a, b = await target.open(), await target.open()
    now = _now()
    tokens = [
        _access(f"tk_{i}", now, grant_id=f"grant-{i % 20}" if i < 40 else None,
                sub=f"u-{i % 7}" if i % 3 else None)
        for i in range(60)
    ]
    for token in tokens:
        await a.save_tokens(token, None, now)
    for token in tokens[:10]:
        await a.revoke_access_token(token.token_hash, now)
    expected = sorted(
        [msgspec.structs.replace(t, active=False) for t in tokens[:10]] + tokens[10:],
        key=lambda t: t.token_hash,
    )

    whole, _ = await _batches(a.export_access_tokens, now, 7)
    records = [r for batch in whole for r in batch.records]
    assert sorted(records, key=lambda t: t.token_hash) == expected  # each once
    assert len(whole) <= len(tokens) // 7 + 2

    # Two batches here, the rest from another instance (which holds no snapshot of the
    # pass): still each record once.
    first, cursor = await _batches(a.export_access_tokens, now, 7, count=2)
    assert cursor is not None
    rest, _ = await _batches(b.export_access_tokens, now, 7, cursor)
    records = [r for batch in first + rest for r in batch.records]
    assert sorted(records, key=lambda t: t.token_hash) == expected


async def test_records_that_go_during_a_pass_are_left_out_and_the_others_come_once(
    target: Target,
) -> None:
    store = await target.open()
    now = _now()
    codes = [_code(f"ac_{i}", now + 600) for i in range(30)]
    for code in codes:
        await store.save_code(code, now)
    first, cursor = await _batches(store.export_codes, now, 5, count=1)
    seen = {code.code_hash for code in first[0].records}
    taken = [code for code in codes if code.code_hash not in seen][:10]
    for code in taken:
        await store.take_code(code.code_hash, now, remember_until=now + 60)
    for i in range(10):
        await store.save_code(_code(f"ac_new_{i}", now + 600), now)
    rest, _ = await _batches(store.export_codes, now, 5, cursor)
    hashes = [code.code_hash for batch in first + rest for code in batch.records]
    assert len(hashes) == len(set(hashes))
    throughout = {code.code_hash for code in codes} - {code.code_hash for code in taken}
    assert throughout <= set(hashes)
    assert not {code.code_hash for code in taken} & set(hashes)


# Imports: keys, TTLs, indexes


async def test_imported_records_get_keys_that_live_as_long_as_they_do(target: Target) -> None:
    store = await target.open()
    now = _now()
    access = _access("tk_i", now, ttl=300, grant_id="grant-i", sub="u-i")
    client = _access("tk_cc", now, ttl=600, grant_id=None, sub=None)
    refresh = _refresh("rt_i", access, now, grant_id="grant-i", ttl=7200)
    rotated = ReuseMarker(token_hash=hash_token("rt_r"), grant_id="grant-r", exp=now + 3600)
    code = _code("ac_i", now + 600)
    tomb = ConsumedCodeRecord(code_hash=hash_token("ac_x"), grant_id="grant-x",
                              client_id="client-1", exp=now + 900)
    assert await store.import_access_tokens((access, client), now) == 2
    assert await store.import_refresh_tokens((refresh,), now) == 1
    assert await store.import_reuse_markers((rotated,), now) == 1
    assert await store.import_codes((code,), now) == 1
    assert await store.import_consumed_codes((tomb,), now) == 1
    assert await store.import_claims((Claim(key="totp:u-i:1", exp=now + 90),), now) == 1

    raw = target.raw
    assert 295 <= await raw.ttl(target.key("t", access.token_hash, "grant-i")) <= 300
    assert 595 <= await raw.ttl(target.key("t", client.token_hash)) <= 600
    assert 7195 <= await raw.ttl(target.key("r", refresh.token_hash, "grant-i")) <= 7200
    assert 3595 <= await raw.ttl(target.key("ru", rotated.token_hash, "grant-r")) <= 3600
    assert 595 <= await raw.ttl(target.key("c", code.code_hash)) <= 600
    assert 895 <= await raw.ttl(target.key("cx", tomb.code_hash)) <= 900
    assert 85 <= await raw.ttl(f"{target.prefix}o:totp:u-i:1") <= 90
    # Index sets outlive every member they list; so do a cluster's pointers.
    assert await raw.ttl(target.grant_set("grant-i")) >= 7195
    assert await raw.ttl(f"{target.prefix}s:u-i") >= 7195
    ttls = await target.ttls()
    assert ttls and all(ttl > 0 for ttl in ttls.values()), ttls
    if target.cluster:
        assert await raw.get(f"{target.prefix}r:{rotated.token_hash}") == b"@grant-r"
        assert await raw.ttl(f"{target.prefix}r:{rotated.token_hash}") >= 3595

    # Another instance finds them (by pointer on a cluster) and revokes them by index.
    other = await target.open()
    assert await other.get_access_token(access.token_hash, now) == access
    assert await other.take_refresh_token(rotated.token_hash, now) == Reused("grant-r")
    assert await other.revoke_subject("u-i", now) == 2
    assert await other.get_refresh_token(refresh.token_hash, now) is None


async def test_an_import_never_revives_a_grant_revoked_here(target: Target) -> None:
    store = await target.open()
    now = _now()
    # Revoked before any token of it arrived (a code replay, say): the grant is flagged.
    await store.revoke_grant("grant-gone", now)
    access = _access("tk_late", now, grant_id="grant-gone")
    refresh = _refresh("rt_late", access, now, grant_id="grant-gone")
    assert await store.import_access_tokens((access,), now) == 1
    stored = await store.get_access_token(access.token_hash, now)
    assert stored == msgspec.structs.replace(access, active=False)
    assert await store.import_access_tokens((access,), now) == 0
    assert await store.import_refresh_tokens((refresh,), now) == 0
    assert await store.get_refresh_token(refresh.token_hash, now) is None


# A whole copy


async def test_a_copy_into_redis_and_out_again_is_exact_and_a_rerun_writes_nothing(
    target: Target,
) -> None:
    clock = FakeClock(T0)
    source = MemoryStore()
    await seed(source, T0)
    hybrid = await target.open()
    report = await copy_store(source, hybrid, clock, batch_size=2)
    assert {part.name: part.read for part in report.parts} == EXPECTED
    assert report.written == sum(EXPECTED.values())
    assert await snapshot(hybrid, T0) == await snapshot(source, T0)

    again = await copy_store(source, hybrid, clock, batch_size=2)
    assert again.written == 0

    back = MemoryStore()
    await copy_store(hybrid, back, clock, batch_size=3)
    assert await snapshot(back, T0) == await snapshot(source, T0)
    await check_target(hybrid, T0)


@pytest.mark.redis
@pytest.mark.redis_cluster
async def test_a_copy_from_one_redis_to_a_redis_cluster(redis_cluster_url: str) -> None:
    clock = FakeClock(T0)
    source = await open_hybrid_store(session_redis_url(), key_prefix=f"xf:{uuid.uuid4().hex}:")
    cluster = await open_hybrid_store(redis_cluster_url, key_prefix=f"xf:{uuid.uuid4().hex}:")
    try:
        await seed(source, T0)
        report = await copy_store(source, cluster, clock, batch_size=2)
        assert {part.name: part.read for part in report.parts} == EXPECTED
        assert await snapshot(cluster, T0) == await snapshot(source, T0)
        await check_target(cluster, T0)
    finally:
        await source.close()
        await cluster.close()


# What only Redis has


@pytest.mark.redis
async def test_an_import_on_one_redis_is_one_script(one_redis: Target) -> None:
    target = one_redis
    store = await target.open()
    now = _now()
    tokens = tuple(_access(f"tk_{i}", now, grant_id=f"grant-{i}") for i in range(50))

    async def scripts_run() -> int:
        stats = await target.raw.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))

    before = await scripts_run()
    assert await store.import_access_tokens(tokens, now) == 50
    # One script: the batch is written at once, never half of it seen by another client.
    assert await scripts_run() - before == 1


@pytest.mark.redis_cluster
async def test_a_token_held_under_another_grant_is_refused_before_anything_is_written(
    cluster: Target,
) -> None:
    store = await cluster.open()
    now = _now()
    held = _access("tk_held", now, grant_id="grant-a")
    await store.save_tokens(held, None, now)
    fresh = _access("tk_fresh", now, grant_id="grant-b")
    moved = msgspec.structs.replace(held, grant_id="grant-c")
    with pytest.raises(Conflict):
        await store.import_access_tokens((fresh, moved), now)
    assert await store.get_access_token(fresh.token_hash, now) is None
    assert await store.get_access_token(held.token_hash, now) == held
    refresh = _refresh("rt_held", held, now, grant_id="grant-a")
    await store.save_tokens(_access("tk_other", now, grant_id="grant-a"), refresh, now)
    marker = ReuseMarker(token_hash=refresh.token_hash, grant_id="grant-z", exp=refresh.exp)
    with pytest.raises(Conflict):
        await store.import_reuse_markers((marker,), now)
    assert await store.get_refresh_token(refresh.token_hash, now) == refresh


@pytest.fixture
def own_redis() -> Iterator[LocalRedis]:
    server = local_redis()
    server.start()
    yield server
    server.cleanup()


@pytest.mark.redis
async def test_a_transfer_during_an_outage_is_refused_not_served_from_memory(
    own_redis: LocalRedis,
) -> None:
    now = _now()
    store = HybridStore(RedisTokenState(redis_client(own_redis.url), "as:"), retry_after=0)
    try:
        token = _access("tk_before", now)
        await store.save_tokens(token, None, now)
        assert await drain(store.export_access_tokens, now) == [token]
        own_redis.stop()
        # This instance's memory holds the token too, but only Redis holds them all.
        with pytest.raises(StoreUnavailable):
            await store.export_access_tokens(None, 10, now)
        with pytest.raises(StoreUnavailable):
            await store.import_access_tokens((_access("tk_during", now),), now)
        assert await store.export_users(None, 10, now) == Batch(records=(), cursor=None)
    finally:
        await store.close()

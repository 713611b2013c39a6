"""``hybrid`` on a Redis Cluster (3 masters, 3 replicas): detection, slots, TTLs, races
between instances, the hot read, a master failover under load, and an outage."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sized
from pathlib import Path
from typing import TypeVar

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from adapters.hybrid import (
    ClusterTokenState,
    HybridStore,
    cluster_client,
    open_hybrid_store,
    scripts,
)
from domain.device import DeviceDecision, PollApproved, PollExpired
from domain.entities import (
    AccessToken,
    AuthorizationCode,
    ConsumedCode,
    RefreshToken,
    Reused,
    Taken,
    Unknown,
)
from domain.errors import StoreUnavailable
from domain.sessions import SessionGrant
from tests.e2e.conftest import StoreBackend
from tests.e2e.oauth_setup import FORM, basic, build_app, exchange, introspect, running
from tests.integration.token_records import access as _access
from tests.integration.token_records import account_token as _link
from tests.integration.token_records import code as _code
from tests.integration.token_records import device as _device
from tests.integration.token_records import now as _now
from tests.integration.token_records import refresh as _refresh
from tests.integration.token_records import session as _session
from tests.services.redis_cluster import LocalRedisCluster, local_redis_cluster

pytestmark = pytest.mark.redis_cluster

STORE_LOGGER = "adapters.hybrid.store"
RACERS = 50

_T = TypeVar("_T")


@pytest.fixture
def prefix() -> str:
    return f"cl:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def raw(redis_cluster_url: str) -> AsyncIterator[RedisCluster]:
    """A plain cluster client, to look at keys, slots and nodes."""
    client = RedisCluster.from_url(redis_cluster_url)
    await client.initialize()
    yield client
    await client.aclose()


@pytest.fixture
async def two_stores(
    redis_cluster_url: str, prefix: str,
) -> AsyncIterator[tuple[HybridStore, HybridStore]]:
    """Two instances of the service on one cluster."""
    first = await open_hybrid_store(redis_cluster_url, key_prefix=prefix)
    second = await open_hybrid_store(redis_cluster_url, key_prefix=prefix)
    yield first, second
    await first.close()
    await second.close()


async def _keys(raw: RedisCluster, prefix: str) -> list[bytes]:
    return [key async for key in raw.scan_iter(match=prefix + "*")]


async def _gets_on_masters(raw: RedisCluster) -> int:
    total = 0
    for node in raw.get_primaries():
        stats = await raw.info("commandstats", target_nodes=node)
        total += stats.get("cmdstat_get", {}).get("calls", 0)
    return total


async def _reset_stats(raw: RedisCluster) -> None:
    await raw.config_resetstat(target_nodes=RedisCluster.PRIMARIES)


# Detection and layout


async def test_a_cluster_is_found_on_connect_and_a_grant_lives_in_one_slot(
    two_stores: tuple[HybridStore, HybridStore], raw: RedisCluster, prefix: str,
) -> None:
    a, _ = two_stores
    now = _now()
    access = _access("tk_layout", now, grant_id="grant-layout")
    refresh = _refresh("rt_layout", access, now)
    await a.save_tokens(access, refresh, now)
    tagged = {key for key in await _keys(raw, prefix) if b"{g:grant-layout}" in key}
    await a.take_refresh_token(refresh.token_hash, now)
    tagged |= {key for key in await _keys(raw, prefix) if b"{g:grant-layout}" in key}
    # The records, the reuse marker and the index set: all of the family, in one slot.
    kinds = {key[len(prefix):].split(b":")[0] for key in tagged}
    assert kinds == {b"t", b"r", b"ru", b"g"}, tagged
    assert len({raw.keyslot(key) for key in tagged}) == 1


async def test_device_authorizations_live_in_one_slot_and_an_approval_is_polled_once(
    two_stores: tuple[HybridStore, HybridStore], raw: RedisCluster, prefix: str,
) -> None:
    a, b = two_stores
    now = _now()
    for n in range(10):
        assert await a.save_device_authorization(_device(f"slot{n}", now), now)
    keys = await _keys(raw, prefix)
    kinds = {key[len(prefix):].split(b":")[0] for key in keys}
    assert kinds == {b"dv", b"dvu", b"dvs", b"dve"}, keys
    # Records, pointers and indexes: one slot, so each call is one script with all of them.
    assert len({raw.keyslot(key) for key in keys}) == 1
    approved = _device("slot0", now)
    decision = DeviceDecision(status="approved", user_id="user-1")
    assert await b.decide_device_authorization(approved.user_code_hash, decision, now)
    polls = await asyncio.gather(*(
        (a if n % 2 else b).poll_device_authorization(approved.device_code_hash, now + 1)
        for n in range(RACERS)))
    assert sum(isinstance(poll, PollApproved) for poll in polls) == 1
    assert all(isinstance(poll, PollApproved | PollExpired) for poll in polls)
    assert await a.find_device_authorization(approved.user_code_hash, now + 1) is None


async def test_account_tokens_live_in_one_slot_and_a_link_is_taken_once(
    two_stores: tuple[HybridStore, HybridStore], raw: RedisCluster, prefix: str,
) -> None:
    a, b = two_stores
    now = _now()
    for n in range(10):
        await a.save_account_token(_link(f"slot{n}", now, user_id=f"user-{n % 3}"), now)
    keys = await _keys(raw, prefix)
    kinds = {key[len(prefix):].split(b":")[0] for key in keys}
    assert kinds == {b"at", b"atu", b"ats", b"ate"}, keys
    # Tokens and every user's index: one slot, so a take and a revoke are one script each.
    assert len({raw.keyslot(key) for key in keys}) == 1
    link = _link("slot0", now, user_id="user-0")
    takes = await asyncio.gather(*(
        (a if n % 2 else b).take_account_token("password_reset", link.token_hash, now)
        for n in range(RACERS)))
    assert [take for take in takes if take is not None] == [link]
    assert await b.revoke_account_tokens("user-1", "password_reset", now) == 3
    assert (await a.counts(now)).account_tokens == 6


async def test_grants_spread_over_every_master(
    two_stores: tuple[HybridStore, HybridStore], raw: RedisCluster, prefix: str,
) -> None:
    a, _ = two_stores
    now = _now()
    for n in range(30):
        access = _access(f"tk_spread_{n}", now, grant_id=f"grant-spread-{n}")
        await a.save_tokens(access, _refresh(f"rt_spread_{n}", access, now), now)
    slots = {raw.keyslot(key) for key in await _keys(raw, prefix) if b"{g:" in key}
    masters = {raw.nodes_manager.get_node_from_slot(slot).name for slot in slots}
    assert len(masters) == 3


async def test_a_sessions_keys_share_a_slot_a_users_consents_another_and_sessions_spread(
    two_stores: tuple[HybridStore, HybridStore], raw: RedisCluster, prefix: str,
) -> None:
    a, b = two_stores
    now = _now()
    sessions = [_session(f"ses_spread_{n}", now) for n in range(30)]
    for n, session in enumerate(sessions):
        await a.create_session(session, now)
        await b.add_session_grant(session.id_hash, SessionGrant("app", f"gr_{n}"), now + 900,
                                  now)
    await a.grant_consent("user-1", "app", ("openid",), now)
    await b.record_consent_grant("user-1", "app", "gr_0", now + 3600, now)
    keys = await _keys(raw, prefix)
    slots = set()
    for session in sessions:
        tagged = [key for key in keys if b"{" + session.id_hash.encode() + b"}" in key]
        # The row and the grants of one session: one slot, where its scripts run.
        assert {key[len(prefix):].split(b":")[0] for key in tagged} == {b"se", b"sg"}
        assert len({raw.keyslot(key) for key in tagged}) == 1
        slots.add(raw.keyslot(tagged[0]))
    masters = {raw.nodes_manager.get_node_from_slot(slot).name for slot in slots}
    assert len(masters) == 3
    consent_keys = [key for key in keys if b"{user-1}" in key]
    assert {key[len(prefix):].split(b":")[0] for key in consent_keys} == {b"cn", b"cg"}
    assert len({raw.keyslot(key) for key in consent_keys}) == 1


async def test_every_key_has_a_ttl_after_a_full_workflow(
    two_stores: tuple[HybridStore, HybridStore], raw: RedisCluster, prefix: str,
) -> None:
    a, b = two_stores
    now = _now()
    code = _code("ac_flow", now + 600)
    await a.save_code(code, now)
    await b.take_code(code.code_hash, now, remember_until=now + 600)
    await a.save_code(_code("ac_unused", now + 600), now)
    access = _access("tk_flow", now)
    refresh = _refresh("rt_flow", access, now)
    await a.save_tokens(access, refresh, now)
    await a.save_tokens(_access("tk_cc", now, grant_id=None, sub=None), None, now)
    await a.save_tokens(_access("tk_cc_sub", now, grant_id=None, sub="user-7"), None, now)
    await b.take_refresh_token(refresh.token_hash, now)
    access2 = _access("tk_flow2", now)
    await a.save_tokens(access2, _refresh("rt_flow2", access2, now), now)
    await a.take_refresh_token(refresh.token_hash, now)  # reuse: revokes grant-1
    await a.revoke_grant("grant-never-issued", now)
    await a.save_tokens(_access("tk_subj", now, grant_id="g-s", sub="user-7"), None, now)
    await b.revoke_subject("user-7", now)
    await a.revoke_access_token(access2.token_hash, now)
    await a.claim_once("lock", now + 30, now)
    await a.hit("counter", 60, now)
    await a.save_account_token(_link("flow", now), now)
    await b.save_account_token(_link("flow_taken", now), now)
    await a.take_account_token("password_reset", _link("flow_taken", now).token_hash, now)

    ttls = {key: await raw.ttl(key) for key in await _keys(raw, prefix)}
    kinds = {key[len(prefix):].split(b":")[0] for key in ttls}
    assert {b"c", b"cx", b"t", b"r", b"ru", b"g", b"o", b"h", b"at", b"atu", b"ats",
            b"ate"} <= kinds
    assert ttls and all(ttl > 0 for ttl in ttls.values()), ttls


async def test_keys_live_as_long_as_their_records(
    two_stores: tuple[HybridStore, HybridStore], raw: RedisCluster, prefix: str,
) -> None:
    a, _ = two_stores
    now = _now()
    access = _access("tk_ttl", now, ttl=300)
    refresh = _refresh("rt_ttl", access, now, ttl=7200)
    await a.save_tokens(access, refresh, now)
    tag = "{g:grant-1}"
    for key in (f"{prefix}t:{access.token_hash}", f"{prefix}t:{tag}{access.token_hash}"):
        assert 295 <= await raw.ttl(key) <= 300, key
    for key in (f"{prefix}r:{refresh.token_hash}", f"{prefix}r:{tag}{refresh.token_hash}"):
        assert 7195 <= await raw.ttl(key) <= 7200, key
    assert await raw.ttl(f"{prefix}g:{tag}") >= 7195
    assert await raw.ttl(f"{prefix}s:user-1") >= 7195
    await a.take_refresh_token(refresh.token_hash, now)
    assert 7195 <= await raw.ttl(f"{prefix}ru:{tag}{refresh.token_hash}") <= 7200


# The hot read


async def test_introspection_is_one_get_once_the_grant_is_known(
    two_stores: tuple[HybridStore, HybridStore], raw: RedisCluster,
) -> None:
    a, b = two_stores
    now = _now()
    user_token = _access("tk_hot_user", now)
    service_token = _access("tk_hot_service", now, grant_id=None, sub=None)
    await a.save_tokens(user_token, _refresh("rt_hot_user", user_token, now), now)
    await a.save_tokens(service_token, None, now)
    await a.get_access_token(user_token.token_hash, now)  # warm connections
    await b.get_access_token(service_token.token_hash, now)

    async def gets(store: HybridStore, token: AccessToken) -> int:
        await _reset_stats(raw)
        assert await store.get_access_token(token.token_hash, now) == token
        return await _gets_on_masters(raw)

    assert await gets(a, user_token) == 1  # the issuing instance knows the grant
    assert await gets(b, user_token) == 2  # another instance reads the pointer first...
    assert await gets(b, user_token) == 1  # ... once
    assert await gets(b, service_token) == 1  # no grant: the record is at the hash


# Several instances on one cluster


async def test_revocations_reach_every_instance(
    two_stores: tuple[HybridStore, HybridStore],
) -> None:
    a, b = two_stores
    now = _now()
    single = _access("tk_single", now, grant_id="grant-single")
    await a.save_tokens(single, None, now)
    assert await b.revoke_access_token(single.token_hash, now) is True
    seen = await a.get_access_token(single.token_hash, now)
    assert seen is not None and seen.active is False

    # A subject with two grants and a grant-less token, revoked from the other instance.
    tokens = [_access(f"tk_subject_{n}", now, grant_id=f"grant-subject-{n}", sub="user-9")
              for n in range(2)]
    refreshes = [_refresh(f"rt_subject_{n}", tokens[n], now) for n in range(2)]
    for access, refresh in zip(tokens, refreshes, strict=True):
        await a.save_tokens(access, refresh, now)
    loose = _access("tk_subject_loose", now, grant_id=None, sub="user-9")
    other = _access("tk_subject_other", now, grant_id="grant-other", sub="user-8")
    await a.save_tokens(loose, None, now)
    await a.save_tokens(other, None, now)
    assert await b.revoke_subject("user-9", now) == 5
    for access in (*tokens, loose):
        revoked = await a.get_access_token(access.token_hash, now)
        assert revoked is not None and revoked.active is False
    for refresh in refreshes:
        assert await a.get_refresh_token(refresh.token_hash, now) is None
    assert await a.get_access_token(other.token_hash, now) == other


async def test_a_pair_saved_after_its_grant_was_revoked_is_stored_revoked(
    two_stores: tuple[HybridStore, HybridStore],
) -> None:
    a, b = two_stores
    now = _now()
    access = _access("tk_first", now)
    refresh = _refresh("rt_first", access, now)
    await a.save_tokens(access, refresh, now)
    assert isinstance(await a.take_refresh_token(refresh.token_hash, now), Taken)
    assert isinstance(await b.take_refresh_token(refresh.token_hash, now), Reused)
    late_access = _access("tk_late", now)
    late_refresh = _refresh("rt_late", late_access, now)
    await a.save_tokens(late_access, late_refresh, now)
    for store in (a, b):
        late = await store.get_access_token(late_access.token_hash, now)
        assert late is not None and late.active is False
        assert await store.get_refresh_token(late_refresh.token_hash, now) is None


async def test_a_code_taken_by_50_racers_on_two_instances_has_one_winner(
    two_stores: tuple[HybridStore, HybridStore],
) -> None:
    a, b = two_stores
    now = _now()
    code = _code("ac_race", now + 600)
    await a.save_code(code, now)
    results = await asyncio.gather(
        *((a, b)[n % 2].take_code(code.code_hash, now, remember_until=now + 600)
          for n in range(RACERS))
    )
    assert sum(isinstance(r, AuthorizationCode) for r in results) == 1
    assert sum(isinstance(r, ConsumedCode) for r in results) == RACERS - 1


async def test_a_refresh_token_rotated_by_50_racers_has_one_winner_and_its_family_dies(
    two_stores: tuple[HybridStore, HybridStore],
) -> None:
    a, b = two_stores
    now = _now()
    access = _access("tk_race", now, grant_id="grant-race")
    refresh = _refresh("rt_race", access, now)
    # Saved by a third party: neither racer knows the grant, both read the pointer.
    await a.save_tokens(access, refresh, now)
    results = await asyncio.gather(
        *((a, b)[n % 2].take_refresh_token(refresh.token_hash, now) for n in range(RACERS))
    )
    outcomes = Counter(type(r).__name__ for r in results)
    assert outcomes == {"Taken": 1, "Reused": RACERS - 1}
    # The winner's rotated pair comes too late: the family was revoked by the losers.
    new_access = _access("tk_race_2", now, grant_id="grant-race")
    new_refresh = _refresh("rt_race_2", new_access, now)
    await b.save_tokens(new_access, new_refresh, now)
    stored = await a.get_access_token(new_access.token_hash, now)
    assert stored is not None and stored.active is False
    assert await a.take_refresh_token(new_refresh.token_hash, now) == Unknown()


async def test_a_claim_made_by_50_racers_has_one_winner(
    two_stores: tuple[HybridStore, HybridStore],
) -> None:
    a, b = two_stores
    now = _now()
    results = await asyncio.gather(
        *((a, b)[n % 2].claim_once("totp:user-1:654321", now + 90, now) for n in range(RACERS))
    )
    assert results.count(True) == 1


# A failover under load


async def test_a_script_a_node_lacks_is_loaded_on_every_master(
    two_stores: tuple[HybridStore, HybridStore], raw: RedisCluster,
) -> None:
    """A node without the script (as a promoted replica, which has no script cache)
    answers NOSCRIPT: the script is loaded on every master the client knows, not only where
    its slot map says the key lives (during a failover the map can be behind), and the
    decision is made once."""
    store, other = two_stores
    now = _now()
    code = _code("ac_noscript", now + 600)
    await store.save_code(code, now)
    await raw.execute_command("SCRIPT FLUSH", target_nodes=RedisCluster.ALL_NODES)
    assert await store.take_code(code.code_hash, now, remember_until=now + 600) == code
    sha = hashlib.sha1(scripts.TAKE_CODE.encode()).hexdigest()
    masters = raw.get_primaries()
    assert len(masters) == 3
    for node in masters:
        assert await node.execute_command("SCRIPT EXISTS", sha) == [True], node.name
    again = await other.take_code(code.code_hash, now, remember_until=now + 600)
    assert isinstance(again, ConsumedCode)


async def _replica_and_its_master(raw: RedisCluster) -> tuple[Redis, str]:
    """A replica linked to its master (a client on it), and the master's address."""
    nodes: dict[str, dict[str, str]] = await raw.cluster_nodes()
    for address, node in nodes.items():
        if "slave" not in node["flags"]:
            continue
        host, port = address.split("@")[0].rsplit(":", 1)
        replica = Redis(host=host, port=int(port))
        info = await replica.info("replication")
        if info.get("master_link_status") == "up":
            return replica, f"{info['master_host']}:{info['master_port']}"
        await replica.aclose()
    raise AssertionError("no replica is linked to its master")


def _more_than(
    seen: Sized | Counter[str], floor: int, key: str | None = None,
) -> Callable[[], Awaitable[bool]]:
    """A condition for :func:`_wait_until`: ``seen`` (or its count of ``key``) passed
    ``floor``."""

    async def passed() -> bool:
        if key is not None:
            assert isinstance(seen, Counter)
            return seen[key] > floor
        return len(seen) > floor

    return passed


async def _wait_until(condition: Callable[[], Awaitable[bool]]) -> None:
    # Polling: a change of role is seen only by asking the node.
    async with asyncio.timeout(20):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_a_master_failover_under_load_loses_nothing_and_redeems_nothing_twice(
    redis_cluster_url: str, raw: RedisCluster, prefix: str,
) -> None:
    """Two instances redeem codes and race for refresh tokens (both present each one at
    once), rotate token chains and issue tokens, while one master hands over to its
    replica (``CLUSTER FAILOVER``). A refused request (503) is retried, as a client would."""
    stores = (
        await open_hybrid_store(redis_cluster_url, key_prefix=prefix),
        await open_hybrid_store(redis_cluster_url, key_prefix=prefix),
    )
    now = _now()
    codes = [_code(f"ac_fo_{n}", now + 600, grant_id=f"grant-fo-c{n}") for n in range(150)]
    for code in codes:
        await stores[0].save_code(code, now)
    contested: list[RefreshToken] = []
    chains: list[RefreshToken] = []
    for n in range(120):
        access = _access(f"tk_fo_{n}_0", now, grant_id=f"grant-fo-{n}")
        refresh = _refresh(f"rt_fo_{n}_0", access, now)
        await stores[0].save_tokens(access, refresh, now)
        (contested if n % 2 else chains).append(refresh)

    redeemed: Counter[str] = Counter()
    taken: Counter[str] = Counter()
    issued: list[AccessToken] = []
    alive: dict[int, RefreshToken] = {}
    stop = asyncio.Event()
    # Redemptions and contests are spread over the run, so that many meet the failover.
    spread = 0.9
    answered_after_failover = Counter[str]()
    failover_at = [float("inf")]

    never = asyncio.Event()

    async def until_answered(
        call: Callable[[], Awaitable[_T]], until: asyncio.Event = stop
    ) -> _T | None:
        while not until.is_set():
            try:
                return await call()
            except StoreUnavailable:
                await asyncio.sleep(0.02)
        return None

    async def redeem(n: int, code: AuthorizationCode, store: HybridStore) -> None:
        await asyncio.sleep(spread * n / len(codes))
        result = await until_answered(
            lambda: store.take_code(code.code_hash, now, remember_until=now + 600), never)
        if isinstance(result, AuthorizationCode):
            redeemed[code.code_hash] += 1
        if time.monotonic() > failover_at[0]:
            answered_after_failover["take_code"] += 1

    async def contest(n: int, token: RefreshToken, store: HybridStore) -> None:
        await asyncio.sleep(spread * n / len(contested))
        result = await until_answered(
            lambda: store.take_refresh_token(token.token_hash, now), never)
        if isinstance(result, Taken):
            taken[token.token_hash] += 1
        if time.monotonic() > failover_at[0]:
            answered_after_failover["take_refresh_token"] += 1

    async def rotate(n: int, token: RefreshToken) -> None:
        generation = 0
        while not stop.is_set():
            store = stores[generation % 2]
            result = await until_answered(
                lambda: store.take_refresh_token(token.token_hash, now))  # noqa: B023
            if not isinstance(result, Taken):
                # Stopped; or a take whose answer was lost, retried and found used:
                # the family is revoked (fail closed), the chain ends.
                alive.pop(n, None)
                return
            taken[token.token_hash] += 1
            generation += 1
            access = _access(f"tk_fo_{n}_{generation}", now, grant_id=token.grant_id)
            token = _refresh(f"rt_fo_{n}_{generation}", access, now)
            await store.save_tokens(access, token, now)
            alive[n] = token
            await asyncio.sleep(0.01)

    async def issue(worker: int) -> None:
        n = 0
        while not stop.is_set():
            token = _access(f"tk_fo_issue_{worker}_{n}", now, grant_id=f"grant-fo-i{worker}-{n}")
            await stores[n % 2].save_tokens(token, None, now)
            issued.append(token)
            n += 1
            await asyncio.sleep(0.005)

    replica, old_master = await _replica_and_its_master(raw)
    # Rotation and issuance first; the failover waits until they run (not a fixed time:
    # on a busy machine the first calls can take long), and redemptions and contests start
    # just before it, spread across it.
    load = [asyncio.create_task(rotate(n, token)) for n, token in enumerate(chains)]
    load += [asyncio.create_task(issue(w)) for w in range(4)]
    try:
        await _wait_until(_more_than(issued, 0))
        load += [asyncio.create_task(redeem(n, code, store))
                 for n, code in enumerate(codes) for store in stores]
        load += [asyncio.create_task(contest(n, token, store))
                 for n, token in enumerate(contested) for store in stores]
        await asyncio.sleep(0.3)
        before = len(issued)
        failover_at[0] = time.monotonic()
        await replica.execute_command("CLUSTER FAILOVER")

        async def promoted() -> bool:
            return bool((await replica.info("replication"))["role"] == "master")

        await _wait_until(promoted)
        # Load keeps running on the promoted master: more tokens issued, and redemptions
        # and contests answered after the failover began.
        await _wait_until(_more_than(issued, before))
        await _wait_until(_more_than(answered_after_failover, 0, "take_code"))
        await _wait_until(_more_than(answered_after_failover, 0, "take_refresh_token"))
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*load)
        await _wait_until(lambda: _is_linked_replica(old_master))
        await replica.aclose()

    try:
        assert max(redeemed.values()) == 1 and max(taken.values()) == 1
        assert len(redeemed) == len(codes), "a code was not redeemed at all"
        for store in stores:
            assert (await store.health())["redis"] is True  # replays anything queued
        checker = await open_hybrid_store(redis_cluster_url, key_prefix=prefix)
        try:
            for reader in (checker, *stores):  # a fresh slot map, and ones from before
                lost = [t for t in issued if await reader.get_access_token(t.token_hash, now) != t]
                assert not lost, f"{len(lost)} of {len(issued)} issued tokens lost"
            for token in alive.values():
                assert await checker.get_refresh_token(token.token_hash, now) == token
        finally:
            await checker.close()
    finally:
        for store in stores:
            await store.close()


async def _is_linked_replica(address: str) -> bool:
    host, port = address.split(":")
    node = Redis(host=host, port=int(port))
    try:
        info = await node.info("replication")
    finally:
        await node.aclose()
    return bool(info["role"] == "slave" and info.get("master_link_status") == "up")


# Outages, readiness and the HTTP surface


@pytest.fixture
def own_cluster() -> Iterator[LocalRedisCluster]:
    """A cluster of this test's own, which it may stop and start (keeping its data)."""
    cluster = local_redis_cluster(appendonly=True)
    cluster.start()
    yield cluster
    cluster.cleanup()


async def test_a_cluster_outage_refuses_decisions_keeps_revocations_and_recovers(
    own_cluster: LocalRedisCluster, caplog: pytest.LogCaptureFixture,
) -> None:
    now = _now()
    # No back-off: every call below really tries the cluster (and reloads its layout).
    store = HybridStore(ClusterTokenState(cluster_client(own_cluster.url), "as:"), retry_after=0)
    other = await open_hybrid_store(own_cluster.url)
    try:
        code = _code("ac_out", now + 600)
        access = _access("tk_out", now)
        refresh = _refresh("rt_out", access, now)
        await store.save_code(code, now)
        await store.save_tokens(access, refresh, now)

        own_cluster.stop()
        with caplog.at_level(logging.WARNING, logger=STORE_LOGGER):
            assert await store.health() == {"store": True, "redis": False}
            for refused in (
                store.take_code(code.code_hash, now, remember_until=now + 600),
                store.take_refresh_token(refresh.token_hash, now),
                store.claim_once("totp:user-1:111111", now + 90, now),
                store.hit("signin:user:bob", 60, now),
            ):
                with pytest.raises(StoreUnavailable):
                    await refused
            assert await store.get_access_token(access.token_hash, now) == access
            assert await store.revoke_access_token(access.token_hash, now) is True
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1

        own_cluster.start()
        assert await store.health() == {"store": True, "redis": True}
        seen = await other.get_access_token(access.token_hash, now)
        assert seen is not None and seen.active is False
        assert await other.take_code(code.code_hash, now, remember_until=now + 600) == code
        assert await other.take_refresh_token(refresh.token_hash, now) == Taken(refresh)
    finally:
        await store.close()
        await other.close()


async def test_sessions_and_consents_fail_closed_during_a_cluster_outage(
    own_cluster: LocalRedisCluster,
) -> None:
    now = _now()
    store = HybridStore(ClusterTokenState(cluster_client(own_cluster.url), "as:"), retry_after=0)
    other = await open_hybrid_store(own_cluster.url)
    try:
        session = _session("ses_out", now)
        await store.create_session(session, now)
        await store.grant_consent("user-1", "app", ("openid",), now)
        own_cluster.stop()
        for refused in (
            store.get_session(session.id_hash, now),
            store.add_session_grant(session.id_hash, SessionGrant("app", "gr_1"), now + 900,
                                    now),
            store.end_user_sessions("user-1", now),
            store.get_consent("user-1", "app"),
            store.record_consent_grant("user-1", "app", "gr_1", now + 900, now),
            store.withdraw_consent("user-1", "app", now),
        ):
            with pytest.raises(StoreUnavailable):
                await refused
        own_cluster.start()
        assert await store.health() == {"store": True, "redis": True}
        assert await other.get_session(session.id_hash, now) == session
        withdrawn = await other.withdraw_consent("user-1", "app", now)
        assert withdrawn is not None and withdrawn.grants == ()
    finally:
        await store.close()
        await other.close()


async def test_a_cluster_down_at_start_up_is_found_when_it_answers(
    own_cluster: LocalRedisCluster,
) -> None:
    own_cluster.stop()
    now = _now()
    store = await open_hybrid_store(own_cluster.url, key_prefix="late:")
    try:
        assert await store.health() == {"store": True, "redis": False}
        own_cluster.start()
        assert await store.health() == {"store": True, "redis": True}
        access = _access("tk_late_start", now, grant_id="grant-late")
        await store.save_tokens(access, None, now)
        raw = RedisCluster.from_url(own_cluster.url)
        try:
            # The cluster layout: the record carries its grant's hash tag.
            assert await raw.exists(f"late:t:{{g:grant-late}}{access.token_hash}") == 1
        finally:
            await raw.aclose()
    finally:
        await store.close()


@pytest.mark.parametrize("env", [{}, {"REDIS_CLUSTER": "1"}], ids=["detected", "forced"])
def test_the_service_runs_on_a_cluster(
    redis_cluster_url: str, tmp_path: Path, env: dict[str, str],
) -> None:
    backend = StoreBackend(
        "hybrid", env={"STORE_BACKEND": "hybrid", "REDIS_URL": redis_cluster_url, **env}
    )
    app = build_app(backend, tmp_path)
    with running(app) as client:
        assert client.get("/health/ready").status_code == 200
        first = exchange(client, app)
        second = client.post("/oauth/token", headers={**FORM, **basic()}, data={
            "grant_type": "refresh_token", "refresh_token": first["refresh_token"],
        })
        assert second.status_code == 200, second.text
        assert introspect(client, first["access_token"]) == {"active": False}
        assert introspect(client, second.json()["access_token"])["active"] is True
        replay = client.post("/oauth/token", headers={**FORM, **basic()}, data={
            "grant_type": "refresh_token", "refresh_token": first["refresh_token"],
        })
        assert replay.status_code == 400
        assert introspect(client, second.json()["access_token"]) == {"active": False}

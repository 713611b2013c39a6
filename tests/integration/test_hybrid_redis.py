"""``hybrid`` against a real Redis: sharing between instances, TTLs, restarts and outages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from adapters.hybrid import (
    HybridStore,
    RedisTokenState,
    open_hybrid_store,
    redis_client,
)
from domain.clients import Client, InitialAccessToken
from domain.consent import Consent, ConsentGrant, ConsentRecord
from domain.device import (
    SLOW_DOWN_SECONDS,
    DeviceDecision,
    PollApproved,
    PollExpired,
    PollPending,
    PollSlowDown,
)
from domain.entities import (
    AuthorizationCode,
    ConsumedCode,
    Reused,
    Taken,
    Unknown,
)
from domain.errors import StoreUnavailable
from domain.sessions import SessionGrant, SessionRecord
from ports.store import ACCOUNT_TOKEN_PARTS, SESSION_PARTS
from tests.e2e.conftest import StoreBackend
from tests.e2e.oauth_setup import (
    FORM,
    REDIRECT,
    VERIFIER,
    basic,
    build_app,
    code_in,
    exchange,
    introspect,
    running,
)
from tests.integration.token_records import access as _access
from tests.integration.token_records import account_token as _link
from tests.integration.token_records import code as _code
from tests.integration.token_records import device as _device
from tests.integration.token_records import now as _now
from tests.integration.token_records import refresh as _refresh
from tests.integration.token_records import session as _session
from tests.services.redis_server import LocalRedis, local_redis, session_redis_url

pytestmark = pytest.mark.redis

STORE_LOGGER = "adapters.hybrid.store"


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own per test: isolation without flushing a shared Redis."""
    return f"it:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def raw() -> AsyncIterator[Redis]:
    """A plain client on the session Redis, to look at keys and TTLs."""
    client = Redis.from_url(session_redis_url())
    yield client
    await client.aclose()


@pytest.fixture
async def two_stores(prefix: str) -> AsyncIterator[tuple[HybridStore, HybridStore]]:
    """Two instances of the service sharing one Redis."""
    url = session_redis_url()
    first = await open_hybrid_store(url, key_prefix=prefix)
    second = await open_hybrid_store(url, key_prefix=prefix)
    yield first, second
    await first.close()
    await second.close()


@pytest.fixture
def own_redis() -> Iterator[LocalRedis]:
    """A Redis of this test's own, which the test may stop and start (keeping its data,
    as a production Redis with an append-only file would)."""
    server = local_redis(appendonly=True)
    server.start()
    yield server
    server.cleanup()


async def _ttls(raw: Redis, prefix: str) -> dict[bytes, int]:
    return {key: await raw.ttl(key) async for key in raw.scan_iter(match=prefix + "*")}


# Several instances on one Redis


async def test_a_token_issued_on_one_instance_is_valid_and_revocable_on_another(
    two_stores: tuple[HybridStore, HybridStore],
) -> None:
    a, b = two_stores
    now = _now()
    access = _access("tk_shared", now)
    await a.save_tokens(access, None, now)
    assert await b.get_access_token(access.token_hash, now) == access
    assert await b.revoke_access_token(access.token_hash, now) is True
    seen_by_a = await a.get_access_token(access.token_hash, now)
    assert seen_by_a is not None and seen_by_a.active is False


async def test_a_code_taken_on_one_instance_cannot_be_taken_on_another(
    two_stores: tuple[HybridStore, HybridStore],
) -> None:
    a, b = two_stores
    now = _now()
    code = _code("ac_shared", now + 600)
    await a.save_code(code, now)
    assert await b.take_code(code.code_hash, now, remember_until=now + 600) == code
    # The issuing instance still had its own copy: it must not hand it out again.
    replay = await a.take_code(code.code_hash, now, remember_until=now + 600)
    assert replay == ConsumedCode(code.code_hash, code.grant_id, code.client_id)


async def test_concurrent_takes_of_a_code_on_two_instances_have_one_winner(
    two_stores: tuple[HybridStore, HybridStore],
) -> None:
    a, b = two_stores
    now = _now()
    code = _code("ac_race", now + 600)
    await a.save_code(code, now)
    results = await asyncio.gather(
        *((a if n % 2 else b).take_code(code.code_hash, now, remember_until=now + 600)
          for n in range(40))
    )
    assert sum(isinstance(r, AuthorizationCode) for r in results) == 1
    assert sum(isinstance(r, ConsumedCode) for r in results) == 39


async def test_refresh_taken_on_one_instance_is_detected_as_reused_on_another(
    two_stores: tuple[HybridStore, HybridStore],
) -> None:
    a, b = two_stores
    now = _now()
    access = _access("tk_gen1", now)
    refresh = _refresh("rt_gen1", access, now)
    await a.save_tokens(access, refresh, now)

    assert isinstance(await a.take_refresh_token(refresh.token_hash, now), Taken)
    old_access = await b.get_access_token(access.token_hash, now)
    assert old_access is not None and old_access.active is False
    access2 = _access("tk_gen2", now)
    refresh2 = _refresh("rt_gen2", access2, now)
    await a.save_tokens(access2, refresh2, now)

    assert await b.take_refresh_token(refresh.token_hash, now) == Reused("grant-1")
    revoked = await a.get_access_token(access2.token_hash, now)
    assert revoked is not None and revoked.active is False
    assert await a.get_refresh_token(refresh2.token_hash, now) is None
    assert await a.take_refresh_token(refresh2.token_hash, now) == Unknown()


async def test_a_pair_saved_after_its_grant_was_revoked_is_stored_revoked(
    two_stores: tuple[HybridStore, HybridStore],
) -> None:
    a, b = two_stores
    now = _now()
    access = _access("tk_first", now)
    refresh = _refresh("rt_first", access, now)
    await a.save_tokens(access, refresh, now)
    taken = await a.take_refresh_token(refresh.token_hash, now)
    assert isinstance(taken, Taken)
    # The reuse is detected on b before a has stored the rotated pair.
    assert isinstance(await b.take_refresh_token(refresh.token_hash, now), Reused)
    late_access = _access("tk_late", now)
    late_refresh = _refresh("rt_late", late_access, now)
    await a.save_tokens(late_access, late_refresh, now)
    for store in (a, b):
        late = await store.get_access_token(late_access.token_hash, now)
        assert late is not None and late.active is False
        assert await store.get_refresh_token(late_refresh.token_hash, now) is None


async def test_revoke_subject_on_one_instance_reaches_tokens_issued_on_another(
    two_stores: tuple[HybridStore, HybridStore],
) -> None:
    a, b = two_stores
    now = _now()
    mine = _access("tk_sub", now, sub="user-9")
    refresh = _refresh("rt_sub", mine, now)
    other = _access("tk_other", now, sub="user-8", grant_id="grant-8")
    await a.save_tokens(mine, refresh, now)
    await a.save_tokens(other, None, now)
    assert await b.revoke_subject("user-9", now) == 2
    revoked = await a.get_access_token(mine.token_hash, now)
    assert revoked is not None and revoked.active is False
    assert await a.get_refresh_token(refresh.token_hash, now) is None
    assert await a.get_access_token(other.token_hash, now) == other


async def test_claim_once_is_shared_between_instances(
    two_stores: tuple[HybridStore, HybridStore],
) -> None:
    a, b = two_stores
    now = _now()
    assert await a.claim_once("totp:user-1:123456", now + 90, now) is True
    assert await b.claim_once("totp:user-1:123456", now + 90, now) is False
    assert await a.hit("login:bob", 60, now) == 1
    assert await b.hit("login:bob", 60, now) == 2


async def test_get_access_token_is_one_redis_command(
    two_stores: tuple[HybridStore, HybridStore], raw: Redis,
) -> None:
    a, _ = two_stores
    now = _now()
    access = _access("tk_hot", now)
    await a.save_tokens(access, None, now)
    assert await a.get_access_token(access.token_hash, now) == access  # warm connection
    await raw.config_resetstat()
    assert await a.get_access_token(access.token_hash, now) == access
    stats = await raw.info("commandstats")
    assert stats["cmdstat_get"]["calls"] == 1
    assert set(stats) <= {"cmdstat_get", "cmdstat_config|resetstat", "cmdstat_info"}


# Restarts


async def test_tokens_survive_a_restart_of_the_service(prefix: str) -> None:
    url = session_redis_url()
    now = _now()
    first = await open_hybrid_store(url, key_prefix=prefix)
    access = _access("tk_restart", now)
    refresh = _refresh("rt_restart", access, now)
    await first.save_tokens(access, refresh, now)
    await first.close()
    second = await open_hybrid_store(url, key_prefix=prefix)
    try:
        assert await second.get_access_token(access.token_hash, now) == access
        assert await second.take_refresh_token(refresh.token_hash, now) == Taken(refresh)
    finally:
        await second.close()


async def test_tokens_survive_a_restart_of_redis_with_persistence() -> None:
    server = local_redis(appendonly=True)
    server.start()
    try:
        now = _now()
        store = await open_hybrid_store(server.url)
        access = _access("tk_durable", now)
        code = _code("ac_durable", now + 600)
        await store.save_tokens(access, None, now)
        await store.save_code(code, now)
        await store.close()
        server.stop()
        server.start()
        reopened = await open_hybrid_store(server.url)
        try:
            assert await reopened.get_access_token(access.token_hash, now) == access
            assert await reopened.take_code(code.code_hash, now, remember_until=now + 60) == code
        finally:
            await reopened.close()
    finally:
        server.cleanup()


# TTLs and expiry


async def test_every_key_has_a_ttl_after_a_full_workflow(
    two_stores: tuple[HybridStore, HybridStore], raw: Redis, prefix: str,
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

    ttls = await _ttls(raw, prefix)
    kinds = {key[len(prefix):].split(b":")[0] for key in ttls}
    assert {b"c", b"cx", b"t", b"ru", b"g", b"o", b"h"} <= kinds
    assert ttls and all(ttl > 0 for ttl in ttls.values()), ttls


async def test_keys_live_as_long_as_their_records(
    two_stores: tuple[HybridStore, HybridStore], raw: Redis, prefix: str,
) -> None:
    a, _ = two_stores
    now = _now()
    access = _access("tk_ttl", now, ttl=300)
    refresh = _refresh("rt_ttl", access, now, ttl=7200)
    await a.save_tokens(access, refresh, now)
    assert 295 <= await raw.ttl(f"{prefix}t:{access.token_hash}") <= 300
    assert 7195 <= await raw.ttl(f"{prefix}r:{refresh.token_hash}") <= 7200
    # The index must outlive every member it lists.
    assert await raw.ttl(f"{prefix}g:grant-1") >= 7195
    await a.take_refresh_token(refresh.token_hash, now)
    assert 7195 <= await raw.ttl(f"{prefix}ru:{refresh.token_hash}") <= 7200


async def test_an_index_set_never_expires_before_a_member_it_lists(
    two_stores: tuple[HybridStore, HybridStore], raw: Redis, prefix: str,
) -> None:
    a, _ = two_stores
    now = _now()
    await a.save_tokens(_access("tk_idx_1", now, ttl=100), None, now)
    # Some time later the sets have a little less than 100 s left; Redis's TTL command
    # rounds 99.6 s up to 100, which must not pass for "long enough".
    for kind in ("g:grant-1", "s:user-1"):
        await raw.pexpire(f"{prefix}{kind}", 99_600)
    second = _access("tk_idx_2", now, ttl=100)
    await a.save_tokens(second, None, now)
    for kind in ("g:grant-1", "s:user-1"):
        # The set is read first: read later, the member's PTTL can only be smaller.
        set_ms = await raw.pttl(f"{prefix}{kind}")
        assert set_ms >= await raw.pttl(f"{prefix}t:{second.token_hash}"), kind


@pytest.mark.parametrize("how", ["token", "grant", "subject", "rotation"])
async def test_revoking_keeps_the_ttl(
    two_stores: tuple[HybridStore, HybridStore], raw: Redis, prefix: str, how: str,
) -> None:
    a, b = two_stores
    now = _now()
    access = _access("tk_keep", now, ttl=1000)
    refresh = _refresh("rt_keep", access, now)
    await a.save_tokens(access, refresh, now)
    key = f"{prefix}t:{access.token_hash}"
    before = await raw.pttl(key)
    if how == "token":
        assert await b.revoke_access_token(access.token_hash, now)
    elif how == "grant":
        assert await b.revoke_grant("grant-1", now) == 2
    elif how == "subject":
        assert await b.revoke_subject("user-1", now) == 2
    else:
        assert isinstance(await b.take_refresh_token(refresh.token_hash, now), Taken)
    after = await raw.pttl(key)
    assert 0 < after <= before
    revoked = await a.get_access_token(access.token_hash, now)
    assert revoked is not None and revoked.active is False and revoked.exp == access.exp


async def test_expired_codes_and_tokens_are_never_returned_while_their_keys_remain(
    two_stores: tuple[HybridStore, HybridStore], raw: Redis, prefix: str,
) -> None:
    a, b = two_stores
    now = _now()
    code = _code("ac_old", now + 5)
    access = _access("tk_old", now, ttl=5)
    refresh = _refresh("rt_old", access, now, ttl=5)
    await a.save_code(code, now)
    await a.save_tokens(access, refresh, now)
    later = now + 5  # expired for the caller's clock, while the keys still live in Redis
    assert await raw.exists(f"{prefix}t:{access.token_hash}") == 1
    assert await b.get_access_token(access.token_hash, later) is None
    assert await b.get_refresh_token(refresh.token_hash, later) is None
    assert await b.take_refresh_token(refresh.token_hash, later) == Unknown()
    assert await b.revoke_access_token(access.token_hash, later) is False
    assert await b.take_code(code.code_hash, later, remember_until=later + 60) is None


# Outages


async def test_a_redis_outage_is_served_from_memory_logged_once_and_recovered(
    own_redis: LocalRedis, caplog: pytest.LogCaptureFixture,
) -> None:
    now = _now()
    # No back-off: every request below really tries Redis, and must still log only once.
    store = HybridStore(RedisTokenState(redis_client(own_redis.url), "as:"), retry_after=0)
    other = await open_hybrid_store(own_redis.url)
    try:
        before = _access("tk_before", now)
        await store.save_tokens(before, None, now)
        assert await store.health() == {"store": True, "redis": True}

        own_redis.stop()
        with caplog.at_level(logging.INFO, logger=STORE_LOGGER):
            for n in range(30):
                assert await store.get_access_token(before.token_hash, now) == before
                await store.save_tokens(_access(f"tk_during_{n}", now), None, now)
            during = _access("tk_during_0", now)
            assert await store.get_access_token(during.token_hash, now) == during
            code = _code("ac_during", now + 600)
            await store.save_code(code, now)
            assert await store.health() == {"store": True, "redis": False}
            assert await store.health() == {"store": True, "redis": False}
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "redis" in warnings[0].getMessage().lower()

        caplog.clear()
        own_redis.start()
        with caplog.at_level(logging.INFO, logger=STORE_LOGGER):
            assert await store.health() == {"store": True, "redis": True}
        assert [r.levelno for r in caplog.records] == [logging.INFO]

        # What was written during the outage reached Redis: another instance sees it.
        assert await other.get_access_token(during.token_hash, now) == during
        assert await other.take_code(code.code_hash, now, remember_until=now + 600) == code
        # And new writes go to Redis again, without a new store.
        after = _access("tk_after", now)
        await store.save_tokens(after, None, now)
        assert await other.get_access_token(after.token_hash, now) == after
    finally:
        await store.close()
        await other.close()


async def test_a_revocation_made_during_an_outage_reaches_other_instances_afterwards(
    own_redis: LocalRedis,
) -> None:
    now = _now()
    store = HybridStore(RedisTokenState(redis_client(own_redis.url), "as:"), retry_after=0)
    other = await open_hybrid_store(own_redis.url)
    try:
        access = _access("tk_out", now)
        refresh = _refresh("rt_out", access, now)
        await store.save_tokens(access, refresh, now)
        own_redis.stop()
        assert await store.revoke_access_token(access.token_hash, now) is True
        assert await store.revoke_grant("grant-1", now) == 1  # the refresh token
        own_redis.start()
        assert (await store.health())["redis"] is True
        seen = await other.get_access_token(access.token_hash, now)
        assert seen is not None and seen.active is False
        assert await other.take_refresh_token(refresh.token_hash, now) == Unknown()
    finally:
        await store.close()
        await other.close()


async def test_single_use_decisions_are_refused_during_an_outage(
    own_redis: LocalRedis,
) -> None:
    """Taking a code, rotating a refresh token, claiming and counting need the shared view:
    during an outage they raise StoreUnavailable instead of deciding on this instance."""
    now = _now()
    store = HybridStore(RedisTokenState(redis_client(own_redis.url), "as:"), retry_after=0)
    other = await open_hybrid_store(own_redis.url)
    try:
        code = _code("ac_outage", now + 600)
        access = _access("tk_outage", now)
        refresh = _refresh("rt_outage", access, now)
        await store.save_code(code, now)
        await store.save_tokens(access, refresh, now)
        assert await store.claim_once("totp:user-1:111111", now + 90, now) is True
        own_redis.stop()
        refused = [
            store.take_code(code.code_hash, now, remember_until=now + 600),
            store.take_refresh_token(refresh.token_hash, now),
            store.claim_once("totp:user-1:222222", now + 90, now),
            # Replaying a claim made before the outage is refused too, not allowed.
            store.claim_once("totp:user-1:111111", now + 90, now),
            store.hit("signin:user:bob", 60, now),
        ]
        for call in refused:
            with pytest.raises(StoreUnavailable) as caught:
                await call
            assert "redis" not in str(caught.value).lower()
        # Reads of the state this instance holds are still served.
        assert await store.get_access_token(access.token_hash, now) == access
        assert await store.get_refresh_token(refresh.token_hash, now) == refresh

        own_redis.start()
        assert (await store.health())["redis"] is True
        # Nothing was decided during the outage: the code and the token are still unused.
        assert await other.take_code(code.code_hash, now, remember_until=now + 600) == code
        assert await other.take_refresh_token(refresh.token_hash, now) == Taken(refresh)
        assert await store.claim_once("totp:user-1:222222", now + 90, now) is True
        assert await other.claim_once("totp:user-1:111111", now + 90, now) is False
    finally:
        await store.close()
        await other.close()


async def test_clients_fail_closed_during_an_outage_and_are_intact_after(
    own_redis: LocalRedis,
) -> None:
    """Stored clients live in Redis only: during an outage every client call, reads
    included, raises StoreUnavailable (a stale copy could authenticate a deleted client or
    a rotated-away secret), and nothing was changed by the refused calls."""
    now = _now()
    store = HybridStore(RedisTokenState(redis_client(own_redis.url), "as:"), retry_after=0)
    other = await open_hybrid_store(own_redis.url)
    try:
        web = await store.create_client(Client(client_id="web", name="Web"))
        token = InitialAccessToken(digest="d" * 64, uses_left=1, created_at=now)
        await store.save_initial_access_token(token, now)
        assert await other.get_client("web") == web
        own_redis.stop()
        refused = [
            store.get_client("web"),
            store.list_clients(None, 10),
            store.create_client(Client(client_id="new", name="New")),
            store.replace_client(Client(client_id="web", name="Changed"), expected_version=1),
            store.delete_client("web"),
            store.use_initial_access_token(token.digest, now),
            store.save_initial_access_token(token, now),
            store.export_clients(None, 10, now),
        ]
        for call in refused:
            with pytest.raises(StoreUnavailable) as caught:
                await call
            assert "redis" not in str(caught.value).lower()
        own_redis.start()
        assert (await store.health())["redis"] is True
        assert await other.get_client("web") == web
        assert await other.get_client("new") is None
        assert await store.use_initial_access_token(token.digest, now) is True
    finally:
        await store.close()
        await other.close()


async def test_clients_and_initial_access_tokens_keys_share_one_slot_and_tokens_expire(
    prefix: str, raw: Redis,
) -> None:
    now = _now()
    store = await open_hybrid_store(session_redis_url(), key_prefix=prefix)
    try:
        await store.create_client(Client(client_id="web", name="Web"))
        await store.save_initial_access_token(
            InitialAccessToken(digest="a" * 64, uses_left=2, created_at=now,
                               expires_at=now + 600), now)
        await store.save_initial_access_token(
            InitialAccessToken(digest="b" * 64, uses_left=2, created_at=now), now)
        keys = sorted([key.decode() async for key in raw.scan_iter(match=prefix + "*")])
        assert keys == sorted([f"{prefix}cl:{{cl}}web", f"{prefix}cls:{{cl}}",
                               f"{prefix}ia:{{cl}}{'a' * 64}", f"{prefix}ia:{{cl}}{'b' * 64}",
                               f"{prefix}ias:{{cl}}"])
        assert 590 <= await raw.ttl(f"{prefix}ia:{{cl}}{'a' * 64}") <= 600
        # Clients and tokens without an expiry live until deleted or spent.
        assert await raw.ttl(f"{prefix}cl:{{cl}}web") == -1
        assert await raw.ttl(f"{prefix}ia:{{cl}}{'b' * 64}") == -1
        await store.use_initial_access_token("b" * 64, now)
        await store.use_initial_access_token("b" * 64, now)
        assert not await raw.exists(f"{prefix}ia:{{cl}}{'b' * 64}")
    finally:
        await store.close()


async def test_sessions_and_consents_fail_closed_during_an_outage_and_are_intact_after(
    own_redis: LocalRedis,
) -> None:
    """Sessions and consents live in Redis only: during an outage every call, reads
    included, raises StoreUnavailable (a stale copy could keep a session alive after a
    logout or deactivation on another instance, or skip the consent page after a
    withdrawal), and nothing was changed by the refused calls."""
    now = _now()
    store = HybridStore(RedisTokenState(redis_client(own_redis.url), "as:"), retry_after=0)
    other = await open_hybrid_store(own_redis.url)
    try:
        session = _session("ses_outage", now)
        await store.create_session(session, now)
        consent = await store.grant_consent("user-1", "app", ("openid",), now)
        assert await other.get_session(session.id_hash, now) == session
        own_redis.stop()
        refused = [
            store.get_session(session.id_hash, now),
            store.create_session(_session("ses_during", now), now),
            store.add_session_grant(session.id_hash, SessionGrant("app", "gr_1"), now + 900,
                                    now),
            store.reauthenticate_session(session.id_hash, "f" * 64, auth_time=now,
                                         amr=("pwd", "otp", "mfa"), acr="mfa",
                                         idle_exp=now + 900, now=now),
            store.list_sessions("user-1", now),
            store.end_session(session.id_hash, now),
            store.end_session_by_sid(session.sid, now),
            store.end_user_sessions("user-1", now),
            store.export_sessions(None, 10, now),
            store.import_sessions((SessionRecord(_session("ses_copied", now)),), now),
            store.get_consent("user-1", "app"),
            store.list_consents("user-1"),
            store.grant_consent("user-1", "app", ("email",), now),
            store.record_consent_grant("user-1", "app", "gr_1", now + 900, now),
            store.withdraw_consent("user-1", "app", now),
            store.export_consents(None, 10, now),
            store.import_consents((ConsentRecord(Consent(
                user_id="user-2", client_id="app", scopes=("openid",), created_at=now,
                updated_at=now)),), now),
        ]
        for call in refused:
            with pytest.raises(StoreUnavailable) as caught:
                await call
            assert "redis" not in str(caught.value).lower()
        own_redis.start()
        assert (await store.health())["redis"] is True
        # Nothing of the refused calls happened: no grant, no end, no new session.
        assert await other.get_session(session.id_hash, now) == session
        assert await other.list_sessions("user-1", now) == (session,)
        assert await other.get_consent("user-1", "app") == consent
        assert await other.list_consents("user-2") == ()
        withdrawn = await other.withdraw_consent("user-1", "app", now)
        assert withdrawn is not None and withdrawn.grants == ()
    finally:
        await store.close()
        await other.close()


async def test_session_and_consent_keys_live_as_long_as_they_do_and_go_with_them(
    prefix: str, raw: Redis,
) -> None:
    now = _now()
    store = await open_hybrid_store(session_redis_url(), key_prefix=prefix)
    try:
        session = _session("ses_keys", now, idle=600, max_age=3600)
        await store.create_session(session, now)
        await store.add_session_grant(session.id_hash, SessionGrant("app", "gr_1"), now + 900,
                                      now)
        await store.grant_consent("user-1", "app", ("openid",), now)
        await store.record_consent_grant("user-1", "app", "gr_1", now + 7200, now)
        tag = "{" + session.id_hash + "}"
        row, grants = f"{prefix}se:{tag}", f"{prefix}sg:{tag}"
        pointer, index = f"{prefix}sid:{session.sid}", f"{prefix}su:user-1"
        consents, consent_grants = f"{prefix}cn:{{user-1}}", f"{prefix}cg:{{user-1}}{b'app'.hex()}"
        keys = sorted([key.decode() async for key in raw.scan_iter(match=prefix + "*")])
        assert keys == sorted([row, grants, pointer, index, consents, consent_grants])
        # The session's keys end with it: at its idle expiry, pushed back by the grant.
        for key in (row, grants):
            assert 895 <= await raw.ttl(key) <= 900, key
        # The pointer and the index live until its absolute expiry, which nothing extends.
        for key in (pointer, index):
            assert 3595 <= await raw.ttl(key) <= 3600, key
        # A consent lasts until withdrawn; its grants until the last one's exp.
        assert await raw.ttl(consents) == -1
        assert 7195 <= await raw.ttl(consent_grants) <= 7200
        await store.end_session(session.id_hash, now)
        await store.withdraw_consent("user-1", "app", now)
        assert [key async for key in raw.scan_iter(match=prefix + "*")] == []
    finally:
        await store.close()


async def test_sessions_and_consents_are_counted_and_purged_in_redis(
    two_stores: tuple[HybridStore, HybridStore], raw: Redis, prefix: str,
) -> None:
    a, b = two_stores
    now = _now()
    live = _session("ses_live", now)
    idle = _session("ses_idle", now, idle=10)
    for session in (live, idle):
        await a.create_session(session, now)
    await a.grant_consent("user-1", "app", ("openid",), now)
    await a.grant_consent("user-2", "app", ("openid",), now)
    await a.record_consent_grant("user-1", "app", "gr_short", now + 10, now)
    await a.record_consent_grant("user-1", "app", "gr_long", now + 3600, now)
    # Counted by the other instance: what is in Redis, not what one instance wrote.
    counts = await b.counts(now + 10)
    assert (counts.sessions, counts.consents) == (1, 2)
    purged = await b.purge_expired(now + 10)
    assert (purged.sessions, purged.consent_grants) == (1, 1)
    assert await raw.exists(f"{prefix}se:{{{idle.id_hash}}}", f"{prefix}sid:{idle.sid}") == 0
    assert await a.list_sessions("user-1", now + 10) == (live,)
    withdrawn = await a.withdraw_consent("user-1", "app", now + 10)
    assert withdrawn is not None and withdrawn.grants == (ConsentGrant("gr_long", now + 3600),)
    assert (await b.purge_expired(now + 10)).total == 0


async def test_with_redis_sessions_and_consents_are_shared_not_kept_in_the_process(
    two_stores: tuple[HybridStore, HybridStore],
) -> None:
    a, _ = two_stores
    assert not a.process_local_parts() & SESSION_PARTS
    alone = await open_hybrid_store(None)
    assert alone.process_local_parts() >= SESSION_PARTS


async def test_with_redis_account_tokens_are_shared_not_kept_in_the_process(
    two_stores: tuple[HybridStore, HybridStore],
) -> None:
    a, b = two_stores
    now = _now()
    assert not a.process_local_parts() & ACCOUNT_TOKEN_PARTS
    link = _link("shared", now)
    await a.save_account_token(link, now)
    assert (await b.counts(now)).account_tokens == 1
    assert await b.take_account_token("password_reset", link.token_hash, now) == link
    assert await a.take_account_token("password_reset", link.token_hash, now) is None


async def test_a_burst_of_concurrent_calls_on_one_instance_is_served(prefix: str) -> None:
    """More concurrent calls than the instance keeps connections wait for one; none fails
    (redis-py's default pool refused the 101st, and opening hundreds of connections at
    once misses the connect timeout on a busy machine: either took the store down)."""
    now = _now()
    store = await open_hybrid_store(session_redis_url(), key_prefix=prefix)
    try:
        session = _session("ses_burst", now)
        await store.create_session(session, now)
        found = await asyncio.gather(*(store.get_session(session.id_hash, now)
                                       for _ in range(300)))
        assert found == [session] * 300
        assert (await store.health())["redis"] is True
    finally:
        await store.close()


async def test_revocations_queued_during_an_outage_are_never_dropped(
    own_redis: LocalRedis,
) -> None:
    now = _now()
    store = HybridStore(
        RedisTokenState(redis_client(own_redis.url), "as:"), retry_after=0, max_backlog=2
    )
    other = await open_hybrid_store(own_redis.url)
    try:
        first = _access("tk_rev_first", now)
        family = _access("tk_rev_family", now, grant_id="grant-fam")
        family_refresh = _refresh("rt_rev_family", family, now)
        await store.save_tokens(first, None, now)
        await store.save_tokens(family, family_refresh, now)
        own_redis.stop()
        assert await store.revoke_access_token(first.token_hash, now) is True
        # The queue fills up with other writes (one past its bound: refused, see the
        # next test) ...
        kept = _access("tk_rev_kept", now, grant_id=None, sub=None)
        await store.save_tokens(kept, None, now)
        with contextlib.suppress(StoreUnavailable):
            await store.save_tokens(_access("tk_rev_over", now, grant_id=None, sub=None),
                                    None, now)
        # ... and a revocation is still taken on the full queue.
        assert await store.revoke_grant("grant-fam", now) == 2

        own_redis.start()
        assert (await store.health())["redis"] is True
        for token in (first, family):
            seen = await other.get_access_token(token.token_hash, now)
            assert seen is not None and seen.active is False, token.token_display
        assert await other.get_refresh_token(family_refresh.token_hash, now) is None
        assert await other.get_access_token(kept.token_hash, now) == kept
    finally:
        await store.close()
        await other.close()


async def test_a_full_write_queue_refuses_new_writes(own_redis: LocalRedis) -> None:
    now = _now()
    store = HybridStore(
        RedisTokenState(redis_client(own_redis.url), "as:"), retry_after=0, max_backlog=2
    )
    other = await open_hybrid_store(own_redis.url)
    try:
        own_redis.stop()
        queued = [_access(f"tk_full_{n}", now, grant_id=None, sub=None) for n in range(2)]
        for token in queued:
            await store.save_tokens(token, None, now)
        over = _access("tk_full_over", now, grant_id=None, sub=None)
        with pytest.raises(StoreUnavailable):
            await store.save_tokens(over, None, now)
        with pytest.raises(StoreUnavailable):
            await store.save_code(_code("ac_full_over", now + 600), now)
        # Refused means not issued: this instance does not know the token either.
        assert await store.get_access_token(over.token_hash, now) is None

        own_redis.start()
        assert (await store.health())["redis"] is True
        for token in queued:
            assert await other.get_access_token(token.token_hash, now) == token
        # The queue drained: writes are taken again.
        await store.save_tokens(over, None, now)
        assert await other.get_access_token(over.token_hash, now) == over
    finally:
        await store.close()
        await other.close()


def test_the_token_endpoint_answers_503_during_an_outage(
    own_redis: LocalRedis, tmp_path: Path,
) -> None:
    backend = StoreBackend("hybrid", env={"STORE_BACKEND": "hybrid", "REDIS_URL": own_redis.url})
    app = build_app(backend, tmp_path)
    with running(app) as client:
        tokens = exchange(client, app)
        spare_code = code_in(client, app)
        redeem = {"grant_type": "authorization_code", "code": spare_code,
                  "redirect_uri": REDIRECT, "code_verifier": VERIFIER}

        own_redis.stop()
        for form in (
            redeem,
            {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        ):
            response = client.post("/oauth/token", headers={**FORM, **basic()}, data=form)
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "temporarily_unavailable"
            assert "redis" not in response.text.lower()
        # Introspection of a token this instance holds is still answered.
        assert introspect(client, tokens["access_token"])["active"] is True

        own_redis.start()
        assert client.get("/health/ready").status_code == 200
        # The refused redemption decided nothing: the code is still good once.
        later = client.post("/oauth/token", headers={**FORM, **basic()}, data=redeem)
        assert later.status_code == 200, later.text


async def test_an_outage_does_not_make_every_request_wait(own_redis: LocalRedis) -> None:
    now = _now()
    store = await open_hybrid_store(own_redis.url)
    try:
        access = _access("tk_fast", now)
        await store.save_tokens(access, None, now)
        own_redis.stop()
        started = time.perf_counter()
        for _ in range(200):
            assert await store.get_access_token(access.token_hash, now) == access
        assert time.perf_counter() - started < 0.5
    finally:
        await store.close()


async def test_an_unreachable_redis_at_start_up_is_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = local_redis()  # not started yet: its port refuses connections
    now = _now()
    with caplog.at_level(logging.WARNING, logger=STORE_LOGGER):
        store = await open_hybrid_store(server.url)
    try:
        assert await store.health() == {"store": True, "redis": False}
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
        early = _access("tk_early", now)
        await store.save_tokens(early, None, now)
        assert await store.get_access_token(early.token_hash, now) == early
        server.start()
        assert await store.health() == {"store": True, "redis": True}
        raw = Redis.from_url(server.url)
        try:
            assert await raw.exists(f"as:t:{early.token_hash}") == 1
        finally:
            await raw.aclose()
    finally:
        await store.close()
        server.cleanup()


async def test_concurrent_polls_of_a_pending_authorization_are_one_pending_and_slow_downs(
    two_stores: tuple[HybridStore, HybridStore],
) -> None:
    """Polls at one instant on two instances, each one script: the first is pending, every
    later one too early (each lengthening the interval once), none lost."""
    a, b = two_stores
    now = _now()
    held = _device("pending", now)
    await a.save_device_authorization(held, now)
    polls = await asyncio.gather(*(
        (a if n % 2 else b).poll_device_authorization(held.device_code_hash, now)
        for n in range(50)))
    assert sum(poll == PollPending() for poll in polls) == 1
    slow = sorted(poll.interval for poll in polls if isinstance(poll, PollSlowDown))
    assert slow == [5 + n * SLOW_DOWN_SECONDS for n in range(1, 50)]
    found = await b.find_device_authorization(held.user_code_hash, now)
    assert found is not None and (found.interval, found.last_poll) == (slow[-1], now)


async def test_device_authorizations_fail_closed_during_an_outage_and_are_intact_after(
    own_redis: LocalRedis,
) -> None:
    """Device authorizations live in Redis only: during an outage every call, reads
    included, raises StoreUnavailable (a decision or an approval taken by one instance
    alone could be taken again by another), and the refused calls changed nothing."""
    now = _now()
    store = HybridStore(RedisTokenState(redis_client(own_redis.url), "as:"), retry_after=0)
    other = await open_hybrid_store(own_redis.url)
    approve = DeviceDecision(status="approved", user_id="user-1", auth_time=now, amr=("pwd",))
    try:
        pending, approved = _device("pending", now), _device("approved", now)
        assert await store.save_device_authorization(pending, now)
        assert await store.save_device_authorization(approved, now)
        assert await store.decide_device_authorization(approved.user_code_hash, approve, now)
        own_redis.stop()
        refused = [
            store.save_device_authorization(_device("new", now), now),
            store.find_device_authorization(pending.user_code_hash, now),
            store.decide_device_authorization(pending.user_code_hash, approve, now),
            store.poll_device_authorization(approved.device_code_hash, now + 1),
            store.poll_device_authorization(pending.device_code_hash, now + 1),
            store.export_device_authorizations(None, 10, now),
            store.import_device_authorizations((_device("copied", now),), now),
        ]
        for call in refused:
            with pytest.raises(StoreUnavailable) as caught:
                await call
            assert "redis" not in str(caught.value).lower()
        own_redis.start()
        assert (await store.health())["redis"] is True
        assert await other.find_device_authorization(pending.user_code_hash, now) == pending
        assert await other.find_device_authorization(_device("new", now).user_code_hash,
                                                     now) is None
        # The approval is still there for exactly one poll, and the pending one never polled.
        taken = await other.poll_device_authorization(approved.device_code_hash, now + 1)
        assert isinstance(taken, PollApproved) and taken.authorization.user_id == "user-1"
        assert await store.poll_device_authorization(approved.device_code_hash, now + 9) == \
            PollExpired()
        assert await store.poll_device_authorization(pending.device_code_hash, now + 1) == \
            PollPending()
    finally:
        await store.close()
        await other.close()


async def test_device_keys_share_one_slot_live_as_long_as_their_records_and_are_purged(
    prefix: str, raw: Redis,
) -> None:
    """A record and its user-code pointer expire with the record; a poll that answers
    removes both; a purge removes what is left of expired ones (their index entries)."""
    now = _now()
    store = await open_hybrid_store(session_redis_url(), key_prefix=prefix)
    try:
        first, short = _device("first", now), _device("short", now, ttl=30)
        await store.save_device_authorization(first, now)
        await store.save_device_authorization(short, now)
        keys = sorted([key.decode() async for key in raw.scan_iter(match=prefix + "*")])
        dch, uch = first.device_code_hash, first.user_code_hash
        assert keys == sorted([
            f"{prefix}dv:{{dv}}{dch}", f"{prefix}dvu:{{dv}}{uch}",
            f"{prefix}dv:{{dv}}{short.device_code_hash}",
            f"{prefix}dvu:{{dv}}{short.user_code_hash}",
            f"{prefix}dvs:{{dv}}", f"{prefix}dve:{{dv}}",
        ])
        assert 590 <= await raw.ttl(f"{prefix}dv:{{dv}}{dch}") <= 600
        assert 590 <= await raw.ttl(f"{prefix}dvu:{{dv}}{uch}") <= 600
        assert 20 <= await raw.ttl(f"{prefix}dvu:{{dv}}{short.user_code_hash}") <= 30
        assert (await store.counts(now)).device_authorizations == 2
        await store.decide_device_authorization(uch, DeviceDecision(status="denied"), now)
        await store.poll_device_authorization(dch, now)
        assert not await raw.exists(f"{prefix}dv:{{dv}}{dch}", f"{prefix}dvu:{{dv}}{uch}")
        # Past the short one's expiry (by the caller's clock): counted out, then purged.
        later = now + 31
        assert (await store.counts(later)).device_authorizations == 0
        assert (await store.purge_expired(later)).device_authorizations == 1
        assert [key async for key in raw.scan_iter(match=prefix + "*")] == []
        assert (await store.purge_expired(later)).device_authorizations == 0
    finally:
        await store.close()


async def test_account_tokens_fail_closed_during_an_outage_and_are_intact_after(
    own_redis: LocalRedis,
) -> None:
    """Account tokens live in Redis only: during an outage every call raises
    StoreUnavailable (a link taken or revoked by one instance alone would still work on
    another), and the refused calls changed nothing."""
    now = _now()
    store = HybridStore(RedisTokenState(redis_client(own_redis.url), "as:"), retry_after=0)
    other = await open_hybrid_store(own_redis.url)
    try:
        held, kept = _link("held", now), _link("kept", now, kind="email_verification")
        await store.save_account_token(held, now)
        await store.save_account_token(kept, now)
        own_redis.stop()
        refused = [
            store.save_account_token(_link("new", now), now),
            store.take_account_token("password_reset", held.token_hash, now),
            store.revoke_account_tokens("user-1", "email_verification", now),
            store.export_account_tokens(None, 10, now),
            store.import_account_tokens((_link("copied", now),), now),
        ]
        for call in refused:
            with pytest.raises(StoreUnavailable) as caught:
                await call
            assert "redis" not in str(caught.value).lower()
        own_redis.start()
        assert (await store.health())["redis"] is True
        assert await other.take_account_token("password_reset", held.token_hash, now) == held
        assert await other.take_account_token(
            "password_reset", _link("new", now).token_hash, now) is None
        assert await other.revoke_account_tokens("user-1", "email_verification", now) == 1
        assert (await store.counts(now)).account_tokens == 0
    finally:
        await store.close()
        await other.close()


async def test_account_token_keys_share_one_slot_live_as_long_as_their_tokens_and_go(
    prefix: str, raw: Redis,
) -> None:
    """A token and its indexes live as long as the token (the indexes as the latest one);
    a take and a revoke leave nothing of what they removed; a purge removes what is left
    of expired tokens."""
    now = _now()
    store = await open_hybrid_store(session_redis_url(), key_prefix=prefix)
    try:
        long, short = _link("long", now), _link("short", now, ttl=30)
        verification = _link("verify", now, kind="email_verification")
        for link in (long, short, verification):
            await store.save_account_token(link, now)
        keys = sorted([key.decode() async for key in raw.scan_iter(match=prefix + "*")])
        assert keys == sorted([
            f"{prefix}at:{{at}}{long.token_hash}", f"{prefix}at:{{at}}{short.token_hash}",
            f"{prefix}at:{{at}}{verification.token_hash}",
            f"{prefix}atu:{{at}}password_reset:user-1",
            f"{prefix}atu:{{at}}email_verification:user-1",
            f"{prefix}ats:{{at}}", f"{prefix}ate:{{at}}",
        ])
        ttls = {key.removeprefix(prefix): await raw.ttl(key) for key in keys}
        assert 1790 <= ttls[f"at:{{at}}{long.token_hash}"] <= 1800
        assert 20 <= ttls[f"at:{{at}}{short.token_hash}"] <= 30
        for index in ("atu:{at}password_reset:user-1", "ats:{at}", "ate:{at}"):
            assert 1790 <= ttls[index] <= 1800, index
        assert (await store.counts(now)).account_tokens == 3
        assert await store.take_account_token(
            "email_verification", verification.token_hash, now) == verification
        assert not await raw.exists(f"{prefix}at:{{at}}{verification.token_hash}",
                                    f"{prefix}atu:{{at}}email_verification:user-1")
        # Past the short one's expiry (by the caller's clock): counted out, then purged.
        later = now + 31
        assert (await store.counts(later)).account_tokens == 1
        assert (await store.purge_expired(later)).account_tokens == 1
        assert not await raw.exists(f"{prefix}at:{{at}}{short.token_hash}")
        assert (await store.purge_expired(later)).account_tokens == 0
        assert await store.revoke_account_tokens("user-1", "password_reset", later) == 1
        assert [key async for key in raw.scan_iter(match=prefix + "*")] == []
    finally:
        await store.close()


async def test_a_saved_token_that_replaces_another_users_is_not_revoked_with_theirs(
    prefix: str,
) -> None:
    """The index of a user's tokens may name a hash that a later save gave to another user
    (the old entry is removed, and a revoke checks the holder anyway)."""
    now = _now()
    store = await open_hybrid_store(session_redis_url(), key_prefix=prefix)
    try:
        await store.save_account_token(_link("same", now), now)
        bobs = _link("same", now, user_id="user-2")
        await store.save_account_token(bobs, now)
        assert await store.revoke_account_tokens("user-1", "password_reset", now) == 0
        assert (await store.counts(now)).account_tokens == 1
        assert await store.take_account_token("password_reset", bobs.token_hash, now) == bobs
    finally:
        await store.close()

"""PostgreSQL specifics of the sql adapter, beyond the shared contract suite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sql import SqlStore, open_sql_store, sqlalchemy_url
from domain.device import (
    SLOW_DOWN_SECONDS,
    DeviceAuthorization,
    DeviceDecision,
    PollApproved,
    PollExpired,
    PollPending,
    PollSlowDown,
)
from domain.entities import AccessToken, RefreshToken, Taken, User
from domain.errors import Conflict, InvalidValue, PreconditionFailed, StoreUnavailable
from domain.tokens import hash_token
from tests.services.postgres_server import empty_migrated_database

pytestmark = pytest.mark.postgres

NOW = 1_700_000_000


@pytest.fixture
async def url() -> str:
    return await empty_migrated_database()


@pytest.fixture
async def store(url: str) -> AsyncIterator[SqlStore]:
    sql = await open_sql_store(url, migrate=False, pool_size=20)
    yield sql
    await sql.close()


def _statements(store: SqlStore) -> list[str]:
    """Every SQL statement the store sends from now on (recorded by a SQLAlchemy event)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(store._engine.sync_engine, "before_cursor_execute", record)
    return seen


def _access(name: str, exp: int = NOW + 3600, grant_id: str | None = "g1") -> AccessToken:
    return AccessToken(
        token_hash=hash_token(name), token_display=name[:7] + "...", active=True,
        scope="read", client_id="c1", exp=exp, iat=NOW, sub="s1", grant_id=grant_id,
    )


def _refresh(name: str, access: AccessToken) -> RefreshToken:
    return RefreshToken(
        token_hash=hash_token(name), access_token_hash=access.token_hash, exp=NOW + 86400,
        iat=NOW, grant_id="g1", client_id="c1", scope="read", sub="s1",
    )


@pytest.mark.parametrize(
    "scheme", ["postgres://", "postgresql://", "postgresql+asyncpg://"]
)
async def test_every_url_form_opens_a_working_store(url: str, scheme: str) -> None:
    rest = url.split("://", 1)[1]
    sql = await open_sql_store(scheme + rest, migrate=False, connect_timeout=5)
    try:
        assert await sql.health() == {"store": True}
    finally:
        await sql.close()


def test_other_schemes_are_refused() -> None:
    with pytest.raises(ValueError, match="DATABASE_URL"):
        sqlalchemy_url("mysql://u@h/db")


async def test_get_access_token_is_one_statement_on_the_wire(url: str) -> None:
    # One pooled connection, so the query logger sees every statement the store sends.
    store = await open_sql_store(url, migrate=False, pool_size=1)
    try:
        await store.save_tokens(_access("tk_hot"), None, NOW)
        fairy = await store._engine.raw_connection()
        sent: list[str] = []
        driver: Any = fairy.driver_connection
        driver.add_query_logger(lambda record: sent.append(record.query))
        fairy.close()
        token = await store.get_access_token(hash_token("tk_hot"), NOW)
        assert token == _access("tk_hot")
        await asyncio.sleep(0.05)  # the driver calls query loggers soon, not at once
        assert len(sent) == 1, sent
        assert sent[0].startswith("SELECT") and "WHERE token_hash = $1 AND exp > $2" in sent[0]
        assert await store.get_access_token(hash_token("tk_hot"), NOW + 3600) is None
    finally:
        await store.close()


async def test_the_access_token_lookup_is_a_primary_key_index_scan(url: str) -> None:
    import asyncpg

    from adapters.sql.tables import tokens
    from adapters.sql.tokens import _GET_ACCESS_TOKEN_SQL
    from migrations.runner import asyncpg_dsn

    selected = _GET_ACCESS_TOKEN_SQL.split("SELECT ", 1)[1].split(" FROM", 1)[0]
    assert [c.strip() for c in selected.split(",")] == [c.name for c in tokens.columns]
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("SET enable_seqscan = off")
        plan = await conn.fetch("EXPLAIN " + _GET_ACCESS_TOKEN_SQL, "x", NOW)
    finally:
        await conn.close()
    assert "tokens_pkey" in " ".join(r[0] for r in plan)


async def test_purge_deletes_in_bounded_batches(store: SqlStore) -> None:
    for n in range(25):
        await store.save_tokens(_access(f"tk_old_{n}", exp=NOW - 1), None, NOW - 10)
    await store.save_tokens(_access("tk_live"), None, NOW)
    seen = _statements(store)
    counts = await store.purge_expired(NOW, batch_size=10)
    assert counts.access_tokens == 25
    token_deletes = [s for s in seen if s.startswith("DELETE FROM tokens")]
    assert len(token_deletes) == 3  # 10 + 10 + 5
    assert all("LIMIT" in s and "ctid" in s for s in token_deletes)
    assert await store.get_access_token(hash_token("tk_live"), NOW) is not None


async def test_concurrent_creates_of_one_user_name_give_one_user_and_conflicts(
    store: SqlStore,
) -> None:
    names = ["Zoë", "ZOË", "zoë"] * 7
    results = await asyncio.gather(
        *(store.create_user(User(user_name=n)) for n in names), return_exceptions=True
    )
    created = [r for r in results if isinstance(r, User)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(created) == 1
    assert len(conflicts) == len(names) - 1
    assert all(c.attribute == "userName" for c in conflicts)


async def test_case_folding_is_unicode_not_ascii_only(store: SqlStore) -> None:
    await store.create_user(User(user_name="ÉMILE"))
    with pytest.raises(Conflict):
        await store.create_user(User(user_name="émile"))
    found = await store.find_user_by_name("émile")
    assert found is not None and found.user_name == "ÉMILE"


async def test_concurrent_compare_and_set_replaces_have_one_winner(store: SqlStore) -> None:
    user = await store.create_user(User(user_name="casey"))
    attempts = [
        store.replace_user(User(id=user.id, user_name=f"casey{n}"), expected_version=1)
        for n in range(20)
    ]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    assert sum(isinstance(r, User) for r in results) == 1
    assert sum(isinstance(r, PreconditionFailed) for r in results) == 19
    assert (await store.get_user(user.id)).version == 2


async def test_rotation_from_two_processes_has_one_winner(url: str, store: SqlStore) -> None:
    other = await open_sql_store(url, migrate=False)
    try:
        access = _access("tk_pair")
        await store.save_tokens(access, _refresh("rt_pair", access), NOW)
        takes = [
            s.take_refresh_token(hash_token("rt_pair"), NOW)
            for s in (store, other) * 15
        ]
        results = await asyncio.gather(*takes)
        assert sum(isinstance(r, Taken) for r in results) == 1
        seen_elsewhere = await other.get_access_token(access.token_hash, NOW)
        assert seen_elsewhere is not None and not seen_elsewhere.active
    finally:
        await other.close()


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _db_error(sqlstate: str) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError("UPDATE ...", None, _Orig(sqlstate))


async def test_serialization_failures_and_deadlocks_are_retried(store: SqlStore) -> None:
    calls = 0

    async def flaky(conn: AsyncConnection) -> str:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise _db_error("40001" if calls == 1 else "40P01")
        return "done"

    assert await store._transaction(flaky) == "done"
    assert calls == 3


async def test_retries_are_bounded_then_unavailable(store: SqlStore) -> None:
    calls = 0

    async def always(conn: AsyncConnection) -> None:
        nonlocal calls
        calls += 1
        raise _db_error("40001")

    with pytest.raises(StoreUnavailable) as caught:
        await store._transaction(always)
    assert calls == 5
    assert "sqlalchemy" not in str(caught.value).lower()


async def test_committed_data_survives_a_new_store(url: str, store: SqlStore) -> None:
    alice = await store.create_user(User(user_name="alice"))
    await store.save_tokens(_access("tk_keep"), None, NOW)
    await store.close()
    reopened = await open_sql_store(url)
    try:
        assert await reopened.get_user(alice.id) == alice
        assert await reopened.get_access_token(hash_token("tk_keep"), NOW) is not None
    finally:
        await reopened.close()


async def test_a_cancelled_lookup_does_not_poison_the_pool(url: str) -> None:
    import asyncpg

    from migrations.runner import asyncpg_dsn

    store = await open_sql_store(url, migrate=False, pool_size=1)
    blocker = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await store.save_tokens(_access("tk_c"), None, NOW)
        # Hold the table so that the lookup is surely in flight when it is cancelled.
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("LOCK TABLE tokens IN ACCESS EXCLUSIVE MODE")
        task = asyncio.create_task(store.get_access_token(hash_token("tk_c"), NOW))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await lock.rollback()
        # The next operations on the pool's only connection work.
        assert await store.revoke_access_token(hash_token("tk_c"), NOW)
        assert await store.get_access_token(hash_token("tk_c"), NOW) is not None
    finally:
        await blocker.close()
        await store.close()


async def test_user_name_lookups_and_filters_use_the_case_insensitive_index(url: str) -> None:
    import asyncpg
    import sqlalchemy as sa
    from sqlalchemy.dialects.postgresql.asyncpg import dialect

    from adapters.sql import tables
    from adapters.sql.filtering import fold, user_clause
    from domain.filters import AttrPath, Compare
    from migrations.runner import asyncpg_dsn

    users = tables.users
    statements = [
        sa.select(users.c.id).where(fold(users.c.user_name) == fold(sa.literal("B", sa.Text))),
        sa.select(users.c.id).where(user_clause(Compare(AttrPath("username"), "eq", "B"))),
    ]
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("SET enable_seqscan = off")
        for stmt in statements:
            sql = str(stmt.compile(dialect=dialect()))  # type: ignore[no-untyped-call]
            plan = " ".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, "B"))
            assert "users_user_name_lower_key" in plan, plan
    finally:
        await conn.close()


# Values PostgreSQL cannot hold: the caller's error (InvalidValue), never StoreUnavailable


@pytest.mark.parametrize("value", ["a\x00b", "\x00", "lone \ud800 surrogate"])
async def test_values_postgresql_cannot_store_are_invalid_value(
    store: SqlStore, value: str
) -> None:
    user = await store.create_user(User(user_name="alice"))
    attempts = [
        store.get_user(value),
        store.find_user_by_name(value),
        store.create_user(User(user_name=value)),
        store.replace_user(User(id=user.id, user_name="alice", display_name=value)),
        store.get_group(value),
        store.claim_once(f"totp:{value}", NOW + 30, NOW),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidValue) as caught:
            await attempt
        assert not isinstance(caught.value, StoreUnavailable)
        for name in ("asyncpg", "sqlalchemy"):
            assert name not in str(caught.value).lower()
    assert (await store.get_user(user.id)).display_name is None  # nothing was written
    assert (await store.health())["store"]  # the pool is fine afterwards


# Device authorizations


def _device(name: str, **changes: object) -> DeviceAuthorization:
    authorization = DeviceAuthorization(
        device_code_hash=hash_token(f"dc_{name}"), user_code_hash=hash_token(f"uc_{name}"),
        client_id="tv", scope="openid", exp=NOW + 600, interval=5, created_at=NOW,
    )
    return msgspec.structs.replace(authorization, **changes)


@pytest.mark.parametrize("value", ["a\x00b", "\x00", "lone \ud800 surrogate"])
async def test_device_values_postgresql_cannot_store(store: SqlStore, value: str) -> None:
    """A write of such a value is InvalidValue (the caller's input); a lookup by one finds
    nothing (no row can hold it), as for any unknown code."""
    held = _device("held")
    assert await store.save_device_authorization(held, NOW)
    writes = [
        store.save_device_authorization(_device("new", scope=value), NOW),
        store.save_device_authorization(_device("new", user_code_hash=value), NOW),
        store.decide_device_authorization(
            held.user_code_hash, DeviceDecision(status="approved", user_id=value), NOW),
        store.import_device_authorizations((_device("copied", client_id=value),), NOW),
    ]
    for write in writes:
        with pytest.raises(InvalidValue) as caught:
            await write
        assert not isinstance(caught.value, StoreUnavailable)
        for name in ("asyncpg", "sqlalchemy"):
            assert name not in str(caught.value).lower()
    assert await store.find_device_authorization(value, NOW) is None
    assert await store.decide_device_authorization(
        value, DeviceDecision(status="denied"), NOW) is None
    assert await store.poll_device_authorization(value, NOW) == PollExpired()
    # Nothing was written, and the pool is fine afterwards.
    assert await store.find_device_authorization(held.user_code_hash, NOW) == held
    assert (await store.counts(NOW)).device_authorizations == 1


async def test_concurrent_polls_of_a_pending_authorization_are_one_pending_and_slow_downs(
    url: str, store: SqlStore,
) -> None:
    """Polls at one instant on two instances are serialized by the row lock: the first is
    pending, every later one too early (each lengthening the interval once): none is
    answered "expired" while the record lives, and none is lost."""
    other = await open_sql_store(url, migrate=False, pool_size=20)
    try:
        held = _device("pending")
        await store.save_device_authorization(held, NOW)
        polls = await asyncio.gather(*(
            (store if n % 2 else other).poll_device_authorization(held.device_code_hash, NOW)
            for n in range(50)))
        assert sum(poll == PollPending() for poll in polls) == 1
        slow = sorted(poll.interval for poll in polls if isinstance(poll, PollSlowDown))
        assert slow == [5 + n * SLOW_DOWN_SECONDS for n in range(1, 50)]
        found = await other.find_device_authorization(held.user_code_hash, NOW)
        assert found is not None and (found.interval, found.last_poll) == (slow[-1], NOW)
    finally:
        await other.close()


async def test_a_poll_is_one_statement_and_a_save_one_transaction(store: SqlStore) -> None:
    held = _device("counted")
    seen = _statements(store)
    await store.save_device_authorization(held, NOW)
    saving = [s for s in seen if not s.startswith(("BEGIN", "COMMIT"))]
    assert len(saving) == 2  # the expired rows holding either code, then the insert
    seen.clear()
    await store.decide_device_authorization(held.user_code_hash,
                                            DeviceDecision(status="approved"), NOW)
    assert isinstance(await store.poll_device_authorization(held.device_code_hash, NOW + 1),
                      PollApproved)
    assert len(seen) == 2


async def test_device_authorizations_are_counted_live_and_purged_once_expired(
    store: SqlStore,
) -> None:
    await store.save_device_authorization(_device("short", exp=NOW + 10), NOW)
    await store.save_device_authorization(_device("long"), NOW)
    assert (await store.counts(NOW)).device_authorizations == 2
    assert (await store.counts(NOW + 10)).device_authorizations == 1
    assert (await store.purge_expired(NOW + 10, batch_size=1)).device_authorizations == 1
    assert (await store.purge_expired(NOW + 10)).device_authorizations == 0
    assert await store.find_device_authorization(_device("long").user_code_hash,
                                                 NOW + 10) == _device("long")

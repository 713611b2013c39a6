"""Sessions, consents and the session fields of codes on PostgreSQL, beyond the contract:
purge and counts, values PostgreSQL cannot hold, the statements and indexes of the hot
paths, and the races the row locks decide (a grant recorded while a session or a consent is
being ended is returned with it, never dropped unseen)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from adapters.sql import SqlStore, open_sql_store, sessions, tables
from domain.consent import ConsentGrant
from domain.entities import AuthorizationCode
from domain.errors import Conflict, InvalidValue, StoreUnavailable
from domain.sessions import Session, SessionGrant, SessionRecord
from migrations.runner import asyncpg_dsn
from tests.services.postgres_server import empty_migrated_database

pytestmark = pytest.mark.postgres

NOW = 1_700_000_000
UNSTORABLE = ["a\x00b", "lone \ud800 surrogate"]


@pytest.fixture
async def url() -> str:
    return await empty_migrated_database()


@pytest.fixture
async def store(url: str) -> AsyncIterator[SqlStore]:
    sql = await open_sql_store(url, migrate=False, pool_size=10)
    yield sql
    await sql.close()


@pytest.fixture
async def db(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection beside the store (to read tables, hold locks, explain plans)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    yield conn
    await conn.close()


def _session(name: str, *, user_id: str = "u-1", **changes: Any) -> Session:
    session = Session(
        id_hash=hashlib.sha256(name.encode()).hexdigest(), sid=f"sid_{name}", user_id=user_id,
        auth_time=NOW - 5, amr=("pwd",), acr="pwd", created_at=NOW - 5, idle_exp=NOW + 3600,
        exp=NOW + 86400,
    )
    return msgspec.structs.replace(session, **changes)


def _code(name: str, **changes: Any) -> AuthorizationCode:
    code = AuthorizationCode(
        code_hash=hashlib.sha256(name.encode()).hexdigest(), client_id="web",
        redirect_uri="https://app.example/cb", scope="openid", exp=NOW + 60, grant_id="gr_1",
        user_id="u-1", auth_time=NOW - 5, mfa_verified=True, sid="sid_a", acr="mfa",
        amr=("pwd", "otp", "mfa"),
    )
    return msgspec.structs.replace(code, **changes)


async def _sent(store: SqlStore) -> list[str]:
    """Every statement the store sends from now on: SQLAlchemy's (an event) and those the
    driver sends itself (``BEGIN``, ``COMMIT``, seen by a query logger on the pool's one
    connection: open the store with ``pool_size=1``)."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(store._engine.sync_engine, "before_cursor_execute", record)
    fairy = await store._engine.raw_connection()
    driver: Any = fairy.driver_connection
    driver.add_query_logger(lambda query: sent.append(query.query))
    fairy.close()
    return sent


# Codes (migration 0012)


async def test_a_code_keeps_its_sid_acr_and_amr(store: SqlStore) -> None:
    for code in (_code("ac_mfa"), _code("ac_old", sid=None, acr=None, amr=())):
        await store.save_code(code, NOW)
        assert await store.take_code(code.code_hash, NOW, remember_until=NOW + 60) == code


@pytest.mark.parametrize("amr", [("pwd otp",), ("",), ("pwd", "\totp")])
async def test_an_amr_value_the_column_cannot_keep_is_refused_not_altered(
    store: SqlStore, amr: tuple[str, ...]
) -> None:
    # The column keeps the values space-separated: one with whitespace, or an empty one,
    # would come back as other values.
    code = _code("ac_odd", amr=amr)
    with pytest.raises(InvalidValue):
        await store.save_code(code, NOW)
    with pytest.raises(InvalidValue):
        await store.import_codes((code,), NOW)
    assert await store.take_code(code.code_hash, NOW, remember_until=NOW + 60) is None


# Purge and counts


async def test_purge_removes_expired_sessions_with_their_grants_in_batches(
    store: SqlStore, db: asyncpg.Connection
) -> None:
    for n in range(25):
        dead = _session(f"dead{n}", idle_exp=NOW + 10 if n % 2 else NOW + 900,
                        exp=NOW + 900 if n % 2 else NOW + 10)
        await store.create_session(dead, NOW)
        await store.add_session_grant(dead.id_hash, SessionGrant("web", f"gr_{n}"), NOW, NOW)
    kept = _session("kept")
    await store.create_session(kept, NOW)
    await store.add_session_grant(kept.id_hash, SessionGrant("web", "gr_kept"), NOW, NOW)
    assert (await store.counts(NOW + 10)).sessions == 1
    seen = await _sent(store)
    counts = await store.purge_expired(NOW + 10, batch_size=10)
    assert counts.sessions == 25
    deletes = [s for s in seen if s.startswith("DELETE FROM sessions")]
    assert len(deletes) == 3 and all("LIMIT" in s for s in deletes)  # 10 + 10 + 5
    assert await db.fetchval("SELECT count(*) FROM sessions") == 1
    assert await db.fetch("SELECT grant_id FROM session_grants") == [("gr_kept",)]
    assert (await store.purge_expired(NOW + 10)).sessions == 0
    assert await store.end_session(kept.id_hash, NOW + 10) == SessionRecord(
        msgspec.structs.replace(kept, clients=("web",)), (SessionGrant("web", "gr_kept"),))


async def test_purge_removes_expired_consent_grants_and_keeps_consents(
    store: SqlStore, db: asyncpg.Connection
) -> None:
    await store.grant_consent("u-1", "app", ("openid",), NOW)
    for n in range(12):
        assert await store.record_consent_grant("u-1", "app", f"gr_{n:02}", NOW + n, NOW)
    counts = await store.purge_expired(NOW + 5, batch_size=4)
    assert (counts.consent_grants, counts.sessions) == (6, 0)  # exp NOW .. NOW + 5
    assert await db.fetchval("SELECT count(*) FROM consent_grants") == 6
    assert (await store.counts(NOW + 5)).consents == 1
    record = await store.withdraw_consent("u-1", "app", NOW + 5)
    assert record is not None
    assert [g.grant_id for g in record.grants] == [f"gr_{n:02}" for n in range(6, 12)]


# Values PostgreSQL cannot hold


@pytest.mark.parametrize("value", UNSTORABLE)
async def test_lookups_by_an_id_postgresql_cannot_hold_find_nothing(
    store: SqlStore, value: str
) -> None:
    session = _session("a")
    await store.create_session(session, NOW)
    await store.grant_consent("u-1", "app", ("openid",), NOW)
    assert await store.get_session(value, NOW) is None
    assert await store.add_session_grant(value, SessionGrant("web", "gr"), NOW + 9, NOW) is None
    assert await store.reauthenticate_session(
        value, "f" * 64, auth_time=NOW, amr=("pwd",), acr="pwd", idle_exp=NOW + 9,
        now=NOW) is None
    assert await store.list_sessions(value, NOW) == ()
    assert await store.end_session(value, NOW) is None
    assert await store.end_session_by_sid(value, NOW) is None
    assert await store.end_user_sessions(value, NOW) == ()
    assert await store.get_consent(value, "app") is None
    assert await store.get_consent("u-1", value) is None
    assert await store.list_consents(value) == ()
    assert not await store.record_consent_grant("u-1", value, "gr", NOW + 9, NOW)
    assert await store.withdraw_consent(value, "app", NOW) is None
    # Inside a unit too: the lookup must not abort the unit's transaction.
    assert await store.atomically(lambda: store.get_session(value, NOW)) is None
    assert await store.get_session(session.id_hash, NOW) == session


@pytest.mark.parametrize("value", UNSTORABLE)
async def test_writes_of_a_value_postgresql_cannot_hold_are_invalid_value(
    store: SqlStore, value: str
) -> None:
    session = _session("a")
    await store.create_session(session, NOW)
    await store.grant_consent("u-1", "app", ("openid",), NOW)
    attempts = [
        store.create_session(_session("b", user_id=value), NOW),
        store.create_session(_session("c", amr=("pwd", value)), NOW),
        store.add_session_grant(session.id_hash, SessionGrant(value, "gr"), NOW + 9, NOW),
        store.add_session_grant(session.id_hash, SessionGrant("web", value), NOW + 9, NOW),
        store.reauthenticate_session(session.id_hash, "f" * 64, auth_time=NOW, amr=(value,),
                                     acr="pwd", idle_exp=NOW + 9, now=NOW),
        store.grant_consent(value, "app", ("openid",), NOW),
        store.grant_consent("u-1", "app", (value,), NOW),
        store.record_consent_grant("u-1", "app", value, NOW + 9, NOW),
        store.import_sessions((SessionRecord(_session("d", acr=value)),), NOW),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidValue) as caught:
            await attempt
        assert not isinstance(caught.value, StoreUnavailable)
        for name in ("asyncpg", "sqlalchemy"):
            assert name not in str(caught.value).lower()
    # Nothing was written, and the pool is fine.
    assert await store.get_session(session.id_hash, NOW) == session
    consent = await store.get_consent("u-1", "app")
    assert consent is not None and consent.scopes == ("openid",)
    assert await store.list_sessions("u-1", NOW) == (session,)
    assert (await store.health())["store"]


async def test_a_session_with_the_sid_of_another_is_a_conflict(store: SqlStore) -> None:
    await store.create_session(_session("a"), NOW)
    with pytest.raises(Conflict) as caught:
        await store.create_session(_session("b", sid="sid_a"), NOW)
    assert caught.value.attribute == "sid"


# The hot paths: one statement each, on their indexes


async def test_the_session_lookup_and_a_grant_are_one_statement_each(url: str) -> None:
    store = await open_sql_store(url, migrate=False, pool_size=1)
    try:
        session = _session("a")
        await store.create_session(session, NOW)
        sent = await _sent(store)
        assert await store.get_session(session.id_hash, NOW) == session
        updated = await store.add_session_grant(
            session.id_hash, SessionGrant("web", "gr_1"), NOW + 7200, NOW)
        assert updated is not None and updated.clients == ("web",)
        await asyncio.sleep(0.05)  # the driver calls query loggers soon, not at once
        assert len(sent) == 2, sent  # autocommit: no BEGIN, no COMMIT
        assert sent[0].startswith("SELECT") and sent[1].startswith("WITH")
    finally:
        await store.close()


async def test_lookups_and_the_purge_use_their_indexes(
    store: SqlStore, db: asyncpg.Connection
) -> None:
    # Off, so that the plan of an empty table shows what the indexes can do.
    await db.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
    plans = {
        "sessions_pkey": "SELECT * FROM sessions WHERE id_hash = 'x' AND live_until > 5",
        "sessions_user_id_idx": "SELECT * FROM sessions WHERE user_id = 'u' AND live_until > 5"
                                " ORDER BY created_at, sid",
        "sessions_sid_key": "SELECT id_hash FROM sessions WHERE sid = 's'",
        "sessions_live_until_idx": "SELECT count(*) FROM sessions WHERE live_until > 5",
        "consents_pkey": "SELECT * FROM consents WHERE user_id = 'u' ORDER BY client_id",
        "consent_grants_exp_idx": "SELECT ctid FROM consent_grants WHERE exp <= 5 LIMIT 10",
    }
    for index, query in plans.items():
        plan = " ".join(r[0] for r in await db.fetch("EXPLAIN " + query))
        assert index in plan and "Sort" not in plan, (index, plan)
    purge = "SELECT ctid FROM sessions WHERE live_until <= 5 LIMIT 10"
    assert "sessions_live_until_idx" in " ".join(
        r[0] for r in await db.fetch("EXPLAIN " + purge))
    # The statements as the store sends them: their parameters are cast COLLATE "C", as
    # the keys are, or the indexes could not serve them.
    s = tables.sessions
    sent = {
        "sessions_pkey": sa.select(s).where(s.c.id_hash == "x", sessions.live(5)),
        "sessions_user_id_idx": sa.select(s).where(s.c.user_id == "u", sessions.live(5))
        .order_by(s.c.created_at, s.c.sid),
    }
    for index, stmt in sent.items():
        sql = str(stmt.compile(dialect=asyncpg_dialect()))  # type: ignore[no-untyped-call]
        plan = " ".join(r[0] for r in await db.fetch("EXPLAIN " + sql, "x", 5))
        assert index in plan, (index, plan)


async def test_keys_sort_in_code_point_order_whatever_the_database_locale(
    store: SqlStore
) -> None:
    # The order memory and hybrid use (Python's str order), not a locale's.
    for client in ("b", "B", "a", "_", "é"):
        await store.grant_consent("u-1", client, ("openid", "Zeta", "alpha", "_x"), NOW)
    listed = await store.list_consents("u-1")
    assert [c.client_id for c in listed] == sorted(["b", "B", "a", "_", "é"])
    assert listed[0].scopes == tuple(sorted(("openid", "Zeta", "alpha", "_x")))
    merged = await store.grant_consent("u-1", "a", ("Beta", "éa"), NOW)
    assert merged.scopes == tuple(sorted(("openid", "Zeta", "alpha", "_x", "Beta", "éa")))
    same_time = [_session(name, created_at=NOW) for name in ("b", "B", "a", "_")]
    for session in same_time:
        await store.create_session(session, NOW)
    assert [s.sid for s in await store.list_sessions("u-1", NOW)] == \
        sorted(s.sid for s in same_time)


# Races decided by the row locks


async def test_a_grant_recorded_while_the_session_ends_is_returned_with_it(
    store: SqlStore, db: asyncpg.Connection
) -> None:
    session = _session("a")
    await store.create_session(session, NOW)
    # Another instance is recording a grant: it holds the row and has written the grant,
    # uncommitted, when the logout arrives.
    lock = db.transaction()
    await lock.start()
    await db.execute("UPDATE sessions SET idle_exp = idle_exp WHERE id_hash = $1",
                     session.id_hash)
    await db.execute("INSERT INTO session_grants (id_hash, client_id, grant_id) "
                     "VALUES ($1, 'web', 'gr_late')", session.id_hash)
    ending = asyncio.create_task(store.end_session(session.id_hash, NOW))
    await asyncio.sleep(0.3)
    assert not ending.done()
    await lock.commit()
    ended = await ending
    assert ended is not None and ended.grants == (SessionGrant("web", "gr_late"),)
    assert await db.fetchval("SELECT count(*) FROM session_grants") == 0


async def test_a_grant_recorded_while_the_consent_is_withdrawn_is_returned_with_it(
    store: SqlStore, db: asyncpg.Connection
) -> None:
    await store.grant_consent("u-1", "app", ("openid",), NOW)
    lock = db.transaction()
    await lock.start()
    await db.execute("SELECT 1 FROM consents WHERE user_id = 'u-1' AND client_id = 'app' "
                     "FOR KEY SHARE")
    await db.execute("INSERT INTO consent_grants (user_id, client_id, grant_id, exp) "
                     "VALUES ('u-1', 'app', 'gr_late', $1)", NOW + 100)
    withdrawing = asyncio.create_task(store.withdraw_consent("u-1", "app", NOW))
    await asyncio.sleep(0.3)
    assert not withdrawing.done()
    await lock.commit()
    record = await withdrawing
    assert record is not None and record.grants == (ConsentGrant("gr_late", NOW + 100),)
    # And one arriving after the withdrawal waited for it, then found no consent.
    assert not await store.record_consent_grant("u-1", "app", "gr_after", NOW + 100, NOW)


async def test_session_work_joins_an_open_unit(store: SqlStore) -> None:
    session = _session("a")
    await store.create_session(session, NOW)
    await store.grant_consent("u-1", "app", ("openid",), NOW)

    async def work() -> None:
        assert await store.end_session(session.id_hash, NOW) is not None
        assert await store.withdraw_consent("u-1", "app", NOW) is not None
        await store.create_session(_session("b"), NOW)
        raise RuntimeError("undo")

    with pytest.raises(RuntimeError):
        await store.atomically(work)
    assert await store.get_session(session.id_hash, NOW) == session
    assert await store.get_session(_session("b").id_hash, NOW) is None
    assert await store.get_consent("u-1", "app") is not None

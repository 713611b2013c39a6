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

from adapters.sql import SqlStore, open_sql_store
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


async def _wire(store: SqlStore) -> list[str]:
    """Every statement sent from now on over the pool's connection (open the store with
    ``pool_size=1`` so that there is only one)."""
    sent: list[str] = []
    fairy = await store._engine.raw_connection()
    driver: Any = fairy.driver_connection
    driver.add_query_logger(lambda record: sent.append(record.query))
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

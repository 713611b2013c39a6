"""PostgreSQL goes away and comes back: the sql store fails cleanly and recovers by itself.

Each test runs its own private PostgreSQL (local binaries), so it can stop and start it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from litestar.testing import AsyncTestClient

from adapters.sql import SqlStore, open_sql_store
from domain.entities import AccessToken, User
from domain.errors import StoreUnavailable
from domain.filters import ListQuery
from domain.tokens import hash_token
from entrypoints.app import create_app
from entrypoints.settings import load_settings
from tests.services.postgres_server import LocalPostgres, local_postgres_or_skip

pytestmark = pytest.mark.postgres

NOW = int(time.time())


@pytest.fixture
def server() -> Iterator[LocalPostgres]:
    pg = local_postgres_or_skip()
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


def _token(value: str) -> AccessToken:
    return AccessToken(
        token_hash=hash_token(value), token_display=value[:7] + "...", active=True,
        scope="read", client_id="c1", exp=NOW + 3600, iat=NOW, sub="someone",
    )


async def _every_call_is_unavailable(store: SqlStore) -> None:
    calls = [
        store.get_user("u1"),
        store.find_user_by_name("alice"),
        store.list_users(ListQuery()),
        store.create_user(User(user_name="bob")),
        store.get_access_token(hash_token("tk_one"), NOW),
        store.save_tokens(_token("tk_two"), None, NOW),
        store.take_code(hash_token("ac_x"), NOW, remember_until=NOW + 60),
        store.take_refresh_token(hash_token("rt_x"), NOW),
        store.revoke_grant("g", NOW),
        store.claim_once("k", NOW + 30, NOW),
        store.hit("k", 60, NOW),
        store.counts(NOW),
        store.purge_expired(NOW),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable) as caught:
            await call
        text = str(caught.value).lower()
        assert "asyncpg" not in text and "sqlalchemy" not in text


async def test_store_fails_cleanly_while_down_and_recovers_without_reopening(
    server: LocalPostgres,
) -> None:
    store = await open_sql_store(server.url, connect_timeout=10)
    try:
        alice = await store.create_user(User(user_name="alice", id="u1"))
        await store.save_tokens(_token("tk_one"), None, NOW)
        assert await store.health() == {"store": True}

        server.stop()
        assert await store.health() == {"store": False}
        await _every_call_is_unavailable(store)

        server.start()
        assert await store.health() == {"store": True}
        # Committed before the outage: still there, through the very same store object.
        assert await store.get_user("u1") == alice
        token = await store.get_access_token(hash_token("tk_one"), NOW)
        assert token is not None and token.active
        await store.create_user(User(user_name="carol"))
        assert (await store.list_users(ListQuery())).total == 2
    finally:
        await store.close()


async def test_start_up_gives_up_after_the_connect_timeout(server: LocalPostgres) -> None:
    server.stop()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="could not be reached within 1s"):
        await open_sql_store(server.url, connect_timeout=1)
    assert time.monotonic() - started < 10


async def test_start_up_waits_for_a_database_that_comes_up(server: LocalPostgres) -> None:
    server.stop()
    starting = asyncio.get_running_loop().run_in_executor(None, _start_later, server)
    store = await open_sql_store(server.url, connect_timeout=30)
    try:
        await starting
        assert await store.health() == {"store": True}
        assert await store.find_user_by_name("nobody") is None
    finally:
        await store.close()


def _start_later(server: LocalPostgres) -> None:
    time.sleep(1.0)
    server.start()


async def test_http_readiness_and_requests_answer_503_while_down_then_recover(
    server: LocalPostgres,
) -> None:
    settings = load_settings(
        {
            "STORE_BACKEND": "sql",
            "DATABASE_URL": server.url.replace("postgresql://", "postgres://"),
            "CLIENT_CREDENTIALS": "c1:s3cret-value-that-is-long-enough-0123456789",
        }
    )
    app = create_app(settings)
    async with AsyncTestClient(app) as client:
        assert (await client.get("/health/ready")).status_code == 200
        form = {"token": "tk_unknown"}
        auth = ("c1", "s3cret-value-that-is-long-enough-0123456789")
        assert (await client.post("/oauth/introspect", data=form, auth=auth)).status_code == 200

        server.stop()
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        down = await client.post("/oauth/introspect", data=form, auth=auth)
        assert down.status_code == 503
        for body in (ready.text.lower(), down.text.lower()):
            assert "asyncpg" not in body and "sqlalchemy" not in body and "traceback" not in body

        server.start()
        assert (await client.get("/health/ready")).status_code == 200
        back = await client.post("/oauth/introspect", data=form, auth=auth)
        assert back.status_code == 200
        assert back.json() == {"active": False}


async def test_first_request_after_a_restart_succeeds(server: LocalPostgres) -> None:
    store = await open_sql_store(server.url, connect_timeout=10, pool_size=4)
    try:
        await store.save_tokens(_token("tk_kept"), None, NOW)
        # Fill the pool with connections that the restart will kill.
        await asyncio.gather(*(store.get_access_token(hash_token("tk_kept"), NOW)
                               for _ in range(8)))
        server.stop()
        server.start()
        # No request in between: every pooled connection is dead, yet nothing fails.
        token = await store.get_access_token(hash_token("tk_kept"), NOW)
        assert token is not None
        await store.save_tokens(_token("tk_after"), None, NOW)
        assert await store.health() == {"store": True}
    finally:
        await store.close()

"""``hybrid`` when redis-py's connection is torn down under a command, on a real Redis and
a real Redis Cluster.

During a cluster failover (and under load, after a command timeout), a ``disconnect()``
that resumes after its connection was opened again clears the new stream writer, and
redis-py's next write fails with ``AttributeError: 'NoneType' object has no attribute
'writelines'`` -- no ``RedisError`` (redis/redis-py#4287). Here that state is made on
purpose: once armed, the next command's connection loses its writer after redis-py has
checked it is connected, and redis-py's own write then fails as it did during the
failover. The call is asked once more (the client reconnects); torn twice, a decision is
refused (503, retried by the client) and a read is answered; nothing is decided twice or
lost, and no driver fault reaches a caller.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError

from adapters.hybrid import (
    ClusterTokenState,
    HybridStore,
    RedisTokenState,
    cluster_client,
    redis_client,
)
from domain.entities import ConsumedCode, Taken
from domain.errors import StoreUnavailable
from tests.e2e.conftest import StoreBackend
from tests.e2e.oauth_setup import (
    FORM,
    REDIRECT,
    VERIFIER,
    basic,
    build_app,
    code_in,
    running,
)
from tests.integration.token_records import access as _access
from tests.integration.token_records import code as _code
from tests.integration.token_records import now as _now
from tests.integration.token_records import refresh as _refresh
from tests.services.redis_server import session_redis_url

STORE_LOGGER = "adapters.hybrid.store"


class TornConnections:
    """Tears down the connection of the next ``n`` commands, as the failover race does."""

    def __init__(self) -> None:
        self.pending = 0
        self.torn = 0

    def arm(self, commands: int = 1) -> None:
        self.pending = commands


@pytest.fixture
def torn(monkeypatch: pytest.MonkeyPatch) -> TornConnections:
    faults = TornConnections()
    checked = AbstractConnection.check_health

    async def check_health(connection: AbstractConnection) -> None:
        # Called by send_packed_command once it has found the connection connected,
        # right before it writes: the point where the racing disconnect() cleared it.
        await checked(connection)
        if faults.pending:
            faults.pending -= 1
            faults.torn += 1
            connection._writer = None

    monkeypatch.setattr(AbstractConnection, "check_health", check_health)
    return faults


@pytest.fixture(params=[
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("redis_cluster", marks=pytest.mark.redis_cluster),
])
def state(request: pytest.FixtureRequest) -> RedisTokenState | ClusterTokenState:
    """The shared state on the session's Redis or Redis Cluster, with keys of its own."""
    prefix = f"torn:{uuid.uuid4().hex[:12]}:"
    if request.param == "redis":
        return RedisTokenState(redis_client(session_redis_url()), prefix)
    return ClusterTokenState(
        cluster_client(request.getfixturevalue("redis_cluster_url")), prefix)


@pytest.fixture
async def store(state: RedisTokenState | ClusterTokenState) -> AsyncIterator[HybridStore]:
    """One instance on ``state``, retrying Redis at once after a failure (no back-off)."""
    hybrid = HybridStore(state, retry_after=0)
    assert await hybrid.health() == {"store": True, "redis": True}
    yield hybrid
    await hybrid.close()


@pytest.mark.parametrize("tears", [1, 2], ids=["torn_once", "torn_twice"])
async def test_a_code_redeemed_over_torn_connections_is_redeemed_once(
    store: HybridStore, torn: TornConnections, tears: int,
) -> None:
    """Torn once, the redemption is asked again and answered; torn twice, it is refused,
    and the code (whose writes never went out) is still good, once."""
    now = _now()
    code = _code(f"ac_torn_{tears}", now + 600)
    await store.save_code(code, now)
    torn.arm(tears)
    if tears == 2:
        with pytest.raises(StoreUnavailable):
            await store.take_code(code.code_hash, now, remember_until=now + 600)
    assert await store.take_code(code.code_hash, now, remember_until=now + 600) == code
    assert torn.torn == tears
    again = await store.take_code(code.code_hash, now, remember_until=now + 600)
    assert isinstance(again, ConsumedCode)
    assert await store.health() == {"store": True, "redis": True}


async def test_a_claim_over_torn_connections_is_refused_and_decides_nothing(
    store: HybridStore, torn: TornConnections,
) -> None:
    now = _now()
    torn.arm(2)
    with pytest.raises(StoreUnavailable):
        await store.claim_once("totp:user-1:123456", now + 90, now)
    torn.arm(1)
    assert await store.claim_once("totp:user-1:123456", now + 90, now) is True
    assert await store.claim_once("totp:user-1:123456", now + 90, now) is False
    assert torn.torn == 3


async def test_a_refresh_token_rotated_over_torn_connections_is_taken_once(
    store: HybridStore, torn: TornConnections,
) -> None:
    now = _now()
    access = _access("tk_torn", now)
    refresh = _refresh("rt_torn", access, now)
    await store.save_tokens(access, refresh, now)
    torn.arm(2)
    try:
        first = await store.take_refresh_token(refresh.token_hash, now)
    except StoreUnavailable:
        first = await store.take_refresh_token(refresh.token_hash, now)
    assert torn.torn == 2
    assert first == Taken(refresh)
    assert not isinstance(await store.take_refresh_token(refresh.token_hash, now), Taken)


async def test_a_take_asked_again_by_the_same_call_gets_the_same_answer(
    store: HybridStore, state: RedisTokenState | ClusterTokenState,
) -> None:
    """A take whose answer was lost is asked again with the same taker: it gets the code,
    not "already used"; any other take is a replay."""
    now = _now()
    code = _code("ac_taker", now + 600)
    await store.save_code(code, now)
    assert await state.take_code(code.code_hash, now, now + 600, "taker-1") == code
    assert await state.take_code(code.code_hash, now, now + 600, "taker-1") == code
    replay = await state.take_code(code.code_hash, now, now + 600, "taker-2")
    assert replay == ConsumedCode(code.code_hash, code.grant_id, code.client_id)
    assert isinstance(await store.take_code(code.code_hash, now, remember_until=now + 600),
                      ConsumedCode)


@pytest.fixture
def lost_answers(monkeypatch: pytest.MonkeyPatch) -> TornConnections:
    """Loses the answer of the next ``n`` commands: read, then the connection fails."""
    faults = TornConnections()
    read = AbstractConnection.read_response

    async def read_response(connection: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        response = await read(connection, *args, **kwargs)
        if faults.pending:
            faults.pending -= 1
            faults.torn += 1
            await connection.disconnect(nowait=True)
            raise RedisConnectionError("Connection closed by server.")
        return response

    monkeypatch.setattr(AbstractConnection, "read_response", read_response)
    return faults


@pytest.mark.redis_cluster
async def test_on_a_cluster_a_code_whose_answer_was_lost_is_redeemed_by_the_retry(
    redis_cluster_url: str, lost_answers: TornConnections,
) -> None:
    """The cluster client asks once more after a connection error; the code was taken by
    the first ask, and the second (the same take) gets it: no false replay."""
    now = _now()
    store = HybridStore(
        ClusterTokenState(cluster_client(redis_cluster_url), f"torn:{uuid.uuid4().hex[:12]}:"))
    try:
        code = _code("ac_lost", now + 600)
        await store.save_code(code, now)
        lost_answers.arm()
        assert await store.take_code(code.code_hash, now, remember_until=now + 600) == code
        assert lost_answers.torn == 1
        again = await store.take_code(code.code_hash, now, remember_until=now + 600)
        assert isinstance(again, ConsumedCode)
    finally:
        await store.close()


@pytest.mark.redis
async def test_on_one_redis_a_code_whose_answer_was_lost_is_refused_and_never_handed_out(
    lost_answers: TornConnections,
) -> None:
    """One Redis is not asked again after a connection error (the store's back-off
    handles it): the request is refused (503) and the code, taken by Redis, is spent."""
    now = _now()
    store = HybridStore(RedisTokenState(redis_client(session_redis_url()),
                                        f"torn:{uuid.uuid4().hex[:12]}:"), retry_after=0)
    try:
        code = _code("ac_lost_one", now + 600)
        await store.save_code(code, now)
        lost_answers.arm()
        with pytest.raises(StoreUnavailable):
            await store.take_code(code.code_hash, now, remember_until=now + 600)
        again = await store.take_code(code.code_hash, now, remember_until=now + 600)
        assert isinstance(again, ConsumedCode)
    finally:
        await store.close()


@pytest.mark.redis_cluster
async def test_on_a_cluster_a_read_over_a_torn_connection_is_asked_again(
    redis_cluster_url: str, torn: TornConnections, caplog: pytest.LogCaptureFixture,
) -> None:
    """The cluster's direct read of a token goes to its slot's master; a connection torn
    under it is handed to the full client, which reads again: no outage, no warning."""
    now = _now()
    store = HybridStore(
        ClusterTokenState(cluster_client(redis_cluster_url), f"torn:{uuid.uuid4().hex[:12]}:"))
    try:
        access = _access("tk_torn_read", now)
        await store.save_tokens(access, None, now)
        with caplog.at_level(logging.WARNING, logger=STORE_LOGGER):
            for times in (1, 2):
                torn.arm(times)
                assert await store.get_access_token(access.token_hash, now) == access
        assert torn.torn == 3
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert await store.health() == {"store": True, "redis": True}
    finally:
        await store.close()


@pytest.fixture
def redis_app_backend() -> Iterator[StoreBackend]:
    yield StoreBackend("hybrid", env={"STORE_BACKEND": "hybrid",
                                      "REDIS_URL": session_redis_url()})


@pytest.mark.redis
def test_the_token_endpoint_answers_503_over_torn_connections_and_the_retry_succeeds(
    redis_app_backend: StoreBackend, torn: TornConnections, tmp_path: Path,
) -> None:
    app = build_app(redis_app_backend, tmp_path)
    with running(app) as client:
        redeem = {"grant_type": "authorization_code", "code": code_in(client, app),
                  "redirect_uri": REDIRECT, "code_verifier": VERIFIER}
        torn.arm(2)
        refused = client.post("/oauth/token", headers={**FORM, **basic()}, data=redeem)
        assert torn.torn == 2
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "temporarily_unavailable"
        assert "Retry-After" in refused.headers
        for internal in ("redis", "attributeerror", "nonetype", "traceback"):
            assert internal not in refused.text.lower()
        assert client.get("/health/ready").status_code == 200
        # Torn once, the redemption is asked again and answered.
        torn.arm(1)
        later = client.post("/oauth/token", headers={**FORM, **basic()}, data=redeem)
        assert torn.torn == 3
        assert later.status_code == 200, later.text
        assert later.json()["token_type"] in {"Bearer", "DPoP"}

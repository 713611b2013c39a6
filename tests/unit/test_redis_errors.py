"""What the hybrid adapter takes for a failed Redis call (adapters/hybrid/redis_errors.py):
redis-py's errors, and the ``AttributeError``/``TypeError`` it lets out of a connection torn
down under a command -- told from the same types raised by our own code, which are bugs.

The faults here are raised by redis-py's and asyncio's own code, put in the state a
concurrent ``disconnect()`` leaves a connection in (its stream writer cleared, or a writer
left without a transport). With real servers: tests/integration/test_hybrid_torn_connections.py.
"""

from __future__ import annotations

import asyncio
import socket
from typing import cast

import pytest
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.hybrid import HybridStore
from adapters.hybrid.redis_errors import is_redis_failure, redis_failures_suppressed
from adapters.hybrid.redis_state import SharedTokenState
from domain.errors import StoreUnavailable

NOW = 1_700_000_000


async def _caught(call: object) -> BaseException:
    try:
        await call  # type: ignore[misc]
    except Exception as exc:  # the test looks at what was raised
        return exc
    raise AssertionError("nothing was raised")


async def _write_without_a_writer() -> BaseException:
    """redis-py writing on a connection whose writer a resumed disconnect() cleared."""
    connection = Connection()
    return await _caught(connection._send_packed_command([b"PING\r\n"]))


async def _write_without_a_transport() -> BaseException:
    """redis-py writing through an asyncio writer that has lost its transport: the
    failure is raised inside asyncio's stream code, under redis-py's."""
    ours, theirs = socket.socketpair()
    _, writer = await asyncio.open_connection(sock=ours)
    transport = writer.transport
    connection = Connection()
    connection._writer = writer
    writer._transport = None  # type: ignore[attr-defined]
    try:
        return await _caught(connection._send_packed_command([b"PING\r\n"]))
    finally:
        writer._transport = transport  # type: ignore[attr-defined]
        writer.close()
        await writer.wait_closed()
        theirs.close()


async def test_what_redis_py_leaks_from_a_torn_down_connection_is_a_failed_call() -> None:
    in_redis, in_asyncio = await _write_without_a_writer(), await _write_without_a_transport()
    assert _innermost_module(in_redis) == "redis.asyncio.connection"
    assert _innermost_module(in_asyncio) == "asyncio.streams"
    for fault in (in_redis, in_asyncio):
        assert isinstance(fault, AttributeError)
        assert is_redis_failure(fault)


def _innermost_module(exc: BaseException) -> str:
    frames = exc.__traceback__
    assert frames is not None
    while frames.tb_next is not None:
        frames = frames.tb_next
    return str(frames.tb_frame.f_globals["__name__"])


@pytest.mark.parametrize("error", [
    RedisConnectionError("reset"), RedisTimeoutError("slow"), ResponseError("NOSCRIPT"),
    RedisClusterException("no node"), ConnectionResetError(), TimeoutError(),
])
def test_redis_and_socket_errors_are_failed_calls(error: Exception) -> None:
    assert is_redis_failure(error)


async def test_the_same_types_raised_by_our_own_code_are_not() -> None:
    def ours() -> None:
        raise AttributeError("'NoneType' object has no attribute 'grant_id'")

    async def ours_called_by_redis_py() -> None:
        ours()

    async def ignore(_: Exception) -> None:
        return None

    plain = await _caught(ours_called_by_redis_py())
    assert isinstance(plain, AttributeError) and not is_redis_failure(plain)
    # Even when redis-py called it (its retry helper here): the innermost frame is ours.
    retry = Retry(NoBackoff(), 0)
    through_redis = await _caught(retry.call_with_retry(ours_called_by_redis_py, ignore))
    assert isinstance(through_redis, AttributeError) and not is_redis_failure(through_redis)
    assert not is_redis_failure(TypeError("unhashable type"))
    assert not is_redis_failure(ValueError("not a driver fault"))


async def test_a_best_effort_call_ignores_failed_calls_only() -> None:
    with redis_failures_suppressed():
        raise RedisConnectionError("reset")
    leaked = await _write_without_a_writer()
    with redis_failures_suppressed():
        raise leaked
    with pytest.raises(KeyError), redis_failures_suppressed():
        raise KeyError("ours")


class _BrokenState:
    """A shared state whose connection is torn down under the first ``faults`` calls (or
    whose code has a bug), answering the code after; nothing else of SharedTokenState is
    reached by these tests."""

    def __init__(self, fault: BaseException, faults: int) -> None:
        self.fault = fault
        self.faults = faults
        self.calls = 0
        self.takers: list[str] = []

    async def take_code(self, code_hash: str, now: int, until: int, taker: str) -> str:
        self.calls += 1
        self.takers.append(taker)
        if self.calls <= self.faults:
            raise self.fault
        return "the code"

    async def ping(self) -> bool:
        return True


def _store(state: _BrokenState, *, retry_after: float) -> HybridStore:
    return HybridStore(cast(SharedTokenState, state), retry_after=retry_after)


async def test_a_call_over_a_torn_down_connection_is_asked_once_more() -> None:
    state = _BrokenState(await _write_without_a_writer(), faults=1)
    store = _store(state, retry_after=60)
    assert await store.take_code("a" * 64, NOW, remember_until=NOW + 600) == "the code"
    assert state.calls == 2
    # Asked again as the same take: Redis answers it as the first (scripts.TAKE_CODE).
    assert state.takers[0] == state.takers[1]
    await store.take_code("a" * 64, NOW, remember_until=NOW + 600)
    assert state.takers[2] != state.takers[0]


async def test_a_connection_torn_down_twice_refuses_the_decision_and_redis_is_tried_again(
) -> None:
    state = _BrokenState(await _write_without_a_writer(), faults=3)
    store = _store(state, retry_after=0)
    with pytest.raises(StoreUnavailable):
        await store.take_code("a" * 64, NOW, remember_until=NOW + 600)
    assert state.calls == 2
    assert await store.health() == {"store": True, "redis": True}
    assert await store.take_code("a" * 64, NOW, remember_until=NOW + 600) == "the code"
    assert state.calls == 4


async def test_a_bug_under_a_decision_is_raised_and_not_taken_for_an_outage() -> None:
    state = _BrokenState(AttributeError("'NoneType' object has no attribute 'grant_id'"), 2)
    store = _store(state, retry_after=60)
    with pytest.raises(AttributeError):
        await store.take_code("a" * 64, NOW, remember_until=NOW + 600)
    assert state.calls == 1  # not asked again: a bug is no torn connection
    # Redis was not marked down: the next call reaches it at once, back-off or not.
    with pytest.raises(AttributeError):
        await store.take_code("a" * 64, NOW, remember_until=NOW + 600)
    assert state.calls == 2

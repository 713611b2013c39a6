"""The hybrid store's lean Redis GET keeps timeouts, errors and connection hygiene.

A fake RESP server on loopback stands in for Redis: it answers ``GET <key>`` with the key
itself, after a delay the key names, or never.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.hybrid import COMMAND_TIMEOUT_SECONDS, redis_client
from adapters.hybrid.redis_state import RedisTokenState


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            header = await reader.readline()  # *N
            if not header:
                return
            parts = []
            for _ in range(int(header[1:])):
                await reader.readline()  # $len
                parts.append((await reader.readline()).rstrip(b"\r\n"))
            key = parts[-1]
            if key == b"silent":
                continue
            if key == b"hangup":
                return
            if key.startswith(b"slow"):
                await asyncio.sleep(0.3)
            writer.write(b"$%d\r\n%s\r\n" % (len(key), key))
            await writer.drain()
    finally:
        writer.close()


@pytest.fixture
async def state() -> AsyncIterator[RedisTokenState]:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = redis_client(f"redis://127.0.0.1:{port}/0")
    yield RedisTokenState(client, "t:")
    await client.aclose()
    server.close()


async def test_answers_the_key_asked(state: RedisTokenState) -> None:
    assert await state._get("k1") == b"k1"
    assert await state._get("k2") == b"k2"


async def test_a_silent_server_times_out_as_a_redis_error(state: RedisTokenState) -> None:
    started = time.monotonic()
    with pytest.raises(RedisTimeoutError) as caught:
        await state._get("silent")
    assert isinstance(caught.value, RedisError)
    assert time.monotonic() - started < COMMAND_TIMEOUT_SECONDS + 1
    assert await state._get("after") == b"after"  # a fresh connection, not the stuck one


async def test_a_dropped_connection_is_a_redis_error(state: RedisTokenState) -> None:
    with pytest.raises(RedisConnectionError):
        await state._get("hangup")
    assert await state._get("after") == b"after"


async def test_a_cancelled_get_does_not_leave_its_reply_for_the_next(
    state: RedisTokenState,
) -> None:
    pending = asyncio.ensure_future(state._get("slow1"))
    await asyncio.sleep(0.05)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    await asyncio.sleep(0.4)  # the server's late reply to slow1 has been written by now
    assert await state._get("next") == b"next"

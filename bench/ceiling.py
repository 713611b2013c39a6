"""The ceiling: what Litestar + uvicorn can do on this machine with no service logic.

Three routes, each parsing a form body and answering JSON of an introspection's size:

- ``POST /bare``: nothing else;
- ``POST /redis``: plus one Redis ``GET`` (``CEILING_REDIS_URL``);
- ``POST /sql``: plus one asyncpg ``SELECT`` by primary key on ``tokens``
  (``CEILING_DATABASE_URL``, a migrated auth-service database).

Served by ``bench/run.py`` with the same uvicorn options as ``auth-service serve``:
``uvicorn bench.ceiling:create_ceiling_app --factory``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
import redis.asyncio as redis
from litestar import Litestar, post
from litestar.enums import RequestEncodingType
from litestar.params import Body

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]

_clients: dict[str, Any] = {}


def _answer(form: dict[str, str], found: object) -> dict[str, object]:
    # Shaped like an introspection answer so that JSON encoding costs the same.
    return {
        "active": True,
        "scope": "read write",
        "client_id": "bench",
        "token_type": "Bearer",
        "exp": 1_900_000_000,
        "iat": 1_800_000_000,
        "iss": "http://localhost:8080",
        "found": found is not None,
        "length": len(form.get("token", "")),
    }


@post("/bare", status_code=200)
async def bare(data: Form) -> dict[str, object]:
    """Form in, JSON out."""
    return _answer(data, True)


@post("/redis", status_code=200)
async def one_redis_get(data: Form) -> dict[str, object]:
    """Form in, one Redis GET, JSON out."""
    found = await _clients["redis"].get("bench:" + data.get("token", ""))
    return _answer(data, found)


@post("/sql", status_code=200)
async def one_select(data: Form) -> dict[str, object]:
    """Form in, one SELECT by primary key, JSON out."""
    token_hash = hashlib.sha256(data.get("token", "").encode()).hexdigest()
    row = await _clients["pool"].fetchrow(
        "SELECT active, scope, client_id, exp, iat FROM tokens WHERE token_hash = $1", token_hash
    )
    return _answer(data, row)


@asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    redis_url = os.environ.get("CEILING_REDIS_URL")
    database_url = os.environ.get("CEILING_DATABASE_URL")
    if redis_url:
        _clients["redis"] = redis.Redis.from_url(redis_url)
        await _clients["redis"].set("bench:ceiling", "1")
    if database_url:
        size = int(os.environ.get("CEILING_POOL_SIZE", "10"))
        _clients["pool"] = await asyncpg.create_pool(database_url, min_size=size, max_size=size)
    try:
        yield
    finally:
        if "redis" in _clients:
            await _clients.pop("redis").aclose()
        if "pool" in _clients:
            await _clients.pop("pool").close()


def create_ceiling_app() -> Litestar:
    """The ceiling application (uvicorn ``--factory``)."""
    return Litestar(route_handlers=[bare, one_redis_get, one_select], lifespan=[_lifespan])

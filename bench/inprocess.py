"""Per-request CPU cost of the application alone, driven in process through ASGI.

``python -m bench.inprocess [--requests N] [--profile]`` builds the service with
``create_app()`` (hybrid store, the environment's settings) and, for comparison, the
ceiling's ``/bare`` route, then calls each ASGI application directly N times per scenario:
no sockets, no uvicorn, so the figure is the application's own CPU time per request, steady
enough to compare two versions of a hot path even on a busy machine. ``--profile`` prints
the top of a cProfile of the service's scenarios. ``--scale 1000,1000000`` compares
introspection with that many tokens stored (hybrid, seeded through the port).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import os
import pstats
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from litestar import Litestar

Message = MutableMapping[str, Any]
ROUND = 1000
CLIENT = "bench"
SECRET = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"
BASIC = b"Basic " + base64.b64encode(f"{CLIENT}:{SECRET}".encode())
CLIENTS_TOML = f"""
[[clients]]
client_id = "{CLIENT}"
name = "bench"
secret = "{SECRET}"
grant_types = ["client_credentials"]
scopes = ["read", "write"]
token_endpoint_auth_method = "client_secret_basic"
"""


def _scope(path: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"127.0.0.1:8080"), (b"user-agent", b"wrk"), (b"authorization", BASIC),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
        ],
    }


async def call(app: Litestar, path: str, body: bytes) -> tuple[int, bytes]:
    """One request through the ASGI application: (status, body)."""
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    # Litestar types the ASGI callables with TypedDicts; plain dicts are what servers send.
    asgi: Any = app
    await asgi(_scope(path, body), receive, send)
    return status, b"".join(chunks)


async def per_request_us(
    app: Litestar, path: str, body: bytes | list[bytes], requests: int,
    around: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]] | None = None,
) -> float:
    """CPU microseconds per request (process time), after a short warm-up.

    The requests run in rounds of 1,000 and the cheapest round counts: other processes on
    the machine only ever make a round slower, never faster.
    """
    bodies = body if isinstance(body, list) else [body]
    for index in range(200):
        status, answer = await call(app, path, bodies[index % len(bodies)])
        if status != 200:
            raise RuntimeError(f"{path} answered {status}: {answer[:200]!r}")

    rounds: list[float] = []

    async def loop() -> None:
        for _ in range(max(requests // ROUND, 1)):
            started = time.process_time()
            for index in range(ROUND):
                await call(app, path, bodies[index % len(bodies)])
            rounds.append(time.process_time() - started)

    await (around(loop) if around else loop())
    return min(rounds) * 1e6 / ROUND


async def calls_per_request(app: Litestar, path: str, body: bytes, requests: int = 500) -> float:
    """Python function calls per request (cProfile's count): unlike time, the same on a
    busy machine and an idle one, so a small change to a hot path shows up exactly."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        await call(app, path, body)
    profiler.disable()
    return float(pstats.Stats(profiler).total_calls) / requests  # type: ignore[attr-defined]


async def run(requests: int, profile: bool) -> None:
    from bench.ceiling import create_ceiling_app
    from entrypoints.app import create_app

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as clients:
        clients.write(CLIENTS_TOML)
    os.environ.setdefault("CLIENTS_FILE", clients.name)
    ceiling = create_ceiling_app()
    service = create_app()
    profiler = cProfile.Profile() if profile else None

    async def profiled(loop: Callable[[], Awaitable[None]]) -> None:
        assert profiler is not None
        profiler.enable()
        try:
            await loop()
        finally:
            profiler.disable()

    async with ceiling.lifespan(), service.lifespan():
        _status, answer = await call(service, "/oauth/token",
                                    b"grant_type=client_credentials&scope=read")
        token = answer.split(b'"access_token":"')[1].split(b'"')[0]
        bare = await per_request_us(ceiling, "/bare", b"token=" + token, requests)
        bare_calls = await calls_per_request(ceiling, "/bare", b"token=" + token)
        print(f"ceiling /bare            {bare:7.1f} us/request  {bare_calls:6.1f} calls/request")
        for name, path, body in (
            ("issuance", "/oauth/token", b"grant_type=client_credentials&scope=read"),
            ("introspection", "/oauth/introspect", b"token=" + token),
        ):
            cost = await per_request_us(service, path, body, requests,
                                        profiled if profiler else None)
            calls = await calls_per_request(service, path, body)
            print(f"service {name:16} {cost:7.1f} us/request  {calls:6.1f} calls/request"
                  f"  (ceiling/service {bare / cost:.2f})")
    os.unlink(clients.name)
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


async def scale(requests: int, sizes: list[int]) -> None:
    """Introspection of a random seeded token with N tokens stored, for each N in ``sizes``.

    A fresh service per size; tokens are saved through the port (``bench.seeded_app``).
    """
    import random

    from bench.seeded_app import seed_tokens, seed_value
    from entrypoints.app import create_app
    from entrypoints.http.services import Services

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as clients:
        clients.write(CLIENTS_TOML)
    os.environ.setdefault("CLIENTS_FILE", clients.name)
    rng = random.Random(6)
    for size in sizes:
        service = create_app()
        async with service.lifespan():
            services: Services = service.state.services
            await seed_tokens(services.store, services.clock.now(), size)
            bodies = [f"token={seed_value(rng.randrange(size))}".encode() for _ in range(1000)]
            cost = await per_request_us(service, "/oauth/introspect", bodies, requests)
            print(f"introspection, {size:>9,} tokens stored: {cost:7.1f} us/request", flush=True)
    os.unlink(clients.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--scale", type=str, default="",
                        help="comma-separated store sizes, e.g. 1000,1000000: introspection "
                             "cost with that many tokens stored instead of the comparison")
    args = parser.parse_args()
    if args.scale:
        asyncio.run(scale(args.requests, [int(n) for n in args.scale.split(",")]))
    else:
        asyncio.run(run(args.requests, args.profile))


if __name__ == "__main__":
    main()

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
JWT_CLIENT = "bench-jwt"
ASSERTION_TYPE = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"


def _jwt_client(key: Any) -> str:
    """A private_key_jwt client with ``key``'s public half as its inline ``jwks``."""
    import json

    jwks = json.dumps({"keys": [key.as_dict(private=False)]}).replace('":', '" =')
    return f"""
[[clients]]
client_id = "{JWT_CLIENT}"
grant_types = ["client_credentials"]
scopes = ["read"]
token_endpoint_auth_method = "private_key_jwt"
jwks = {jwks}
"""


def _assertion_bodies(key: Any, issuer: str, count: int) -> list[bytes]:
    """``count`` token request bodies, each with its own RS256 assertion (single-use)."""
    from joserfc import jwt

    now = int(time.time())
    return [
        (f"grant_type=client_credentials&scope=read&client_assertion_type={ASSERTION_TYPE}"
         "&client_assertion=" + jwt.encode(
             {"alg": "RS256", "kid": key.kid},
             {"iss": JWT_CLIENT, "sub": JWT_CLIENT, "aud": issuer, "iat": now,
              "exp": now + 290, "jti": f"inprocess-{index}"}, key)).encode()
        for index in range(count)
    ]


def _scope(path: str, body: bytes, auth: bool = True) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"127.0.0.1:8080"), (b"user-agent", b"wrk"), (b"authorization", BASIC),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    if not auth:  # a client assertion is the only authentication its request may carry
        scope["headers"] = [h for h in scope["headers"] if h[0] != b"authorization"]
    return scope


async def call(app: Litestar, path: str, body: bytes, auth: bool = True) -> tuple[int, bytes]:
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
    await asgi(_scope(path, body, auth), receive, send)
    return status, b"".join(chunks)


async def per_request_us(
    app: Litestar, path: str, body: bytes | list[bytes], requests: int,
    around: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]] | None = None,
    auth: bool = True,
) -> float:
    """CPU microseconds per request (process time), after a short warm-up.

    The requests run in rounds of 1,000 and the cheapest round counts: other processes on
    the machine only ever make a round slower, never faster.
    """
    bodies = body if isinstance(body, list) else [body]
    # One position through the bodies for the warm-up and every round, so that a list of
    # single-use bodies (client assertions) is never replayed while it lasts.
    position = 0
    for _ in range(200):
        status, answer = await call(app, path, bodies[position % len(bodies)], auth)
        position += 1
        if status != 200:
            raise RuntimeError(f"{path} answered {status}: {answer[:200]!r}")

    rounds: list[float] = []
    failures = 0

    async def loop() -> None:
        nonlocal position, failures
        for _ in range(max(requests // ROUND, 1)):
            started = time.process_time()
            for _ in range(ROUND):
                status, _answer = await call(app, path, bodies[position % len(bodies)], auth)
                position += 1
                failures += status != 200
            rounds.append(time.process_time() - started)

    await (around(loop) if around else loop())
    if failures:
        raise RuntimeError(f"{path}: {failures} answers were not 200")
    return min(rounds) * 1e6 / ROUND


async def calls_per_request(
    app: Litestar, path: str, body: bytes | list[bytes], requests: int = 500, auth: bool = True,
) -> float:
    """Python function calls per request (cProfile's count): unlike time, the same on a
    busy machine and an idle one, so a small change to a hot path shows up exactly."""
    profiler = cProfile.Profile()
    bodies = body if isinstance(body, list) else [body]
    profiler.enable()
    for index in range(requests):
        await call(app, path, bodies[index % len(bodies)], auth)
    profiler.disable()
    return float(pstats.Stats(profiler).total_calls) / requests  # type: ignore[attr-defined]


async def run(requests: int, profile: bool) -> None:
    from joserfc.jwk import RSAKey

    from bench.ceiling import create_ceiling_app
    from entrypoints.app import create_app

    jwt_key = RSAKey.generate_key(2048, private=True, parameters={"kid": "bench-1"})
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as clients:
        clients.write(CLIENTS_TOML + _jwt_client(jwt_key))
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
        issuer = service.state.services.settings.issuer
        signed = _assertion_bodies(jwt_key, issuer, 200 + requests + 500)
        cost = await per_request_us(service, "/oauth/token", signed[:200 + requests],
                                    requests, profiled if profiler else None, auth=False)
        calls = await calls_per_request(service, "/oauth/token", signed[200 + requests:],
                                        auth=False)
        print(f"service {'issuance pk_jwt':16} {cost:7.1f} us/request  {calls:6.1f} "
              f"calls/request  (ceiling/service {bare / cost:.2f})")
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

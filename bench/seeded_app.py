"""The service as ``auth-service serve`` builds it, plus a bench-only start-up hook.

The hook fills the store THROUGH THE PORT (``Store.save_tokens``) before the server takes
requests, and can run a purge (``Store.purge_expired``) on demand. Nothing here is product
code: ``bench/run.py`` serves ``bench.seeded_app:create_seeded_app`` with uvicorn.

Environment:

- ``BENCH_SEED_TOKENS``: how many live access tokens to save (values ``tk_bench`` +
  a zero-padded index, so that wrk can introspect a random one of them);
- ``BENCH_SEED_EXPIRED``: how many already-expired access tokens to save as well;
- ``BENCH_PURGE_TRIGGER``: a file path; when the file appears, one ``purge_expired`` runs
  and its duration and counts are written as JSON to the same path + ``.done``;
- ``BENCH_SEED_CODES``: how many authorization codes to save per client of
  ``BENCH_SEED_CODE_CLIENTS`` (``client=scope;client=scope``), for the user ``bench-user``,
  without PKCE, redirect URI :data:`CODE_REDIRECT`; values :func:`code_value`, so that wrk
  can redeem each once (bench/run.py, section ``signing``).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import msgspec
from litestar import Litestar

from domain.entities import AccessToken, AuthorizationCode, User
from domain.errors import NotFound
from domain.tokens import hash_token, token_display
from entrypoints.app import create_app
from entrypoints.http.services import Services
from ports.store import Store, TokenStore

SEED_PREFIX = "tk_bench"
CODE_REDIRECT = "https://bench.example/cb"
CODE_USER = "bench-user"
_background: set[asyncio.Task[None]] = set()


def seed_value(index: int) -> str:
    """The token value of seeded token ``index`` (what bench/wrk/request.lua sends)."""
    return f"{SEED_PREFIX}{index:010d}"


def seed_record(value: str, now: int, exp: int) -> AccessToken:
    """An access-token record as client_credentials issuance writes one."""
    return AccessToken(
        token_hash=hash_token(value),
        token_display=token_display(value),
        active=True,
        scope="read",
        client_id="bench",
        exp=exp,
        iat=now,
    )


async def seed_tokens(
    store: TokenStore, now: int, count: int, *, start: int = 0, exp: int | None = None
) -> None:
    """Save ``count`` tokens ``start..start+count-1`` through the port, valid until ``exp``."""
    until = exp if exp is not None else now + 86_400
    for index in range(start, start + count):
        await store.save_tokens(seed_record(seed_value(index), now, until), None, now)
        if index % 10_000 == 0:
            await asyncio.sleep(0)


def code_value(client_id: str, index: int) -> str:
    """The value of seeded authorization code ``index`` of ``client_id``."""
    return f"ac_bench-{client_id}-{index:010d}"


async def seed_codes(store: Store, now: int, count: int, clients: str) -> None:
    """Save ``count`` codes per ``client=scope`` of ``clients`` through the port."""
    try:
        await store.get_user(CODE_USER)
    except NotFound:
        await store.create_user(User(id=CODE_USER, user_name=CODE_USER))
    for entry in filter(None, clients.split(";")):
        client_id, _, scope = entry.partition("=")
        for index in range(count):
            value = code_value(client_id, index)
            await store.save_code(AuthorizationCode(
                code_hash=hash_token(value), client_id=client_id, redirect_uri=CODE_REDIRECT,
                scope=scope, exp=now + 3600, grant_id=f"gr_bench-{client_id}-{index}",
                user_id=CODE_USER, auth_time=now), now)
            if index % 10_000 == 0:
                await asyncio.sleep(0)


async def _purge_on_trigger(services: Services, trigger: Path) -> None:
    # bench/run.py creates the file: there is no in-process event to wait on.
    while not await asyncio.to_thread(trigger.exists):  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    started = time.perf_counter()
    counts = await services.store.purge_expired(services.clock.now())
    elapsed = time.perf_counter() - started
    report = {"seconds": elapsed, "counts": msgspec.to_builtins(counts)}
    await asyncio.to_thread(Path(f"{trigger}.done").write_bytes, msgspec.json.encode(report))


async def _on_startup(app: Litestar) -> None:
    services: Services = app.state.services
    now = services.clock.now()
    live = int(os.environ.get("BENCH_SEED_TOKENS", "0"))
    expired = int(os.environ.get("BENCH_SEED_EXPIRED", "0"))
    await seed_tokens(services.store, now, live)
    # Already expired when saved: exactly what a purge finds after the tokens' lifetime.
    await seed_tokens(services.store, now - 7200, expired, start=live, exp=now - 1)
    codes = int(os.environ.get("BENCH_SEED_CODES", "0"))
    if codes:
        await seed_codes(services.store, now, codes, os.environ.get("BENCH_SEED_CODE_CLIENTS", ""))
    trigger = os.environ.get("BENCH_PURGE_TRIGGER")
    if trigger:
        task = asyncio.create_task(_purge_on_trigger(services, Path(trigger)))
        _background.add(task)
        task.add_done_callback(_background.discard)


def create_seeded_app() -> Litestar:
    """``entrypoints.app.create_app()`` with the seeding hook (uvicorn ``--factory``)."""
    app = create_app()
    app.on_startup.append(_on_startup)
    return app

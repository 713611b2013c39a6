"""A running application for SCIM end-to-end tests, on each store backend.

``scim_app(backend)`` yields a :class:`ScimHarness`: a Litestar ``TestClient`` (an
``httpx.Client`` on ``http://testserver.local``) plus helpers to mint bearer tokens. Tokens
are saved straight into the application's store (hashed as the token endpoint would), so
these tests do not depend on the OAuth endpoints.

Backends: ``memory`` (a ``MemoryStore``) and ``sql`` (a fresh migrated PostgreSQL database
from ``tests.services.postgres_server``; skipped when no server can be had, failed with
``CI=true``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from scim2_client import BaseSyncSCIMClient

from adapters.memory.store import MemoryStore
from domain.entities import AccessToken
from domain.tokens import hash_token, token_display
from entrypoints.app import create_app
from entrypoints.settings import load_settings
from ports.store import Store

BACKENDS = ["memory", pytest.param("sql", marks=pytest.mark.postgres)]
BASE_URL = "http://testserver.local"
SCIM_URL = f"{BASE_URL}/scim/v2"
SCIM_JSON = "application/scim+json"


class ScimHarness:
    """The client and store of one running application."""

    def __init__(self, client: TestClient[Litestar], app: Litestar) -> None:
        self.client = client
        self.app = app

    @property
    def store(self) -> Store:
        store: Store = self.app.state.services.store
        return store

    def call(self, coroutine_function: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a store coroutine on the application's event loop."""
        async def run() -> Any:
            return await coroutine_function(*args, **kwargs)

        return self.client.blocking_portal.call(run)

    def token(self, scope: str = "scim:write", sub: str | None = None,
              lifetime: int = 3600) -> str:
        """A fresh active access token with ``scope``, saved in the store."""
        value = "tk_" + secrets.token_urlsafe(32)
        now = int(time.time())
        record = AccessToken(
            token_hash=hash_token(value), token_display=token_display(value), active=True,
            scope=scope, client_id=PROVISIONER, exp=now + lifetime, iat=now, sub=sub,
        )
        self.call(self.store.save_tokens, record, None, now)
        return value

    def auth(self, scope: str = "scim:write") -> dict[str, str]:
        """Headers with a bearer token of ``scope`` and the SCIM media type."""
        return {"Authorization": f"Bearer {self.token(scope)}", "Content-Type": SCIM_JSON}

    def token_active(self, value: str) -> bool:
        """Whether the store still reads the token as active (what introspection answers)."""
        now = int(time.time())
        record = self.call(self.store.get_access_token, hash_token(value), now)
        return record is not None and bool(record.is_active(now))


#: The static client the harness's tokens belong to.
PROVISIONER = "provisioner"
PROVISIONER_SECRET = "provisioner-secret-" + "p" * 32


def _sql_settings() -> dict[str, str]:
    from tests.services.postgres_server import empty_migrated_database

    url = asyncio.run(empty_migrated_database())
    return {"STORE_BACKEND": "sql", "DATABASE_URL": url}


@contextmanager
def scim_app(backend: str, base_url: str = BASE_URL, **settings: str) -> Iterator[ScimHarness]:
    """A started application on ``backend`` (``memory`` or ``sql``); the client's base URL
    is ``base_url`` (``SCIM_URL`` for a SCIM client library); ``settings`` are more
    environment variables."""
    env = {"EXTERNAL_BASE_URL": BASE_URL, **settings}
    # The client the harness's tokens are issued to must exist: a deleted client's tokens
    # are refused (domain.oauth.client_exists).
    credentials = env.get("CLIENT_CREDENTIALS")
    if credentials is None or not any(entry.strip().startswith(f"{PROVISIONER}:")
                                      for entry in credentials.split(";")):
        provisioner = f"{PROVISIONER}:{PROVISIONER_SECRET}"
        env["CLIENT_CREDENTIALS"] = f"{credentials};{provisioner}" if credentials else provisioner
    if backend == "memory":
        app = create_app(load_settings(env), store=MemoryStore())
    else:
        app = create_app(load_settings({**env, **_sql_settings()}))
    with TestClient(app=app, base_url=base_url) as client:
        yield ScimHarness(client, app)


class HttpxSCIMClient(BaseSyncSCIMClient):
    """scim2-client over an ``httpx.Client`` (such as Litestar's ``TestClient``).

    scim2-client 0.13 ships its network engine for ``httpx2`` only; this is the same engine
    for ``httpx``. Everything SCIM (request building, response validation against the
    scim2-models resources) is the library's own.
    """

    def __init__(self, client: httpx.Client, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client

    def _stays_under_base_url(self, endpoint: str) -> bool:
        base = self.client.base_url
        try:
            url = self.client.build_request("GET", endpoint).url
        except httpx.InvalidURL:
            return False
        return url.scheme == base.scheme and url.host == base.host and \
            url.raw_path.startswith(base.raw_path)

    def _parse_json(self, response: Any) -> Any:
        return response.json()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, url, **kwargs)

"""A running application for the admin API and client CLI e2e tests, on each backend.

``admin_app(backend, tmp_path)`` yields an :class:`AdminApp`: a Litestar ``TestClient``
and helpers. Its static clients: ``admin-tool`` (``client_credentials`` with the service
scope ``admin``, from ``CLIENTS_FILE``), ``static-web`` (``CLIENTS_FILE``) and ``envc``
(``CLIENT_CREDENTIALS``, scope ``read``). The admin token is obtained at the token
endpoint, as an operator's tool would. The clock is a :class:`FakeClock` started at the
real time, so that tests can move past a secret's expiry. Passing the same backend (and
clock) twice gives two instances sharing one store.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import TestClient

from domain.entities import User
from entrypoints.app import create_app
from entrypoints.container import build_container
from entrypoints.settings import load_settings
from ports.store import Store
from tests.doubles import FakeClock
from tests.e2e.conftest import StoreBackend
from tests.e2e.ops_support import signing_key_file
from tests.e2e.signin_flow import (
    HASHER,
    PASSWORD,
    pkce_pair,
    redirect_params,
    submit,
    through_consent,
)

ISSUER = "http://auth.test"
ADMIN_ID = "admin-tool"
ADMIN_SECRET = "admin-tool-secret-0123456789abcdefghij"
STATIC_ID = "static-web"
STATIC_SECRET = "static-web-secret-0123456789abcdefghij"
ENV_ID = "envc"
ENV_SECRET = "env-client-secret-0123456789abcdefghij"
PUBLIC_REDIRECT = "http://127.0.0.1:9999/callback"

CLIENTS_TOML = f"""
[[clients]]
client_id = "{ADMIN_ID}"
secret = "{ADMIN_SECRET}"
grant_types = ["client_credentials"]
scopes = ["admin"]

[[clients]]
client_id = "{STATIC_ID}"
name = "Static web"
secret = "{STATIC_SECRET}"
redirect_uris = ["https://static.example/cb"]
scopes = ["openid", "profile"]
"""


def environment(tmp_path: Path, backend: StoreBackend, **env: str) -> dict[str, str]:
    clients_file = tmp_path / "clients.toml"
    clients_file.write_text(CLIENTS_TOML)
    return {
        "EXTERNAL_BASE_URL": ISSUER,
        "CLIENTS_FILE": str(clients_file),
        "CLIENT_CREDENTIALS": f"{ENV_ID}:{ENV_SECRET}",
        "ALLOWED_SCOPES": "read",
        "SIGNING_KEY_FILE": signing_key_file(),
        **backend.env,
        **env,
    }


class AdminApp:
    """One running instance: its client, app and clock."""

    def __init__(self, client: TestClient[Litestar], app: Litestar, clock: FakeClock) -> None:
        self.client = client
        self.app = app
        self.clock = clock
        self._admin_token: str | None = None

    @property
    def store(self) -> Store:
        store: Store = self.app.state.services.store
        return store

    def call(self, coroutine_function: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a store coroutine on the application's event loop."""
        async def run() -> Any:
            return await coroutine_function(*args, **kwargs)

        return self.client.blocking_portal.call(run)

    def client_token(self, client_id: str, secret: str, scope: str | None = None
                     ) -> httpx.Response:
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        return self.client.post("/oauth/token", data=data, auth=(client_id, secret))

    def admin(self) -> dict[str, str]:
        """Headers with an ``admin`` token of ``admin-tool``, from the token endpoint."""
        if self._admin_token is None:
            response = self.client_token(ADMIN_ID, ADMIN_SECRET, "admin")
            assert response.status_code == 200, response.text
            self._admin_token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._admin_token}"}

    def create(self, **metadata: Any) -> dict[str, Any]:
        response = self.client.post("/admin/clients", headers=self.admin(), json=metadata)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def add_user(self, user_name: str = "alice") -> User:
        async def create() -> User:
            return await self.store.create_user(
                User(user_name=user_name), password_hash=await HASHER.hash(PASSWORD))

        user: User = self.call(create)
        return user

    def sign_in_with(self, client_id: str, redirect_uri: str = PUBLIC_REDIRECT,
                     scope: str = "openid") -> httpx.Response:
        """The authorization code flow of a public client, through the sign-in pages as a
        browser drives them (user ``alice``); the token endpoint's answer."""
        verifier, challenge = pkce_pair()
        page = self.client.get("/oauth/authorize", params={
            "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
            "scope": scope, "state": "st-1", "nonce": "n-1", "code_challenge": challenge,
            "code_challenge_method": "S256"}, follow_redirects=False)
        assert page.status_code == 200, page.text
        params = redirect_params(through_consent(self.client, submit(
            self.client, page, username="alice", password=PASSWORD)))
        assert params["state"] == "st-1"
        return self.client.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": params["code"],
            "redirect_uri": redirect_uri, "client_id": client_id, "code_verifier": verifier})


@contextmanager
def admin_app(backend: StoreBackend, tmp_path: Path, *, clock: FakeClock | None = None,
              **env: str) -> Iterator[AdminApp]:
    settings = load_settings(environment(tmp_path, backend, **env))
    container = build_container(settings)
    clock = clock or FakeClock(int(time.time()))
    container.clock.override(providers.Object(clock))
    container.password_hasher.override(providers.Object(HASHER))
    app = create_app(settings, store=backend.instance, container=container)
    with TestClient(app, base_url=ISSUER) as client:
        yield AdminApp(client, app, clock)

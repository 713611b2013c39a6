"""The app on a parametrized backend (memory, sql) with static clients from a CLIENTS_FILE
and stored clients created in the store, for tests/e2e/test_native_apps.py,
test_cors.py and test_client_policy.py.

Stored clients are created straight through the Store's client part (the admin API is
someone else's test), from RFC 7591 metadata read by the same parser the admin API uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pyotp
from dependency_injector import providers
from litestar.testing import TestClient

from domain.client_metadata import MetadataSource, parse_client_metadata
from domain.clients import Client, ClientSecret
from domain.entities import User
from domain.mfa import seal_factor
from entrypoints.app import create_app
from entrypoints.container import build_container
from entrypoints.http.services import Services
from entrypoints.settings import load_settings
from tests.doubles import FakeClock, RecordingEvents
from tests.e2e.conftest import StoreBackend
from tests.e2e.signin_flow import (
    HASHER,
    PASSWORD,
    SIGNER,
    T0,
    pkce_pair,
    submit,
    through_consent,
)

ISSUER = "http://auth.test"
SPA_ORIGIN = "https://spa.example.test"
SPA_REDIRECT = "https://spa.example.test/cb"
STATIC_TOML = f"""
[[clients]]
client_id = "spa"
client_name = "Browser App"
token_endpoint_auth_method = "none"
redirect_uris = ["{SPA_REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]
scope = "openid profile offline_access"
allowed_cors_origins = ["{SPA_ORIGIN}"]
"""


@dataclass
class App:
    """A running app, its fake clock and recorded events."""

    client: TestClient[Any]
    clock: FakeClock
    events: RecordingEvents

    @property
    def services(self) -> Services:
        services: Services = self.client.app.state.services
        return services

    def call(self, function: Any, *args: Any) -> Any:
        """Run ``function(*args)`` (a coroutine function) on the app's event loop, where a
        sql store's connection pool lives."""
        return self.client.blocking_portal.call(function, *args)

    def add_client(self, metadata: dict[str, Any], secret: str | None = None) -> Client:
        """A stored client from RFC 7591 metadata (and, for a confidential one, a secret)."""
        draft = parse_client_metadata(metadata, source=MetadataSource.ADMIN)
        client = draft.client
        if secret is not None:
            client = msgspec.structs.replace(client, secrets=(ClientSecret.of(secret),))
        stored: Client = self.call(self.services.clients.store.create_client, client)
        return stored

    def add_user(self, user_name: str = "alice", *, totp_secret: str | None = None) -> User:
        services = self.services

        async def create() -> User:
            user = await services.store.create_user(
                User(user_name=user_name), password_hash=await HASHER.hash(PASSWORD))
            if totp_secret is not None:
                sealed = seal_factor(services.secret_sealer, user.id, totp_secret)
                await services.store.set_totp(user.id, sealed, confirmed=True)
            return user

        user: User = self.call(create)
        return user

    def authorize(self, client_id: str, redirect_uri: str, *, challenge: str | None = None,
                  scope: str = "openid", **extra: str) -> httpx.Response:
        params = {"response_type": "code", "client_id": client_id,
                  "redirect_uri": redirect_uri, "scope": scope, "state": "st-1", **extra}
        if challenge is not None:
            params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
        return self.client.get("/oauth/authorize", params=params, follow_redirects=False)

    def sign_in(self, client_id: str, redirect_uri: str, *, scope: str = "openid",
                totp_secret: str | None = None, user_name: str = "alice",
                pkce: bool = True) -> tuple[httpx.Response, str]:
        """Sign ``user_name`` in through the pages (allowing the consent page of a client
        that is not first party); the final response and the verifier."""
        verifier, challenge = pkce_pair()
        # Signed in already: prompt=login, or the session would answer without the pages.
        again = {"prompt": "login"} if self.client.cookies.get("session") else {}
        page = self.authorize(client_id, redirect_uri, challenge=challenge if pkce else None,
                              scope=scope, **again)
        assert page.status_code == 200, page.text
        response = submit(self.client, page, username=user_name, password=PASSWORD)
        if totp_secret is not None:
            assert 'name="code"' in response.text, response.text
            response = submit(self.client, response,
                              code=pyotp.TOTP(totp_secret).at(self.clock.now()))
        return through_consent(self.client, response), verifier


@contextmanager
def policy_app(backend: StoreBackend, tmp_path: Path, **env: str) -> Iterator[App]:
    clients_file = tmp_path / "policy-clients.toml"
    clients_file.write_text(STATIC_TOML)
    settings = load_settings({"EXTERNAL_BASE_URL": ISSUER, "CLIENTS_FILE": str(clients_file),
                              **backend.env, **env})
    container = build_container(settings)
    clock = FakeClock(T0)
    events = RecordingEvents()
    container.clock.override(providers.Object(clock))
    container.events.override(providers.Object(events))
    container.password_hasher.override(providers.Object(HASHER))
    container.signer.override(providers.Object(SIGNER))
    app = create_app(settings, store=backend.instance, container=container)
    with TestClient(app, base_url=ISSUER) as client:
        yield App(client, clock, events)

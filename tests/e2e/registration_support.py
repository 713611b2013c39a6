"""The app for the dynamic registration tests (tests/e2e/test_registration*.py).

Static clients: ``basic`` (confidential, every grant, user scopes, ``introspect_any_token``)
for introspection, and
``ops`` (client_credentials only, the ``admin`` service scope) for the admin endpoint. One
user, ``alice``, signs in through the real pages (tests/e2e/signin_flow.py drives them).
Runs on any backend of tests/e2e/conftest.py; store calls go through the app's event loop
(the sql pool lives there).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from dependency_injector import providers
from litestar.testing import TestClient

from domain.entities import Email, User
from entrypoints.app import create_app
from entrypoints.container import build_container
from entrypoints.http.services import Services
from entrypoints.settings import load_settings
from tests.doubles import FakeClock, RecordingEvents
from tests.e2e.conftest import StoreBackend
from tests.e2e.oauth_setup import _signing_key_file
from tests.e2e.signin_flow import HASHER, PASSWORD, T0

ISSUER = "http://auth.test"
BASIC_SECRET = "basic-client-secret-0123456789abcdef"
OPS_SECRET = "ops-client-secret-0123456789abcdefghij"
REDIRECT = "https://rp.example.test/cb"
NATIVE_REDIRECT = "com.example.app:/oauth/cb"
JSON = {"Content-Type": "application/json"}

CLIENTS_TOML = f"""
[[clients]]
client_id = "basic"
secret = "{BASIC_SECRET}"
redirect_uris = ["https://basic.example.test/cb"]
grant_types = ["authorization_code", "client_credentials", "refresh_token"]
scope = "openid profile email offline_access read"
# It introspects the registered clients' tokens, which have no audience (RFC 7662 section 4).
introspect_any_token = true

[[clients]]
client_id = "ops"
secret = "{OPS_SECRET}"
grant_types = ["client_credentials"]
scope = "admin"
"""

T = TypeVar("T")


@dataclass
class Registrar:
    """A running app, its clock and events, and a TestClient (cookies kept, like a browser)."""

    client: TestClient[Any]
    clock: FakeClock
    events: RecordingEvents

    @property
    def services(self) -> Services:
        services: Services = self.client.app.state.services
        return services

    def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run ``make()`` on the app's event loop."""
        result: T = self.client.blocking_portal.call(make)
        return result

    def add_user(self, user_name: str = "alice") -> User:
        async def create() -> User:
            return await self.services.store.create_user(
                User(user_name=user_name, emails=(Email(value=f"{user_name}@example.test",
                                                        primary=True),)),
                password_hash=await HASHER.hash(PASSWORD))

        return self.call(create)

    def register(self, metadata: dict[str, Any], token: str | None = None) -> httpx.Response:
        headers = {**JSON, **({"Authorization": f"Bearer {token}"} if token else {})}
        return self.client.post("/oauth/register", json=metadata, headers=headers)

    def admin_token(self) -> str:
        """An access token of ``ops``, with the ``admin`` service scope."""
        response = self.client.post("/oauth/token", auth=("ops", OPS_SECRET),
                                    data={"grant_type": "client_credentials", "scope": "admin"})
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def initial_token(self, **body: Any) -> str:
        response = self.client.post("/admin/initial-access-tokens", json=body, headers={
            **JSON, "Authorization": f"Bearer {self.admin_token()}"})
        assert response.status_code == 201, response.text
        token: str = response.json()["initial_access_token"]
        return token

    def introspect(self, token: str) -> dict[str, Any]:
        response = self.client.post("/oauth/introspect", auth=("basic", BASIC_SECRET),
                                    data={"token": token})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@contextmanager
def registrar(backend: StoreBackend, tmp_path: Path, *, mode: str = "open",
              **env: str) -> Iterator[Registrar]:
    clients_file = tmp_path / "clients.toml"
    clients_file.write_text(CLIENTS_TOML)
    settings = load_settings({
        "EXTERNAL_BASE_URL": ISSUER, "CLIENTS_FILE": str(clients_file),
        "SIGNING_KEY_FILE": str(_signing_key_file()), "CLIENT_REGISTRATION": mode,
        **backend.env, **env,
    })
    container = build_container(settings)
    clock = FakeClock(T0)
    events = RecordingEvents()
    container.clock.override(providers.Object(clock))
    container.events.override(providers.Object(events))
    container.password_hasher.override(providers.Object(HASHER))
    app = create_app(settings, store=backend.instance, container=container)
    with TestClient(app, base_url=ISSUER) as client:
        yield Registrar(client, clock, events)

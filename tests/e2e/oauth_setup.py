"""Building the app for the OAuth e2e tests (tests/e2e/test_oauth_*.py, test_discovery.py).

Clients: ``basic`` (confidential, client_secret_basic, every grant), ``post`` (confidential,
client_secret_post, every grant), ``spa`` (public, PKCE) from a CLIENTS_FILE, and ``envc``
from CLIENT_CREDENTIALS.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dependency_injector import providers
from litestar import Litestar
from litestar.testing import TestClient

from domain.clients import Client
from domain.entities import User
from domain.errors import NotFound
from domain.oauth import create_authorization_code, pkce_s256
from entrypoints.app import create_app
from entrypoints.container import build_container
from entrypoints.http.services import Services
from entrypoints.settings import load_settings
from tests.doubles import FakeClock
from tests.e2e.conftest import StoreBackend

ISSUER = "http://auth.test"
SECRET = "basic-client-secret-0123456789abcdef"
POST_SECRET = "post-client-secret-0123456789abcdefgh"
ENV_SECRET = "env-client-secret-0123456789abcdefghij"
REDIRECT = "https://app.example.test/cb"
USER_ID = "user-42"
VERIFIER = "verifier-" + "x" * 40
SCOPES = '["openid", "profile", "offline_access", "read", "write"]'
GRANTS = '["authorization_code", "client_credentials", "refresh_token"]'
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

CLIENTS_TOML = f"""
[[clients]]
client_id = "basic"
secret = "{SECRET}"
redirect_uris = ["{REDIRECT}"]
grant_types = {GRANTS}
scopes = {SCOPES}

[[clients]]
client_id = "post"
secret = "{POST_SECRET}"
redirect_uris = ["{REDIRECT}"]
grant_types = {GRANTS}
scopes = {SCOPES}
token_endpoint_auth_method = "client_secret_post"

[[clients]]
client_id = "spa"
public = true
redirect_uris = ["{REDIRECT}"]
scopes = {SCOPES}
"""


def basic(client_id: str = "basic", secret: str = SECRET) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


_KEY_FILE: list[Path] = []


def _signing_key_file() -> Path:
    """One RSA key per test session: generating one per app would dominate the run time."""
    if not _KEY_FILE:
        from joserfc.jwk import RSAKey

        path = Path(tempfile.mkdtemp(prefix="oauth-e2e-")) / "signing.pem"
        path.write_bytes(RSAKey.generate_key(2048, private=True).as_pem(private=True))
        _KEY_FILE.append(path)
    return _KEY_FILE[0]


def build_app(
    backend: StoreBackend, tmp_path: Path, *, clock: FakeClock | None = None,
    extra_clients: str = "", **env: str
) -> Litestar:
    clients_file = tmp_path / "clients.toml"
    clients_file.write_text(CLIENTS_TOML + extra_clients)
    settings = load_settings({
        "EXTERNAL_BASE_URL": ISSUER,
        "CLIENTS_FILE": str(clients_file),
        "CLIENT_CREDENTIALS": f"envc:{ENV_SECRET}",
        "SIGNING_KEY_FILE": str(_signing_key_file()),
        **backend.env,
        **env,
    })
    container = build_container(settings)
    if clock is not None:
        container.clock.override(providers.Object(clock))
    return create_app(settings, store=backend.instance, container=container)


def services_of(app: Litestar) -> Services:
    services: Services = app.state.services
    return services


async def ensure_user(app: Litestar, user_id: str = USER_ID) -> None:
    """The user the codes are for exists (the code exchange refuses a missing user)."""
    store = services_of(app).store
    try:
        await store.get_user(user_id)
    except NotFound:
        await store.create_user(User(id=user_id, user_name=user_id))


async def new_code(
    app: Litestar,
    client_id: str = "basic",
    *,
    scope: str = "openid offline_access read",
    verifier: str | None = VERIFIER,
    mfa_verified: bool = True,
    user_id: str = USER_ID,
) -> str:
    """An authorization code created through the use case, as the sign-in page would,
    for ``user_id`` (created when missing)."""
    services = services_of(app)
    client: Client | None = await services.clients.find(client_id)
    assert client is not None
    await ensure_user(app, user_id)
    if not client.first_party:
        # As the sign-in does: a client that is not first-party needs the user's consent.
        await services.store.grant_consent(user_id, client_id, tuple(scope.split()),
                                           services.clock.now())
    return await create_authorization_code(
        services.oauth, client=client, redirect_uri=REDIRECT, scope=scope,
        user_id=user_id, nonce="nonce-1",
        code_challenge=pkce_s256(verifier) if verifier else None,
        code_challenge_method="S256" if verifier else None,
        auth_time=services.clock.now(), mfa_verified=mfa_verified,
    )


@contextmanager
def running(app: Litestar) -> Iterator[TestClient[Any]]:
    with TestClient(app, base_url="http://auth.test") as client:
        yield client


def code_in(client: TestClient[Any], app: Litestar, **kwargs: Any) -> str:
    """``new_code`` run on the app's event loop (the store may be bound to it)."""
    async def make() -> str:
        return await new_code(app, **kwargs)

    result: str = client.blocking_portal.call(make)
    return result


def exchange(client: TestClient[Any], app: Litestar, **kwargs: Any) -> dict[str, Any]:
    """A code for ``basic`` exchanged for tokens; returns the token response body."""
    code = code_in(client, app, **kwargs)
    response = client.post("/oauth/token", headers={**FORM, **basic()}, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER,
    })
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def introspect(client: TestClient[Any], token: str, **extra: str) -> dict[str, Any]:
    response = client.post("/oauth/introspect", headers={**FORM, **basic()},
                           data={"token": token, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body

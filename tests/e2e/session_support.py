"""Browser sessions for e2e tests, made through the use cases on a running app's store.

Until ``/oauth/authorize`` opens sessions itself (the authorize branch), a test that needs
a signed-in browser makes the session with ``domain.sessions.open_session`` on the app's
own store and puts its cookie in the test client; tokens "issued in the session" come from
a code made by ``create_authorization_code`` and exchanged at ``/oauth/token``, whose grant
is then recorded in the session (``add_session_grant``), as the authorize endpoint does.
Every store call runs on the app's event loop (``blocking_portal``), where a sql store's
pool lives, so these helpers work on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from litestar.testing import TestClient

from domain.entities import User
from domain.oauth import create_authorization_code, pkce_s256
from domain.sessions import Session, SessionGrant, idle_expiry, open_session
from domain.tokens import hash_token
from entrypoints.http.services import Services
from entrypoints.http.session_cookie import session_cookie_name

VERIFIER = "session-verifier-" + "v" * 40


def services_of(client: TestClient[Any]) -> Services:
    services: Services = client.app.state.services
    return services


def call(client: TestClient[Any], function: Any, *args: Any) -> Any:
    """Run ``function(*args)`` (a coroutine function) on the app's event loop."""
    return client.blocking_portal.call(function, *args)


def ensure_user(client: TestClient[Any], user_name: str) -> User:
    """The user named ``user_name`` (created without a password when missing)."""
    store = services_of(client).store

    async def find_or_create() -> User:
        found = await store.find_user_by_name(user_name)
        if found is not None:
            return found
        return await store.create_user(User(user_name=user_name))

    user: User = call(client, find_or_create)
    return user


def sign_in_browser(
    client: TestClient[Any], user_id: str, *, amr: tuple[str, ...] = ("pwd",)
) -> tuple[str, Session]:
    """Open a session for ``user_id`` now and give the browser (``client``) its cookie;
    return the cookie value and the session."""
    services = services_of(client)

    async def start() -> tuple[str, Session]:
        now = services.clock.now()
        return await open_session(services.store, services.token_generator, user_id=user_id,
                                  auth_time=now, amr=amr, now=now,
                                  policy=services.session_policy)

    value, session = call(client, start)
    client.cookies.set(session_cookie_name(services), value)
    return value, session


def session_of(client: TestClient[Any], id_hash: str) -> Session | None:
    """The live session stored under ``id_hash`` (None once ended or expired)."""
    services = services_of(client)

    async def get() -> Session | None:
        return await services.store.get_session(id_hash, services.clock.now())

    found: Session | None = call(client, get)
    return found


def record_grant(
    client: TestClient[Any], session: Session, client_id: str, grant_id: str
) -> Session:
    """Record a grant in the session as the authorize endpoint does; the session after."""
    services = services_of(client)

    async def add() -> Session | None:
        now = services.clock.now()
        return await services.store.add_session_grant(
            session.id_hash, SessionGrant(client_id, grant_id),
            idle_expiry(session, now, services.session_policy), now)

    updated: Session | None = call(client, add)
    assert updated is not None, "the session is not live"
    return updated


@dataclass(frozen=True)
class IssuedTokens:
    """A token response for a code issued in a session, and its grant."""

    body: dict[str, Any]
    grant_id: str

    @property
    def refresh_token(self) -> str:
        value: str = self.body["refresh_token"]
        return value

    @property
    def id_token(self) -> str:
        value: str = self.body["id_token"]
        return value


def tokens_in_session(
    client: TestClient[Any], session: Session, client_id: str, redirect_uri: str, *,
    scope: str = "openid offline_access", auth: httpx.Auth | None = None,
) -> IssuedTokens:
    """A code for ``client_id`` issued to the session's user, exchanged for tokens (PKCE;
    ``auth`` for a confidential client), with its grant recorded in the session."""
    services = services_of(client)

    async def code() -> str:
        found = await services.clients.find(client_id)
        assert found is not None, client_id
        return await create_authorization_code(
            services.oauth, client=found, redirect_uri=redirect_uri, scope=scope,
            user_id=session.user_id, nonce="n-session", code_challenge=pkce_s256(VERIFIER),
            code_challenge_method="S256", auth_time=session.auth_time,
            mfa_verified=session.mfa_verified)

    data = {"grant_type": "authorization_code", "code": call(client, code),
            "redirect_uri": redirect_uri, "code_verifier": VERIFIER}
    if auth is None:
        data["client_id"] = client_id
    response = client.post("/oauth/token", data=data, auth=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()

    async def grant_of() -> str | None:
        token = await services.store.get_access_token(hash_token(body["access_token"]),
                                                      services.clock.now())
        return token.grant_id if token is not None else None

    grant_id = call(client, grant_of)
    assert isinstance(grant_id, str)
    record_grant(client, session, client_id, grant_id)
    return IssuedTokens(body, grant_id)


def refresh(client: TestClient[Any], client_id: str, refresh_token: str) -> httpx.Response:
    """A refresh grant by a public client."""
    return client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id})

"""Browser sessions and consents made directly in an e2e app's store, as a sign-in would
make them (for pages that need a signed-in browser: tests/e2e/test_account.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from litestar import Litestar
from litestar.testing import TestClient

from domain.consent import Consent
from domain.sessions import AMR_PASSWORD, Session, SessionGrant, hash_session_id, open_session
from entrypoints.http.services import Services
from entrypoints.http.session_cookie import session_cookie_name

T = TypeVar("T")


def services_of(app: Litestar) -> Services:
    services: Services = app.state.services
    return services


def on_loop(client: TestClient[Any], work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` on the app's event loop (a sql store's pool is bound to it)."""
    result: T = client.blocking_portal.call(work)
    return result


def open_browser_session(
    client: TestClient[Any], app: Litestar, user_id: str, *,
    amr: tuple[str, ...] = (AMR_PASSWORD,), use: bool = True,
) -> tuple[str, Session]:
    """A new session of ``user_id`` (the cookie value and the session); with ``use``, the
    test client's browser holds its cookie from now on."""
    services = services_of(app)

    async def make() -> tuple[str, Session]:
        now = services.clock.now()
        return await open_session(services.store, services.token_generator, user_id=user_id,
                                  auth_time=now, amr=amr, now=now,
                                  policy=services.session_policy)

    value, session = on_loop(client, make)
    if use:
        client.cookies.set(session_cookie_name(services), value)
    return value, session


def add_grant(
    client: TestClient[Any], app: Litestar, cookie_value: str, client_id: str, grant_id: str
) -> Session | None:
    """Record that ``client_id`` got ``grant_id`` in the session, as a code issued in it
    does."""
    services = services_of(app)

    async def record() -> Session | None:
        session = await services.store.get_session(hash_session_id(cookie_value),
                                                   services.clock.now())
        assert session is not None
        return await services.store.add_session_grant(
            session.id_hash, SessionGrant(client_id, grant_id), session.idle_exp,
            services.clock.now())

    return on_loop(client, record)


def give_consent(
    client: TestClient[Any], app: Litestar, user_id: str, client_id: str, scopes: str
) -> Consent:
    """The user allows ``client_id`` the (space-separated) ``scopes``."""
    services = services_of(app)

    async def grant() -> Consent:
        return await services.store.grant_consent(user_id, client_id, tuple(scopes.split()),
                                                  services.clock.now())

    return on_loop(client, grant)


def session_of(client: TestClient[Any], app: Litestar, cookie_value: str) -> Session | None:
    """The live session of this cookie value, or None."""
    services = services_of(app)

    async def read() -> Session | None:
        return await services.store.get_session(hash_session_id(cookie_value),
                                                services.clock.now())

    return on_loop(client, read)

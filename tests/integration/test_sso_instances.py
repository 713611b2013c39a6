"""A browser session made on one instance is used on another: two apps over one store
(hybrid with Redis, and sql), as behind a load balancer. The second instance answers the
authorization from the session, without a password form, and its ID token names the same
``sid``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.entities import User
from domain.errors import NotFound
from tests.doubles import FakeClock
from tests.e2e.conftest import StoreBackend
from tests.e2e.signin_flow import (
    CONFIDENTIAL_ID,
    CONFIDENTIAL_REDIRECT,
    CONFIDENTIAL_SECRET,
    HASHER,
    PASSWORD,
    T0,
    Harness,
    auth_params,
    harness,
    visit,
)
from tests.services.postgres_server import create_migrated_database, drop_database, postgres_url
from tests.services.redis_server import local_redis

USER_ID = "user-sso-1"


@pytest.fixture(params=[pytest.param("hybrid+redis", marks=pytest.mark.redis),
                        pytest.param("sql", marks=pytest.mark.postgres)])
def shared(request: pytest.FixtureRequest) -> Iterator[StoreBackend]:
    """What two instances need to share one fresh store of the backend."""
    if request.param == "hybrid+redis":
        redis = local_redis()
        redis.start()
        try:
            yield StoreBackend("hybrid+redis", env={"STORE_BACKEND": "hybrid",
                                                    "REDIS_URL": redis.url})
        finally:
            redis.stop()
            redis.cleanup()
    else:
        url = asyncio.run(create_migrated_database(postgres_url()))
        try:
            yield StoreBackend("sql", env={"STORE_BACKEND": "sql", "DATABASE_URL": url})
        finally:
            asyncio.run(drop_database(url))


def _provision(h: Harness) -> None:
    """alice, with one id on every instance (hybrid keeps identities in each process, as
    when users are provisioned to every instance from elsewhere)."""
    async def create() -> None:
        try:
            await h.store.get_user(USER_ID)
        except NotFound:  # not provisioned on this instance yet
            await h.store.create_user(User(id=USER_ID, user_name="alice"),
                                      password_hash=await HASHER.hash(PASSWORD))

    h.run(create())


def test_a_session_made_on_one_instance_is_used_on_another(
    shared: StoreBackend, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    with harness(tmp_path, backend=shared, clock=clock) as first, \
            harness(tmp_path, backend=shared, clock=clock) as second:
        _provision(first)
        _provision(second)
        signed_in = visit(first, auth_params())
        assert signed_in.pages == ["password"] and "code" in signed_in.params
        session = first.session()
        assert session is not None

        # The same browser, sent to the other instance by the load balancer.
        second.client.cookies = first.client.cookies
        assert second.session() == session
        answered = visit(second, auth_params(client_id=CONFIDENTIAL_ID,
                                             redirect_uri=CONFIDENTIAL_REDIRECT,
                                             code_challenge=None,
                                             code_challenge_method=None))
        assert answered.pages == [] and not answered.password_form_shown
        token = second.client.post(
            "/oauth/token", auth=(CONFIDENTIAL_ID, CONFIDENTIAL_SECRET), data={
                "grant_type": "authorization_code", "code": answered.params["code"],
                "redirect_uri": CONFIDENTIAL_REDIRECT})
        assert token.status_code == 200, token.text
        claims = second.services.signer.verify(token.json()["id_token"])
        assert claims is not None and claims["sid"] == session.sid

        # The grant recorded on the second instance is in the session the first sees.
        seen = first.session()
        assert seen is not None and set(seen.clients) == {"spa", CONFIDENTIAL_ID}

"""refresh_token grant through the ASGI app: Authlib, rotation, reuse, concurrency, outages."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client  # type: ignore[import-untyped]

from adapters.memory.store import MemoryStore
from domain.entities import RefreshTake
from domain.errors import StoreUnavailable
from tests.doubles import FakeClock
from tests.e2e.conftest import StoreBackend
from tests.e2e.oauth_setup import (
    FORM,
    POST_SECRET,
    REDIRECT,
    SECRET,
    VERIFIER,
    basic,
    build_app,
    exchange,
    introspect,
    new_code,
    running,
)


def _refresh(client: Any, token: str, **extra: str) -> Any:
    return client.post("/oauth/token", headers={**FORM, **basic()},
                       data={"grant_type": "refresh_token", "refresh_token": token, **extra})


def test_authlib_refresh(store: StoreBackend, tmp_path: Path) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        first = exchange(client, app)
        oauth = OAuth2Client("basic", SECRET, token=first, transport=client._transport,
                             base_url="http://auth.test")
        second = oauth.refresh_token("http://auth.test/oauth/token")
        assert second["access_token"] != first["access_token"]
        assert second["refresh_token"] != first["refresh_token"]
        assert second["scope"] == first["scope"] and second["token_type"] == "Bearer"
        info = introspect(client, second["access_token"])
        assert info["active"] and info["sub"] == "user-42" and info["mfa_verified"] is True


def test_client_secret_post_refresh(store: StoreBackend, tmp_path: Path) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        from tests.e2e.oauth_setup import code_in

        code = code_in(client, app, client_id="post")
        first = client.post("/oauth/token", headers=FORM, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER, "client_id": "post", "client_secret": POST_SECRET,
        }).json()
        oauth = OAuth2Client("post", POST_SECRET, token_endpoint_auth_method="client_secret_post",
                             token=first, transport=client._transport, base_url="http://auth.test")
        second = oauth.refresh_token("http://auth.test/oauth/token")
        assert second["refresh_token"].startswith("rt_")


def test_rotation_retires_the_old_pair_and_reuse_revokes_the_family(
    store: StoreBackend, tmp_path: Path
) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        first = exchange(client, app)
        rotated = _refresh(client, first["refresh_token"])
        assert rotated.status_code == 200
        assert rotated.headers["cache-control"] == "no-store"
        second = rotated.json()
        assert introspect(client, first["access_token"]) == {"active": False}
        assert introspect(client, second["access_token"])["active"] is True

        reused = _refresh(client, first["refresh_token"])
        assert reused.status_code == 400
        assert reused.json()["error"] == "invalid_grant"
        assert introspect(client, second["access_token"]) == {"active": False}
        assert _refresh(client, second["refresh_token"]).json()["error"] == "invalid_grant"


def test_scope_narrowing_and_widening(store: StoreBackend, tmp_path: Path) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        first = exchange(client, app)
        wider = _refresh(client, first["refresh_token"], scope="read write")
        assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
        narrowed = _refresh(client, first["refresh_token"], scope="read")
        assert narrowed.status_code == 200 and narrowed.json()["scope"] == "read"
        assert introspect(client, narrowed.json()["access_token"])["scope"] == "read"


def test_confidential_client_must_authenticate_to_refresh(
    store: StoreBackend, tmp_path: Path
) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        first = exchange(client, app)
        for headers, data in [
            (FORM, {"client_id": "basic"}),
            ({**FORM, **basic(secret="wrong-secret-0123456789abcdefghijkl")}, {}),
            ({**FORM, **basic(client_id="post", secret=POST_SECRET)}, {}),  # wrong method
        ]:
            response = client.post("/oauth/token", headers=headers, data={
                "grant_type": "refresh_token", "refresh_token": first["refresh_token"], **data,
            })
            assert response.status_code == 401, response.text
            assert response.json()["error"] == "invalid_client"
            assert response.headers["www-authenticate"] == 'Basic realm="auth-service"'
        assert _refresh(client, first["refresh_token"]).status_code == 200


def test_another_clients_refresh_token_is_refused(store: StoreBackend, tmp_path: Path) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        first = exchange(client, app)
        response = client.post("/oauth/token", headers=FORM, data={
            "grant_type": "refresh_token", "refresh_token": first["refresh_token"],
            "client_id": "post", "client_secret": POST_SECRET,
        })
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
        assert _refresh(client, first["refresh_token"]).status_code == 200


async def test_thirty_parallel_refreshes_exactly_one_wins(
    store: StoreBackend, tmp_path: Path
) -> None:
    # The app runs on this event loop behind httpx's ASGI transport, so the 30 requests
    # really interleave at every await (Litestar's test clients serialise requests).
    app = build_app(store, tmp_path)
    async with app.lifespan(), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://auth.test",
    ) as client:
        code = await new_code(app)
        first = (await client.post("/oauth/token", headers={**FORM, **basic()}, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER,
        })).json()
        responses = await asyncio.gather(*(
            client.post("/oauth/token", headers={**FORM, **basic()}, data={
                "grant_type": "refresh_token", "refresh_token": first["refresh_token"],
            })
            for _ in range(30)
        ))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] + [400] * 29, [r.text for r in responses]
        assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code == 400)
        # The losers presented a rotated token: reuse detection revoked the family, the
        # winner's new pair included.
        winner = next(r.json() for r in responses if r.status_code == 200)
        info = await client.post("/oauth/introspect", headers={**FORM, **basic()},
                                 data={"token": winner["access_token"]})
        assert info.json() == {"active": False}


class _OutageStore(MemoryStore):
    """A memory store whose refresh-token reads and rotations fail, as in an outage."""

    fail = False

    async def take_refresh_token(self, token_hash: str, now: int) -> RefreshTake:
        if self.fail:
            raise StoreUnavailable("connection refused by redis at 10.0.0.1")
        return await super().take_refresh_token(token_hash, now)


def test_store_failure_during_rotation_fails_closed(tmp_path: Path) -> None:
    outage = _OutageStore()
    app = build_app(StoreBackend("memory", instance=outage), tmp_path)
    with running(app) as client:
        first = exchange(client, app)
        outage.fail = True
        response = _refresh(client, first["refresh_token"])
        assert response.status_code == 503
        assert response.json()["error"] == "temporarily_unavailable"
        assert "redis" not in response.text and "Traceback" not in response.text
        outage.fail = False
        assert _refresh(client, first["refresh_token"]).status_code == 200


@pytest.mark.parametrize("token", ["rt_never-issued", "not-a-token"])
def test_unknown_refresh_token(store: StoreBackend, tmp_path: Path, token: str) -> None:
    with running(build_app(store, tmp_path)) as client:
        response = _refresh(client, token)
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_rotation_never_extends_past_the_absolute_lifetime(
    store: StoreBackend, tmp_path: Path
) -> None:
    clock = FakeClock(1_700_000_000)
    start = clock.now()  # the sign-in (auth_time) of the code below
    app = build_app(store, tmp_path, clock=clock, TOKEN_EXPIRY_SECONDS="600",
                    REFRESH_TOKEN_EXPIRY_SECONDS="1000",
                    REFRESH_TOKEN_MAX_LIFETIME_SECONDS="2500")
    with running(app) as client:
        token = exchange(client, app)["refresh_token"]
        for step, refresh_exp in ((900, start + 1900), (900, start + 2500)):
            clock.advance(step)
            pair = _refresh(client, token)
            assert pair.status_code == 200, pair.text
            token = pair.json()["refresh_token"]
            assert introspect(client, token)["exp"] == refresh_exp
        clock.value = start + 2400
        last = _refresh(client, token)
        assert last.status_code == 200, last.text
        # The access token gets what is left of the grant, not its full 600 seconds.
        assert last.json()["expires_in"] == 100
        assert introspect(client, last.json()["access_token"])["exp"] == start + 2500
        clock.value = start + 2500
        over = _refresh(client, last.json()["refresh_token"])
        assert over.status_code == 400 and over.json()["error"] == "invalid_grant"

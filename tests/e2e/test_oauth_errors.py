"""Token endpoint error cases (RFC 6749 section 5.2) and the authorization_code grant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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
    code_in,
    exchange,
    introspect,
    running,
)
from tests.e2e.ops_support import metric
from tests.e2e.signin_flow import LOAD_BALANCER, forwarded_for, from_peer

UNAUTHORIZED = 'Basic realm="auth-service"'


def _token(client: object, body: str, headers: dict[str, str] | None = None) -> object:
    return client.post("/oauth/token", content=body,  # type: ignore[attr-defined]
                       headers=headers if headers is not None else {**FORM, **basic()})


@pytest.mark.parametrize(
    ("headers", "body", "status", "error"),
    [
        # wrong secret over Basic
        ({**FORM, **basic(secret="x" * 40)}, "grant_type=client_credentials", 401,
         "invalid_client"),
        # unknown client over Basic
        ({**FORM, **basic(client_id="ghost")}, "grant_type=client_credentials", 401,
         "invalid_client"),
        # malformed Basic
        ({**FORM, "Authorization": "Basic !!!"}, "grant_type=client_credentials", 401,
         "invalid_client"),
        # no authentication at all
        (FORM, "grant_type=client_credentials", 401, "invalid_client"),
        # client_secret_post with a wrong secret
        (FORM, f"grant_type=client_credentials&client_id=post&client_secret={'y' * 40}", 401,
         "invalid_client"),
        # two methods at once
        ({**FORM, **basic()}, f"grant_type=client_credentials&client_secret={SECRET}", 400,
         "invalid_request"),
        ({**FORM, **basic()}, "grant_type=client_credentials&client_id=post", 400,
         "invalid_request"),
        # repeated parameter (section 3.2)
        ({**FORM, **basic()}, "grant_type=client_credentials&scope=read&scope=write", 400,
         "invalid_request"),
        # ... even when one of the values is empty
        ({**FORM, **basic()}, "grant_type=&grant_type=client_credentials", 400,
         "invalid_request"),
        # missing grant_type
        ({**FORM, **basic()}, "scope=read", 400, "invalid_request"),
        # unknown grant type
        ({**FORM, **basic()}, "grant_type=password&username=a&password=b", 400,
         "unsupported_grant_type"),
        # scope the client may not have
        ({**FORM, **basic()}, "grant_type=client_credentials&scope=admin", 400, "invalid_scope"),
        # a public client cannot use client_credentials
        (FORM, "grant_type=client_credentials&client_id=spa", 400, "unauthorized_client"),
        # not a form
        ({"Content-Type": "application/json", **basic()}, '{"grant_type":"client_credentials"}',
         400, "invalid_request"),
        ({**FORM, **basic()}, "grant_type=refresh_token", 400, "invalid_request"),
        ({**FORM, **basic()}, "grant_type=authorization_code", 400, "invalid_request"),
    ],
)
def test_token_endpoint_errors(
    store: StoreBackend, tmp_path: Path, headers: dict[str, str], body: str, status: int,
    error: str,
) -> None:
    with running(build_app(store, tmp_path)) as client:
        response = client.post("/oauth/token", content=body, headers=headers)
        assert response.status_code == status, response.text
        assert response.json()["error"] == error
        assert isinstance(response.json()["error_description"], str)
        assert response.headers["cache-control"] == "no-store"
        if status == 401:
            assert response.headers["www-authenticate"] == UNAUTHORIZED
        else:
            assert "www-authenticate" not in response.headers


def test_client_secret_post_success(store: StoreBackend, tmp_path: Path) -> None:
    with running(build_app(store, tmp_path)) as client:
        response = client.post("/oauth/token", headers=FORM, content=(
            f"grant_type=client_credentials&client_id=post&client_secret={POST_SECRET}"))
        assert response.status_code == 200


def test_basic_credentials_are_form_decoded(store: StoreBackend, tmp_path: Path) -> None:
    # RFC 6749 section 2.3.1: "b%61sic" is "basic" once form-urlencoding is undone.
    with running(build_app(store, tmp_path)) as client:
        response = client.post("/oauth/token", content="grant_type=client_credentials",
                               headers={**FORM, **basic(client_id="b%61sic")})
        assert response.status_code == 200


# authorization_code


def test_code_exchange_issues_id_token(store: StoreBackend, tmp_path: Path) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        body = exchange(client, app)
        assert set(body) == {"access_token", "token_type", "expires_in", "scope",
                             "refresh_token", "id_token"}
        info = introspect(client, body["access_token"])
        assert info["sub"] == "user-42" and info["mfa_verified"] is True


def test_code_replay_revokes_the_tokens(store: StoreBackend, tmp_path: Path) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        code = code_in(client, app)
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                "code_verifier": VERIFIER}
        first = client.post("/oauth/token", headers={**FORM, **basic()}, data=data)
        assert first.status_code == 200
        replay = client.post("/oauth/token", headers={**FORM, **basic()}, data=data)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        assert introspect(client, first.json()["access_token"]) == {"active": False}
        assert introspect(client, first.json()["refresh_token"]) == {"active": False}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"redirect_uri": REDIRECT + "/other"}, "invalid_grant"),
        ({"code_verifier": "z" * 43}, "invalid_grant"),
        ({"code_verifier": None}, "invalid_grant"),
        ({"code": "ac_unknown"}, "invalid_grant"),
    ],
)
def test_code_exchange_errors(
    store: StoreBackend, tmp_path: Path, change: dict[str, str | None], error: str
) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        data: dict[str, str | None] = {
            "grant_type": "authorization_code", "code": code_in(client, app),
            "redirect_uri": REDIRECT, "code_verifier": VERIFIER, **change,
        }
        response = client.post("/oauth/token", headers={**FORM, **basic()},
                               data={k: v for k, v in data.items() if v is not None})
        assert response.status_code == 400 and response.json()["error"] == error


def test_code_of_another_client(store: StoreBackend, tmp_path: Path) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        code = code_in(client, app)
        response = client.post("/oauth/token", headers=FORM, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER, "client_id": "post", "client_secret": POST_SECRET,
        })
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_public_client_needs_the_verifier(store: StoreBackend, tmp_path: Path) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        data = {"grant_type": "authorization_code", "code": code_in(client, app, client_id="spa"),
                "redirect_uri": REDIRECT, "client_id": "spa"}
        response = client.post("/oauth/token", headers=FORM, data=data)
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
        # The code is spent: even the right verifier is now a replay.
        response = client.post("/oauth/token", headers=FORM,
                               data={**data, "code_verifier": VERIFIER})
        assert response.status_code == 400


def test_public_client_with_pkce(store: StoreBackend, tmp_path: Path) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        response = client.post("/oauth/token", headers=FORM, data={
            "grant_type": "authorization_code", "code": code_in(client, app, client_id="spa"),
            "redirect_uri": REDIRECT, "client_id": "spa", "code_verifier": VERIFIER,
        })
        assert response.status_code == 200 and "refresh_token" in response.json()


# Client authentication and the per-client limit (RATE_LIMIT_TOKEN_PER_MINUTE)

ATTACKER = forwarded_for("203.0.113.9")
OWNER = forwarded_for("198.51.100.7")


def _behind_balancer(store: StoreBackend, tmp_path: Path, **env: str) -> tuple[Any, FakeClock]:
    clock = FakeClock()
    app = build_app(store, tmp_path, clock=clock, TRUSTED_PROXIES=LOAD_BALANCER, **env)
    from_peer(app, LOAD_BALANCER)
    return app, clock


def _client_token(client: Any, headers: dict[str, str], secret: str = SECRET,
                  client_id: str = "basic") -> Any:
    return client.post("/oauth/token", content="grant_type=client_credentials",
                       headers={**FORM, **basic(client_id, secret), **headers})


def test_requests_that_fail_to_authenticate_do_not_use_up_a_clients_allowance(
    store: StoreBackend, tmp_path: Path
) -> None:
    # The confirmed attack: anyone naming a client used up that client's token allowance.
    app, _ = _behind_balancer(store, tmp_path, RATE_LIMIT_TOKEN_PER_MINUTE="3")
    with running(app) as client:
        for _ in range(5):
            assert _client_token(client, ATTACKER, secret="x" * 40).status_code == 401
            named = client.post("/oauth/token", headers={**FORM, **ATTACKER},
                                content="grant_type=client_credentials&client_id=basic")
            assert named.status_code == 401
        assert [_client_token(client, OWNER).status_code for _ in range(4)] == [
            200, 200, 200, 429]


def test_failed_client_authentications_are_throttled_per_client_and_address(
    store: StoreBackend, tmp_path: Path
) -> None:
    app, clock = _behind_balancer(store, tmp_path, RATE_LIMIT_CLIENT_AUTH_FAILURES="3")
    with running(app) as client:
        wrong = [_client_token(client, ATTACKER, secret="x" * 40) for _ in range(4)]
        assert [r.status_code for r in wrong] == [401, 401, 401, 429]
        refused = wrong[-1]
        assert refused.json()["error"] == "too_many_requests"
        assert refused.headers["cache-control"] == "no-store"
        retry_after = int(refused.headers["retry-after"])
        assert 0 < retry_after <= 900
        # The count is shared by every endpoint that authenticates clients.
        for path in ("/oauth/introspect", "/oauth/revoke"):
            response = client.post(path, content="token=tk_x",
                                   headers={**FORM, **basic(secret="x" * 40), **ATTACKER})
            assert response.status_code == 429, path
        # The same client id from elsewhere still gets 401, not 429.
        assert _client_token(client, OWNER, secret="x" * 40).status_code == 401
        # The right secret is never refused: a stranger's failures lock no client out.
        assert _client_token(client, ATTACKER).status_code == 200
        assert _client_token(client, OWNER).status_code == 200
        assert metric(client.get("/metrics").text, "auth_rate_limited_total",
                      rule="client_auth") == 3
        clock.advance(retry_after)
        assert _client_token(client, ATTACKER, secret="x" * 40).status_code == 401


def test_the_client_authentication_failure_limit_can_be_switched_off(
    store: StoreBackend, tmp_path: Path
) -> None:
    app, _ = _behind_balancer(store, tmp_path, RATE_LIMIT_CLIENT_AUTH_FAILURES="0")
    with running(app) as client:
        statuses = {_client_token(client, ATTACKER, secret="x" * 40).status_code
                    for _ in range(30)}
        assert statuses == {401}

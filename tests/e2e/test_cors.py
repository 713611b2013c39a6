"""CORS for browser apps: on the token, revocation and userinfo endpoints, for the origins
of the client concerned, and nowhere else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.client_policy_support import SPA_ORIGIN, SPA_REDIRECT, App, policy_app
from tests.e2e.conftest import StoreBackend
from tests.e2e.signin_flow import redirect_params

STORED_ORIGIN = "https://stored.example.test"
STORED_REDIRECT = "https://stored.example.test/cb"
FOREIGN = "https://evil.example.test"
STORED = {
    "client_id": "stored-spa", "token_endpoint_auth_method": "none",
    "redirect_uris": [STORED_REDIRECT], "grant_types": ["authorization_code"],
    "scope": "openid", "allowed_cors_origins": [STORED_ORIGIN],
}
CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-methods",
                "access-control-allow-headers", "access-control-max-age",
                "access-control-expose-headers", "access-control-allow-credentials")


@pytest.fixture
def app(store: StoreBackend, tmp_path: Path) -> Any:
    with policy_app(store, tmp_path) as running:
        running.add_client(STORED)
        running.add_user()
        yield running


def _preflight(app: App, path: str, origin: str, method: str = "POST") -> httpx.Response:
    return app.client.options(path, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type"})


def _no_cors(response: httpx.Response) -> bool:
    return not any(name in response.headers for name in CORS_HEADERS)


def _tokens(app: App, origin: str | None, client_id: str = "spa",
            redirect_uri: str = SPA_REDIRECT) -> httpx.Response:
    scope = "openid offline_access" if client_id == "spa" else "openid"
    response, verifier = app.sign_in(client_id, redirect_uri, scope=scope)
    headers = {"Origin": origin} if origin else {}
    return app.client.post("/oauth/token", headers=headers, data={
        "grant_type": "authorization_code", "code": redirect_params(response)["code"],
        "redirect_uri": redirect_uri, "client_id": client_id, "code_verifier": verifier})


@pytest.mark.parametrize(("path", "methods"), [
    ("/oauth/token", "POST"), ("/oauth/revoke", "POST"), ("/oauth/userinfo", "GET, POST"),
])
@pytest.mark.parametrize("origin", [SPA_ORIGIN, STORED_ORIGIN])
def test_a_preflight_from_an_origin_some_client_lists_is_allowed(
    app: App, path: str, methods: str, origin: str
) -> None:
    response = _preflight(app, path, origin)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-methods"] == methods
    assert response.headers["access-control-allow-headers"] == "Authorization, Content-Type, DPoP"
    assert response.headers["access-control-max-age"] == "3600"
    assert response.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/userinfo"])
def test_a_preflight_from_a_foreign_origin_is_refused(app: App, path: str) -> None:
    response = _preflight(app, path, FOREIGN)
    assert response.status_code == 204 and _no_cors(response)
    assert _no_cors(_preflight(app, path, "null"))


@pytest.mark.parametrize("path", [
    "/oauth/authorize", "/oauth/introspect", "/scim/v2/Users", "/admin/clients",
    "/.well-known/openid-configuration", "/health",
])
def test_no_other_endpoint_answers_with_cors_headers(app: App, path: str) -> None:
    assert _no_cors(_preflight(app, path, SPA_ORIGIN))
    assert _no_cors(app.client.get(path, headers={"Origin": SPA_ORIGIN}))


def test_a_path_litestar_routes_to_the_token_endpoint_is_the_token_endpoint(app: App) -> None:
    response = _preflight(app, "/oauth/token/", SPA_ORIGIN)
    assert response.headers["access-control-allow-origin"] == SPA_ORIGIN


def test_a_client_stored_later_is_allowed_once_the_snapshot_is_read_again(app: App) -> None:
    later = "https://later.example.test"
    assert _no_cors(_preflight(app, "/oauth/token", later))
    app.add_client({**STORED, "client_id": "later", "allowed_cors_origins": [later],
                    "redirect_uris": [f"{later}/cb"]})
    app.clock.advance(5)
    response = _preflight(app, "/oauth/token", later)
    assert response.headers["access-control-allow-origin"] == later


def test_the_token_response_is_readable_by_the_clients_own_origin(app: App) -> None:
    response = _tokens(app, SPA_ORIGIN)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == SPA_ORIGIN
    assert response.headers["vary"] == "Origin"
    assert "WWW-Authenticate" in response.headers["access-control-expose-headers"]
    assert "access-control-allow-credentials" not in response.headers


def test_a_stored_clients_token_response_is_readable_by_its_origin(app: App) -> None:
    response = _tokens(app, STORED_ORIGIN, "stored-spa", STORED_REDIRECT)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == STORED_ORIGIN


@pytest.mark.parametrize("origin", [FOREIGN, STORED_ORIGIN])
def test_an_origin_the_client_does_not_list_gets_no_cors_headers(app: App, origin: str) -> None:
    # STORED_ORIGIN passes a preflight (another client lists it), but the response is for spa.
    response = _tokens(app, origin)
    assert response.status_code == 200
    assert _no_cors(response) and response.headers["vary"] == "Origin"


def test_without_an_origin_there_is_nothing_of_cors(app: App) -> None:
    response = _tokens(app, None)
    assert response.status_code == 200
    assert _no_cors(response) and "vary" not in response.headers


def test_an_error_of_an_authenticated_client_is_readable_and_a_failed_one_is_not(
    app: App
) -> None:
    grant_error = app.client.post("/oauth/token", headers={"Origin": SPA_ORIGIN}, data={
        "grant_type": "authorization_code", "code": "ac_nope", "redirect_uri": SPA_REDIRECT,
        "client_id": "spa", "code_verifier": "v" * 43})
    assert grant_error.status_code == 400
    assert grant_error.headers["access-control-allow-origin"] == SPA_ORIGIN
    unknown = app.client.post("/oauth/token", headers={"Origin": SPA_ORIGIN}, data={
        "grant_type": "refresh_token", "refresh_token": "rt_x", "client_id": "nobody"})
    assert unknown.status_code == 401 and _no_cors(unknown)


def test_revocation_and_userinfo_answer_the_tokens_client_origin(app: App) -> None:
    tokens = _tokens(app, SPA_ORIGIN).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    for method in ("GET", "POST"):
        info = app.client.request(method, "/oauth/userinfo",
                                  headers={**bearer, "Origin": SPA_ORIGIN})
        assert info.status_code == 200, info.text
        assert info.headers["access-control-allow-origin"] == SPA_ORIGIN
        assert info.headers["vary"] == "Origin"
    foreign = app.client.get("/oauth/userinfo", headers={**bearer, "Origin": FOREIGN})
    assert foreign.status_code == 200 and _no_cors(foreign)
    plain = app.client.get("/oauth/userinfo", headers=bearer)
    assert _no_cors(plain) and "vary" not in plain.headers
    revoked = app.client.post("/oauth/revoke", headers={"Origin": SPA_ORIGIN}, data={
        "token": tokens["refresh_token"], "client_id": "spa"})
    assert revoked.status_code == 200
    assert revoked.headers["access-control-allow-origin"] == SPA_ORIGIN
    foreign_revoke = app.client.post("/oauth/revoke", headers={"Origin": FOREIGN}, data={
        "token": tokens["access_token"], "client_id": "spa"})
    assert foreign_revoke.status_code == 200 and _no_cors(foreign_revoke)
    gone = app.client.get("/oauth/userinfo", headers={**bearer, "Origin": SPA_ORIGIN})
    # The token is revoked: no client is known any more, so nothing is readable.
    assert gone.status_code == 401 and _no_cors(gone)

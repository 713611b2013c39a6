"""POST /oauth/introspect (RFC 7662) and POST /oauth/revoke (RFC 7009) through the app."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import StoreBackend
from tests.e2e.oauth_setup import (
    FORM,
    ISSUER,
    POST_SECRET,
    FakeClock,
    basic,
    build_app,
    exchange,
    introspect,
    running,
)


def _cc_token(client: object, scope: str = "read") -> str:
    response = client.post("/oauth/token", headers={**FORM, **basic()},  # type: ignore[attr-defined]
                           data={"grant_type": "client_credentials", "scope": scope})
    token: str = response.json()["access_token"]
    return token


def test_active_token_fields(store: StoreBackend, tmp_path: Path) -> None:
    clock = FakeClock()
    app = build_app(store, tmp_path, clock=clock)
    with running(app) as client:
        tokens = exchange(client, app)
        response = client.post("/oauth/introspect", headers={**FORM, **basic()},
                               data={"token": tokens["access_token"]})
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert response.json() == {
            "active": True, "scope": "openid offline_access read", "client_id": "basic",
            "sub": "user-42", "exp": clock.value + 3600, "iat": clock.value, "iss": ISSUER,
            "token_type": "Bearer", "mfa_verified": True,
        }


def test_json_body_is_accepted(store: StoreBackend, tmp_path: Path) -> None:
    with running(build_app(store, tmp_path)) as client:
        token = client.post("/oauth/token", headers=FORM, data={
            "grant_type": "client_credentials", "scope": "read", "client_id": "post",
            "client_secret": POST_SECRET}).json()["access_token"]
        response = client.post("/oauth/introspect", json={
            "token": token, "client_id": "post", "client_secret": POST_SECRET})
        assert response.status_code == 200 and response.json()["active"] is True


def test_another_clients_token_without_audience_is_inactive(
    store: StoreBackend, tmp_path: Path
) -> None:
    # RFC 7662 section 4: a token's details go to its client and its audience only.
    app = build_app(store, tmp_path)
    with running(app) as client:
        for token in (_cc_token(client), exchange(client, app)["access_token"]):
            other = client.post("/oauth/introspect", headers=FORM, data={
                "token": token, "client_id": "post", "client_secret": POST_SECRET})
            assert other.status_code == 200 and other.json() == {"active": False}
            assert introspect(client, token)["active"] is True


@pytest.mark.parametrize("token", ["tk_unknown", "rt_unknown", "garbage"])
def test_unknown_token_is_inactive_with_200(
    store: StoreBackend, tmp_path: Path, token: str
) -> None:
    with running(build_app(store, tmp_path)) as client:
        assert introspect(client, token) == {"active": False}


def test_expired_token_is_inactive(store: StoreBackend, tmp_path: Path) -> None:
    clock = FakeClock()
    with running(build_app(store, tmp_path, clock=clock)) as client:
        token = _cc_token(client)
        clock.value += 3600
        assert introspect(client, token) == {"active": False}


def test_refresh_token_introspection(store: StoreBackend, tmp_path: Path) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        tokens = exchange(client, app)
        for hint in ({"token_type_hint": "refresh_token"}, {}, {"token_type_hint": "access_token"}):
            info = introspect(client, tokens["refresh_token"], **hint)
            assert info["active"] is True and info["token_type"] == "refresh_token"
        # Only its own client sees a refresh token.
        other = client.post("/oauth/introspect", headers=FORM, data={
            "token": tokens["refresh_token"], "client_id": "post", "client_secret": POST_SECRET})
        assert other.json() == {"active": False}


@pytest.mark.parametrize(
    ("headers", "data", "status", "error"),
    [
        (FORM, {"token": "tk_x"}, 401, "invalid_client"),
        (FORM, {"token": "tk_x", "client_id": "spa"}, 401, "invalid_client"),
        ({**FORM, **basic(secret="n" * 40)}, {"token": "tk_x"}, 401, "invalid_client"),
        ({**FORM, **basic()}, {}, 400, "invalid_request"),
        ({"Content-Type": "text/plain", **basic()}, {"token": "tk_x"}, 400, "invalid_request"),
    ],
)
def test_introspection_errors(
    store: StoreBackend, tmp_path: Path, headers: dict[str, str], data: dict[str, str],
    status: int, error: str,
) -> None:
    with running(build_app(store, tmp_path)) as client:
        response = client.post("/oauth/introspect", headers=headers, data=data)
        assert response.status_code == status and response.json()["error"] == error


# Revocation


def _revoke(client: object, token: str, headers: dict[str, str] | None = None,
            **extra: str) -> object:
    return client.post("/oauth/revoke",  # type: ignore[attr-defined]
                       headers=headers or {**FORM, **basic()}, data={"token": token, **extra})


def test_revoke_access_token(store: StoreBackend, tmp_path: Path) -> None:
    with running(build_app(store, tmp_path)) as client:
        token = _cc_token(client)
        response = _revoke(client, token)
        assert response.status_code == 200  # type: ignore[attr-defined]
        assert introspect(client, token) == {"active": False}


def test_revoke_refresh_token_revokes_the_family(store: StoreBackend, tmp_path: Path) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        tokens = exchange(client, app)
        response = _revoke(client, tokens["refresh_token"], token_type_hint="refresh_token")
        assert response.status_code == 200  # type: ignore[attr-defined]
        assert introspect(client, tokens["access_token"]) == {"active": False}
        refreshed = client.post("/oauth/token", headers={**FORM, **basic()}, data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
        assert refreshed.json()["error"] == "invalid_grant"


def test_another_clients_token_is_not_revoked(store: StoreBackend, tmp_path: Path) -> None:
    with running(build_app(store, tmp_path)) as client:
        token = _cc_token(client)
        response = client.post("/oauth/revoke", headers=FORM, data={
            "token": token, "client_id": "post", "client_secret": POST_SECRET})
        assert response.status_code == 200
        assert introspect(client, token)["active"] is True


def test_revoke_unknown_token_is_200(store: StoreBackend, tmp_path: Path) -> None:
    with running(build_app(store, tmp_path)) as client:
        assert _revoke(client, "tk_never-issued").status_code == 200  # type: ignore[attr-defined]


def test_revoke_requires_client_authentication(store: StoreBackend, tmp_path: Path) -> None:
    with running(build_app(store, tmp_path)) as client:
        token = _cc_token(client)
        response = client.post("/oauth/revoke", headers=FORM, data={"token": token})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="auth-service"'
        assert introspect(client, token)["active"] is True

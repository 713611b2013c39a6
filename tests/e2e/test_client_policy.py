"""Per-client policy through the app, for stored clients: token lifetimes, require_mfa,
require_pkce."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.e2e.client_policy_support import ISSUER, App, policy_app
from tests.e2e.conftest import StoreBackend
from tests.e2e.signin_flow import redirect_params

SECRET = "policy-client-secret-0123456789abcdefghij"
REDIRECT = "https://policy.example.test/cb"
BASE = {
    "token_endpoint_auth_method": "client_secret_basic", "redirect_uris": [REDIRECT],
    "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
    "scope": "openid offline_access read",
}
TOTP_SEED = pyotp.random_base32()


@pytest.fixture
def app(store: StoreBackend, tmp_path: Path) -> Any:
    with policy_app(store, tmp_path) as running:
        running.add_client({**BASE, "client_id": "short", "access_token_lifetime": 300,
                            "refresh_token_lifetime": 7200}, SECRET)
        running.add_client({**BASE, "client_id": "plain"}, SECRET)
        running.add_client({**BASE, "client_id": "mfa", "require_mfa": True}, SECRET)
        running.add_client({**BASE, "client_id": "legacy", "require_pkce": False}, SECRET)
        running.add_user("alice")
        running.add_user("bob", totp_secret=TOTP_SEED)
        yield running


def _token(app: App, client_id: str, **data: str) -> Any:
    response = app.client.post("/oauth/token", auth=(client_id, SECRET), data=data)
    assert response.status_code == 200, response.text
    return response.json()


def _introspect(app: App, client_id: str, token: str) -> Any:
    response = app.client.post("/oauth/introspect", auth=(client_id, SECRET),
                               data={"token": token})
    assert response.status_code == 200, response.text
    return response.json()


def _code_tokens(app: App, client_id: str, **sign_in: Any) -> Any:
    response, verifier = app.sign_in(client_id, REDIRECT, scope="openid offline_access",
                                     **sign_in)
    return _token(app, client_id, grant_type="authorization_code",
                  code=redirect_params(response)["code"], redirect_uri=REDIRECT,
                  code_verifier=verifier)


def test_a_clients_lifetimes_show_in_expires_in_and_introspection(app: App) -> None:
    now = app.clock.now()
    tokens = _code_tokens(app, "short")
    assert tokens["expires_in"] == 300
    access = _introspect(app, "short", tokens["access_token"])
    assert access["active"] and access["exp"] == now + 300 and access["iat"] == now
    held = _introspect(app, "short", tokens["refresh_token"])
    assert held["exp"] == now + 7200
    app.clock.advance(60)
    refreshed = _token(app, "short", grant_type="refresh_token",
                       refresh_token=tokens["refresh_token"])
    assert refreshed["expires_in"] == 300
    assert _introspect(app, "short", refreshed["refresh_token"])["exp"] == now + 60 + 7200
    own = _token(app, "short", grant_type="client_credentials", scope="read")
    assert own["expires_in"] == 300
    assert _introspect(app, "short", own["access_token"])["exp"] == now + 60 + 300


def test_a_client_without_lifetimes_gets_the_server_defaults(app: App) -> None:
    now = app.clock.now()
    tokens = _code_tokens(app, "plain")
    assert tokens["expires_in"] == 3600
    assert _introspect(app, "plain", tokens["refresh_token"])["exp"] == now + 1_209_600


def test_a_client_requiring_mfa_asks_a_user_with_totp_for_a_code(app: App) -> None:
    tokens = _code_tokens(app, "mfa", user_name="bob", totp_secret=TOTP_SEED)
    assert _introspect(app, "mfa", tokens["access_token"])["mfa_verified"] is True


def test_a_client_requiring_mfa_refuses_a_user_without_totp(app: App) -> None:
    response, _ = app.sign_in("mfa", REDIRECT, user_name="alice")
    params = redirect_params(response)
    assert response.headers["location"].startswith(REDIRECT + "?")
    assert params["error"] == "access_denied" and "code" not in params
    assert params["state"] == "st-1" and params["iss"] == ISSUER
    assert "two-factor" in params["error_description"]
    assert ("mfa_required", {"client_id": "mfa", "user_id": _user_id(app, "alice")}) in \
        app.events.events
    # The same user signs in to a client without the requirement.
    assert _code_tokens(app, "plain", user_name="alice")["access_token"]


def _user_id(app: App, user_name: str) -> str:
    user = app.call(app.services.store.find_user_by_name, user_name)
    assert user is not None
    user_id: str = user.id
    return user_id


def test_a_stored_client_needs_pkce_unless_it_opted_out(app: App) -> None:
    refused = app.authorize("plain", REDIRECT)
    assert redirect_params(refused)["error"] == "invalid_request"
    assert "PKCE" in redirect_params(refused)["error_description"]
    response, _ = app.sign_in("legacy", REDIRECT, pkce=False)
    code = redirect_params(response)["code"]
    assert _token(app, "legacy", grant_type="authorization_code", code=code,
                  redirect_uri=REDIRECT)["access_token"]

"""Native apps (RFC 8252): loopback redirect URIs on any port, private-use schemes."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.client_policy_support import ISSUER, App, policy_app
from tests.e2e.conftest import StoreBackend
from tests.e2e.signin_flow import redirect_params, submit

NATIVE = {
    "client_id": "native", "client_name": "Desktop App", "token_endpoint_auth_method": "none",
    "redirect_uris": ["http://127.0.0.1/cb", "http://[::1]/cb", "http://127.0.0.1:7777/fixed"],
    "grant_types": ["authorization_code", "refresh_token"], "scope": "openid offline_access",
}
MOBILE_REDIRECT = "com.example.app:/oauth2redirect"
MOBILE = {
    "client_id": "mobile", "client_name": "Mobile App", "token_endpoint_auth_method": "none",
    "redirect_uris": [MOBILE_REDIRECT], "grant_types": ["authorization_code"],
    "scope": "openid",
}


@pytest.fixture
def app(store: StoreBackend, tmp_path: Path) -> Any:
    with policy_app(store, tmp_path) as running:
        running.add_client(NATIVE)
        running.add_client(MOBILE)
        running.add_user()
        yield running


def _exchange(app: App, code: str, verifier: str, redirect_uri: str,
              client_id: str = "native") -> Any:
    return app.client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "client_id": client_id, "code_verifier": verifier})


@pytest.mark.parametrize("redirect_uri", ["http://127.0.0.1:53121/cb", "http://[::1]:41999/cb"])
def test_a_native_app_signs_in_on_a_random_loopback_port(app: App, redirect_uri: str) -> None:
    response, verifier = app.sign_in("native", redirect_uri, scope="openid offline_access")
    location = response.headers["location"]
    # Back to the very port the app listens on, with the code, the state and the issuer.
    assert location.startswith(redirect_uri + "?"), location
    params = redirect_params(response)
    assert params["state"] == "st-1" and params["iss"] == ISSUER
    token = _exchange(app, params["code"], verifier, redirect_uri)
    assert token.status_code == 200, token.text
    assert token.json()["refresh_token"]


def test_the_token_request_must_repeat_the_very_uri_port_included(app: App) -> None:
    for sent in ("http://127.0.0.1/cb", "http://127.0.0.1:53122/cb"):
        response, verifier = app.sign_in("native", "http://127.0.0.1:53121/cb")
        token = _exchange(app, redirect_params(response)["code"], verifier, sent)
        assert token.status_code == 400, token.text
        assert token.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("redirect_uri", [
    "http://127.0.0.1:53121/other",       # another path
    "http://127.0.0.1:53121/cb?x=1",      # another query
    "http://localhost:53121/cb",          # a name is not the registered IP literal
    "https://127.0.0.1:53121/cb",
    "http://127.0.0.1:7778/fixed",        # registered with a port: only that port
    "http://127.0.0.1/fixed",
])
def test_anything_else_is_not_the_registered_uri(app: App, redirect_uri: str) -> None:
    response = app.authorize("native", redirect_uri, challenge="c" * 43)
    # Shown, never redirected: the URI is not trusted.
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "not registered" in response.text


def test_a_loopback_uri_registered_with_a_port_works_on_that_port(app: App) -> None:
    response, verifier = app.sign_in("native", "http://127.0.0.1:7777/fixed")
    token = _exchange(app, redirect_params(response)["code"], verifier,
                      "http://127.0.0.1:7777/fixed")
    assert token.status_code == 200, token.text


def test_errors_go_back_to_the_loopback_port_of_the_request(app: App) -> None:
    response = app.authorize("native", "http://127.0.0.1:60001/cb")  # no PKCE
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("http://127.0.0.1:60001/cb?")
    params = redirect_params(response)
    assert params["error"] == "invalid_request" and params["state"] == "st-1"


def test_a_mobile_app_gets_its_code_at_its_private_use_scheme(app: App) -> None:
    page = app.authorize("mobile", MOBILE_REDIRECT, challenge="c" * 43)
    # The sign-in form ends in a redirect to the app: the page's CSP must allow it.
    assert "form-action 'self' com.example.app:" in page.headers["content-security-policy"]
    response, verifier = app.sign_in("mobile", MOBILE_REDIRECT)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(MOBILE_REDIRECT + "?code="), location
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st-1"] and query["iss"] == [ISSUER]
    token = _exchange(app, query["code"][0], verifier, MOBILE_REDIRECT, "mobile")
    assert token.status_code == 200, token.text


def test_a_cancelled_sign_in_goes_back_to_the_private_use_scheme(app: App) -> None:
    page = app.authorize("mobile", MOBILE_REDIRECT, challenge="c" * 43)
    response = submit(app.client, page, action="cancel")
    assert response.headers["location"].startswith(MOBILE_REDIRECT + "?error=access_denied")

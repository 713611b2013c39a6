"""PKCE is required for every client of the authorization code flow (OAuth 2.1 section
4.1.1), except a legacy confidential client that opted out with ``require_pkce = false``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.signin_flow import (
    PASSWORD,
    auth_params,
    harness,
    pkce_pair,
    redirect_params,
    submit,
)

SECRET = "strict-client-secret-0123456789abcdefghij"
REDIRECT = "https://strict.example.test/cb"
CLIENTS = f"""
[[clients]]
client_id = "strict"
secret = "{SECRET}"
redirect_uris = ["{REDIRECT}"]
scopes = ["openid", "profile"]
first_party = true

[[clients]]
client_id = "legacy"
secret = "{SECRET}"
redirect_uris = ["{REDIRECT}"]
scopes = ["openid", "profile"]
require_pkce = false
first_party = true
"""


@pytest.fixture
def h(tmp_path: Path) -> Any:
    path = tmp_path / "pkce-clients.toml"
    path.write_text(CLIENTS)
    with harness(tmp_path, CLIENTS_FILE=str(path)) as running:
        running.add_user()
        yield running


def _without_pkce(client_id: str) -> dict[str, str]:
    return auth_params(client_id=client_id, redirect_uri=REDIRECT, scope="openid",
                       code_challenge=None, code_challenge_method=None)


def test_a_confidential_client_without_pkce_is_refused(h: Any) -> None:
    response = h.client.get("/oauth/authorize", params=_without_pkce("strict"),
                            follow_redirects=False)
    params = redirect_params(response)
    assert params["error"] == "invalid_request" and "PKCE" in params["error_description"]
    assert "code" not in params


def test_a_confidential_client_with_pkce_signs_in(h: Any) -> None:
    verifier, challenge = pkce_pair()
    page = h.client.get("/oauth/authorize", params=auth_params(
        client_id="strict", redirect_uri=REDIRECT, scope="openid", code_challenge=challenge))
    code = redirect_params(submit(h.client, page, username="alice", password=PASSWORD))["code"]
    token = h.client.post("/oauth/token", auth=("strict", SECRET), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": verifier})
    assert token.status_code == 200, token.text


def test_a_legacy_confidential_client_that_opted_out_signs_in_without_pkce(h: Any) -> None:
    page = h.client.get("/oauth/authorize", params=_without_pkce("legacy"))
    assert page.status_code == 200
    code = redirect_params(submit(h.client, page, username="alice", password=PASSWORD))["code"]
    token = h.client.post("/oauth/token", auth=("legacy", SECRET), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
    assert token.status_code == 200, token.text


def test_discovery_advertises_exactly_the_pkce_methods_accepted(h: Any) -> None:
    meta = h.client.get("/.well-known/oauth-authorization-server").json()
    advertised = meta["code_challenge_methods_supported"]
    assert advertised == ["S256"]
    _, challenge = pkce_pair()
    for method in advertised:
        page = h.client.get("/oauth/authorize", params=auth_params(
            client_id="strict", redirect_uri=REDIRECT, scope="openid",
            code_challenge=challenge, code_challenge_method=method))
        assert page.status_code == 200
    plain = h.client.get("/oauth/authorize", params=auth_params(
        client_id="strict", redirect_uri=REDIRECT, scope="openid",
        code_challenge=challenge, code_challenge_method="plain"), follow_redirects=False)
    assert redirect_params(plain)["error"] == "invalid_request"

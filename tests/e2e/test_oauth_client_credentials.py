"""client_credentials through the ASGI app, with Authlib's OAuth2Client as the client."""

from __future__ import annotations

from pathlib import Path

import pytest
from authlib.integrations.httpx_client import OAuth2Client  # type: ignore[import-untyped]

from tests.e2e.conftest import StoreBackend
from tests.e2e.oauth_setup import (
    ENV_SECRET,
    FORM,
    POST_SECRET,
    SECRET,
    basic,
    build_app,
    running,
)


@pytest.mark.parametrize(
    ("client_id", "secret", "method"),
    [
        ("basic", SECRET, "client_secret_basic"),
        ("post", POST_SECRET, "client_secret_post"),
        ("envc", ENV_SECRET, "client_secret_basic"),
        ("envc", ENV_SECRET, "client_secret_post"),
    ],
)
def test_authlib_client_credentials(
    store: StoreBackend, tmp_path: Path, client_id: str, secret: str, method: str
) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        oauth = OAuth2Client(
            client_id, secret, token_endpoint_auth_method=method, scope="read",
            transport=client._transport, base_url="http://auth.test",
        )
        token = oauth.fetch_token("http://auth.test/oauth/token", grant_type="client_credentials")
        assert token["token_type"] == "Bearer"
        assert token["access_token"].startswith("tk_")
        assert token["scope"] == "read" and token["expires_in"] == 3600
        assert "refresh_token" not in token  # RFC 6749 section 4.4.3
        # Introspected by the client itself: no other client may see a token without
        # audience (RFC 7662 section 4, docs/resource-servers.md).
        own = ({"headers": {**FORM, **basic(client_id, secret)}, "data": {}}
               if method == "client_secret_basic" else
               {"headers": FORM, "data": {"client_id": client_id, "client_secret": secret}})
        info = client.post("/oauth/introspect", headers=own["headers"],
                           data={"token": token["access_token"], **own["data"]}).json()
        assert info["active"] is True and info["client_id"] == client_id


def test_response_headers_and_body(store: StoreBackend, tmp_path: Path) -> None:
    with running(build_app(store, tmp_path)) as client:
        response = client.post("/oauth/token", headers={**FORM, **basic()},
                               content="grant_type=client_credentials&scope=read+write")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
        assert body["scope"] == "read write"


def test_form_with_charset_is_accepted(store: StoreBackend, tmp_path: Path) -> None:
    with running(build_app(store, tmp_path)) as client:
        response = client.post(
            "/oauth/token",
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
                     **basic()},
            content="grant_type=client_credentials",
        )
        assert response.status_code == 200

"""Headers every response carries: a strict default Content-Security-Policy, nosniff,
no referrer, no framing; HSTS when the issuer is https. And the OpenAPI document is served
as JSON only: Litestar's documentation pages load unpinned scripts from CDNs, which must
never run on an authorization server's origin."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.ops_support import client_token, ops_app
from tests.e2e.signin_flow import Harness, auth_params

STRICT = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
UI_PATHS = ["/schema/swagger", "/schema/redoc", "/schema/elements", "/schema/rapidoc",
            "/schema/scalar", "/schema/stoplight", "/schema/oauth2-redirect.html",
            "/schema/openapi.yaml", "/schema/openapi.yml"]


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with ops_app(tmp_path_factory.mktemp("headers")) as running:
        yield running


@pytest.mark.parametrize("path", ["/schema", "/schema/", "/schema/openapi.json"])
def test_the_schema_is_the_openapi_json(h: Harness, path: str) -> None:
    response = h.client.get(path)
    assert response.status_code == 200
    assert "json" in response.headers["content-type"]
    assert response.json()["info"]["title"] == "auth-service"
    assert response.headers["content-security-policy"] == STRICT


@pytest.mark.parametrize("path", UI_PATHS)
def test_no_documentation_ui_is_served(h: Harness, path: str) -> None:
    response = h.client.get(path)
    assert response.status_code == 404
    assert "<script" not in response.text and "cdn" not in response.text


@pytest.mark.parametrize("path", ["/health", "/missing", "/.well-known/openid-configuration",
                                  "/jwks.json", "/metrics"])
def test_every_response_has_the_strict_default_headers(h: Harness, path: str) -> None:
    response = h.client.get(path)
    assert response.headers["content-security-policy"] == STRICT
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "strict-transport-security" not in response.headers  # the issuer is http here


def test_oauth_answers_and_refusals_have_them_too(h: Harness) -> None:
    for response in (client_token(h.client),
                     h.client.post("/oauth/token", data={"grant_type": "password"}),
                     h.client.post("/oauth/introspect", content=b"x" * (2 * 1024 * 1024),
                                   headers={"content-type": "application/json"})):
        assert response.headers["content-security-policy"] == STRICT, response.status_code
        assert response.headers["x-content-type-options"] == "nosniff"


def test_html_pages_send_only_what_they_need(h: Harness) -> None:
    page = h.client.get("/oauth/authorize", params=auth_params())
    error = h.client.get("/oauth/authorize", params=auth_params(client_id="nobody"))
    for response in (page, error):
        assert response.headers["content-type"].startswith("text/html")
        policy = response.headers["content-security-policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        # Inline styles and a form posting to us (and the client's redirect); no script but
        # this server's own passkey script on the sign-in page, and no inline script.
        assert directives["default-src"] == "'none'"
        assert directives["style-src"] == "'self' 'unsafe-inline'"
        assert directives["form-action"].startswith("'self'")
        assert directives["frame-ancestors"] == "'none'"
        if response is page:
            assert directives["script-src"] == "'self'"
            assert re.findall(r"<script[^>]*>", response.text) == [
                '<script src="/static/passkeys.js" defer>']
        else:
            assert "script-src" not in directives
            assert "<script" not in response.text
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/health", "/missing", "/schema/openapi.json"])
def test_an_https_issuer_adds_hsts_everywhere(tmp_path: Path, path: str) -> None:
    with ops_app(tmp_path, EXTERNAL_BASE_URL="https://auth.example.test") as https:
        response = https.client.get(path)
        assert response.headers["strict-transport-security"] == "max-age=31536000"
        page = https.client.get("/oauth/authorize", params=auth_params())
        assert page.headers["strict-transport-security"] == "max-age=31536000"
        token = client_token(https.client)
        assert token.status_code == 200
        assert token.headers["strict-transport-security"] == "max-age=31536000"

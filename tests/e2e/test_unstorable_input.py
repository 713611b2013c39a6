"""Input no store can keep (a NUL byte, a lone surrogate) is the client's error, on every
backend: 400 in the endpoint's own error format, never a 503, never a store error.

PostgreSQL refuses U+0000 in ``text`` (SQLSTATE 22021): before the fix, each of these
answered 503 on ``sql`` and counted as a store failure, while ``memory`` stored the NUL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar.testing import TestClient

from domain.oauth import pkce_s256
from tests.e2e.conftest import StoreBackend
from tests.e2e.oauth_setup import FORM, REDIRECT, basic, build_app
from tests.e2e.ops_support import metric
from tests.e2e.scim_support import BACKENDS, SCIM_JSON, ScimHarness, scim_app
from tests.e2e.signin_flow import Form

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
INTERNAL = ("asyncpg", "sqlalchemy", "SQLSTATE", "database", "Traceback")


@pytest.fixture(params=BACKENDS)
def scim(request: pytest.FixtureRequest) -> Iterator[ScimHarness]:
    with scim_app(request.param) as running:
        yield running


def store_errors(client: TestClient[Any]) -> float:
    text = client.get("/metrics").text
    return sum(metric(text, "auth_store_errors_total", backend=name)
               for name in ("memory", "hybrid", "sql"))


def assert_scim_400(response: httpx.Response, *scim_types: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(SCIM_JSON)
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == "400"
    assert body["scimType"] in (scim_types or ("invalidValue",)), body
    assert "not allowed" in body["detail"]
    for name in INTERNAL:
        assert name not in response.text


@pytest.mark.parametrize("path", [
    "/scim/v2/Users/%00", "/scim/v2/Groups/%00", "/scim/v2/Users/a%00b",
])
def test_a_nul_in_a_scim_id_is_400_on_every_method(scim: ScimHarness, path: str) -> None:
    headers = scim.auth()
    before = store_errors(scim.client)
    deactivate = {"op": "replace", "value": {"active": False}}
    for method, body in (("GET", None), ("DELETE", None),
                         ("PUT", {"userName": "x", "displayName": "x"}),
                         ("PATCH", {"schemas": [PATCH_OP], "Operations": [deactivate]})):
        response = scim.client.request(method, path, headers=headers, json=body)
        assert_scim_400(response)
    assert store_errors(scim.client) == before


@pytest.mark.parametrize("document", [
    {"userName": "a\x00b"},
    {"userName": "ok", "displayName": "x\x00"},
    {"userName": "ok", "externalId": "\x00"},
    {"userName": "ok", "name": {"givenName": "B\x00"}},
    {"userName": "ok", "emails": [{"value": "b@example.test\x00", "type": "work"}]},
    {"userName": "ok", "password": "long enough\x00"},
])
def test_a_nul_in_a_user_body_is_400_invalid_value(
    scim: ScimHarness, document: dict[str, Any]
) -> None:
    before = store_errors(scim.client)
    response = scim.client.post("/scim/v2/Users", headers=scim.auth(),
                                json={"schemas": [USER_SCHEMA], **document})
    assert_scim_400(response)
    assert store_errors(scim.client) == before
    listed = scim.client.get("/scim/v2/Users", headers=scim.auth()).json()
    assert listed["totalResults"] == 0  # nothing was stored on any backend


def test_a_nul_in_group_bodies_and_patches_is_400(scim: ScimHarness) -> None:
    headers = scim.auth()
    before = store_errors(scim.client)
    assert_scim_400(scim.client.post("/scim/v2/Groups", headers=headers,
                                     json={"displayName": "g\x00"}))
    assert_scim_400(scim.client.post("/scim/v2/Groups", headers=headers,
                                     json={"displayName": "g", "members": [{"value": "\x00"}]}))
    user = scim.client.post("/scim/v2/Users", headers=headers, json={"userName": "bjensen"})
    group = scim.client.post("/scim/v2/Groups", headers=headers, json={"displayName": "g"})
    assert user.status_code == group.status_code == 201
    patched = scim.client.patch(f"/scim/v2/Users/{user.json()['id']}", headers=headers, json={
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName",
                                               "value": "B\x00"}]})
    assert_scim_400(patched)
    member = scim.client.patch(f"/scim/v2/Groups/{group.json()['id']}", headers=headers, json={
        "schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members",
                                               "value": [{"value": "u\x00"}]}]})
    assert_scim_400(member)
    assert store_errors(scim.client) == before


@pytest.mark.parametrize("expression", [
    'userName eq "\\u0000"', 'userName sw "a\\u0000"', 'displayName co "\\ud800"',
    'emails[value eq "\\u0000"]',
])
def test_an_unstorable_string_in_a_filter_is_400_invalid_filter(
    scim: ScimHarness, expression: str
) -> None:
    before = store_errors(scim.client)
    for resource in ("Users", "Groups"):
        if resource == "Groups" and "emails" in expression:
            continue
        expr = expression.replace("userName", "displayName") if resource == "Groups" \
            else expression
        response = scim.client.get(f"/scim/v2/{resource}", headers=scim.auth(),
                                   params={"filter": expr})
        assert_scim_400(response, "invalidFilter")
    assert store_errors(scim.client) == before


# OAuth endpoints, the authorization request and the sign-in form


@pytest.fixture
def oauth(store: StoreBackend, tmp_path: Path) -> Iterator[TestClient[Any]]:
    with TestClient(build_app(store, tmp_path), base_url="http://auth.test") as client:
        yield client


@pytest.mark.parametrize(("path", "data"), [
    ("/oauth/token", {"grant_type": "client_credentials", "scope": "read\x00"}),
    ("/oauth/token", {"grant_type": "refresh_token", "refresh_token": "rt_\x00"}),
    ("/oauth/token", {"grant_type": "authorization_code", "code": "ac_\x00",
                      "redirect_uri": REDIRECT, "code_verifier": "v" * 43}),
    ("/oauth/introspect", {"token": "tk_\x00"}),
    ("/oauth/revoke", {"token": "tk_\x00", "token_type_hint": "access_token"}),
    ("/oauth/token", {"grant_type\x00": "client_credentials"}),
])
def test_a_nul_in_an_oauth_parameter_is_invalid_request(
    oauth: TestClient[Any], path: str, data: dict[str, str]
) -> None:
    before = store_errors(oauth)
    response = oauth.post(path, headers={**FORM, **basic()}, data=data)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert response.headers["cache-control"] == "no-store"
    assert store_errors(oauth) == before


def test_a_nul_in_basic_credentials_is_invalid_request(oauth: TestClient[Any]) -> None:
    response = oauth.post("/oauth/token", headers={**FORM, **basic("basic\x00")},
                          data={"grant_type": "client_credentials"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


def test_a_nul_in_the_json_introspection_body_is_invalid_request(
    oauth: TestClient[Any]
) -> None:
    response = oauth.post("/oauth/introspect", headers={**basic()}, json={"token": "tk_\x00"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


def _authorize(**overrides: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": "basic", "redirect_uri": REDIRECT,
            "scope": "openid read", "state": "st", "nonce": "n", **overrides}


@pytest.mark.parametrize("name", ["nonce", "scope", "state", "prompt"])
def test_a_nul_in_an_authorization_request_goes_back_as_invalid_request(
    oauth: TestClient[Any], name: str
) -> None:
    response = oauth.get("/oauth/authorize", params=_authorize(**{name: "x\x00"}),
                         follow_redirects=False)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT)
    assert parse_qs(urlsplit(location).query)["error"] == ["invalid_request"]


def test_a_nul_in_an_untrusted_authorization_parameter_is_shown_not_redirected(
    oauth: TestClient[Any]
) -> None:
    response = oauth.get("/oauth/authorize", params=_authorize(redirect_uri=REDIRECT + "\x00"),
                         follow_redirects=False)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("username", ["alice\x00", "\x00", "a\x00' OR 1=1 --"])
def test_a_nul_in_the_sign_in_user_name_is_the_sign_in_page_with_400(
    oauth: TestClient[Any], username: str
) -> None:
    before = store_errors(oauth)
    # PKCE, as every authorization-code client must (OAuth 2.1).
    page = oauth.get("/oauth/authorize", params=_authorize(
        code_challenge=pkce_s256("v" * 43), code_challenge_method="S256"),
        follow_redirects=False)
    assert page.status_code == 200, page.text
    form = Form(page.text)
    response = oauth.post(form.action or "", data={
        **form.fields, "username": username, "password": "whatever pass", "action": "signin"},
        follow_redirects=False)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "not allowed" in response.text
    assert 'name="username"' in response.text  # the page itself, to try again
    assert store_errors(oauth) == before

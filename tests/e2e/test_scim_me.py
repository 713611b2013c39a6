"""GET /scim/v2/Me (RFC 7644 section 3.11): the user's own resource, for the user's own
token with ``profile``; never for a service token. On each backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.entities import Email, User
from tests.e2e.scim_support import BACKENDS, SCIM_JSON, SCIM_URL, ScimHarness, scim_app
from tests.e2e.signin_flow import full_flow, harness

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest) -> Iterator[ScimHarness]:
    with scim_app(request.param) as running:
        yield running


@pytest.fixture
def user(app: ScimHarness) -> User:
    created: User = app.call(app.store.create_user, User(
        user_name="bjensen", display_name="Barbara Jensen",
        emails=(Email(value="bjensen@example.test", primary=True),)))
    return created


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM_JSON)
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status) and body["detail"]
    return body


def test_a_users_token_with_profile_reads_its_own_resource(app: ScimHarness,
                                                           user: User) -> None:
    token = app.token("openid profile", sub=user.id)
    response = app.client.get("/scim/v2/Me", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(SCIM_JSON)
    assert response.headers["location"] == f"{SCIM_URL}/Users/{user.id}"
    assert response.headers["etag"] == 'W/"1"'
    body = response.json()
    assert (body["id"], body["userName"]) == (user.id, "bjensen")
    assert body["meta"]["location"] == f"{SCIM_URL}/Users/{user.id}"
    assert "password" not in body


def test_me_honours_projection_and_if_none_match(app: ScimHarness, user: User) -> None:
    headers = bearer(app.token("profile", sub=user.id))
    projected = app.client.get("/scim/v2/Me?attributes=userName", headers=headers).json()
    assert set(projected) == {"schemas", "id", "userName"}
    unchanged = app.client.get("/scim/v2/Me", headers={**headers, "If-None-Match": 'W/"1"'})
    assert unchanged.status_code == 304


def test_a_service_token_gets_403_insufficient_scope(app: ScimHarness, user: User) -> None:
    for scope in ("scim:write", "scim:read", "scim:write profile"):
        response = app.client.get("/scim/v2/Me", headers=bearer(app.token(scope)))
        body = assert_error(response, 403)
        assert "user" in body["detail"]
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge and 'scope="profile"' in challenge


def test_a_users_token_without_profile_gets_403(app: ScimHarness, user: User) -> None:
    for scope in ("openid", "openid email", "scim:read"):
        response = app.client.get("/scim/v2/Me",
                                  headers=bearer(app.token(scope, sub=user.id)))
        assert_error(response, 403)
        assert 'scope="profile"' in response.headers["www-authenticate"]


def test_no_token_or_a_bad_one_gets_401(app: ScimHarness, user: User) -> None:
    anonymous = app.client.get("/scim/v2/Me")
    assert_error(anonymous, 401)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    bad = app.client.get("/scim/v2/Me", headers=bearer("tk_not-a-token"))
    assert_error(bad, 401)
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]


def test_a_deleted_or_deactivated_user_gets_401(app: ScimHarness, user: User) -> None:
    ghost = app.token("profile", sub="no-such-user")
    assert_error(app.client.get("/scim/v2/Me", headers=bearer(ghost)), 401)
    token = app.token("profile", sub=user.id)
    app.client.patch(f"/scim/v2/Users/{user.id}", headers=app.auth(), json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}]})
    assert_error(app.client.get("/scim/v2/Me", headers=bearer(token)), 401)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_writes_through_me_are_501(app: ScimHarness, user: User, method: str) -> None:
    headers = {**bearer(app.token("openid profile", sub=user.id)), "Content-Type": SCIM_JSON}
    response = app.client.request(method, "/scim/v2/Me", headers=headers,
                                  json={"userName": "renamed"})
    assert_error(response, 501)
    after = app.client.get(f"/scim/v2/Users/{user.id}", headers=app.auth("scim:read")).json()
    assert after["userName"] == "bjensen"


def test_a_token_from_the_sign_in_flow_reads_me(tmp_path: Path) -> None:
    with harness(tmp_path) as h:
        created = h.add_user()
        token = full_flow(h, scope="openid profile")["access_token"]
        response = h.client.get("/scim/v2/Me", headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json()["id"] == created.id
        assert response.json()["userName"] == "alice"

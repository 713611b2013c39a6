"""SCIM over HTTP: status codes, error resources, ETags, authorization, and the exact
request shapes Entra ID and Okta send, on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from adapters.memory.store import MemoryStore
from domain.errors import StoreUnavailable
from domain.filters import ListQuery
from tests.e2e.scim_support import (
    BACKENDS,
    PROVISIONER,
    PROVISIONER_SECRET,
    SCIM_JSON,
    SCIM_URL,
    ScimHarness,
    scim_app,
)

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest) -> Iterator[ScimHarness]:
    with scim_app(request.param) as running:
        yield running


@pytest.fixture
def auth(app: ScimHarness) -> dict[str, str]:
    return app.auth("scim:write")


def create_user(app: ScimHarness, auth: dict[str, str], user_name: str = "bjensen",
                **extra: Any) -> dict[str, Any]:
    response = app.client.post("/scim/v2/Users", headers=auth,
                               json={"schemas": [USER_SCHEMA], "userName": user_name, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_error(response: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM_JSON)
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type
    assert body["detail"]
    for internal in ("asyncpg", "sqlalchemy", "redis", "Traceback", "domain.", "adapters."):
        assert internal not in response.text
    return body


# Create and read


def test_create_answers_201_with_location_etag_and_meta(app: ScimHarness,
                                                        auth: dict[str, str]) -> None:
    response = app.client.post("/scim/v2/Users", headers=auth, json={
        "schemas": [USER_SCHEMA], "userName": "bjensen", "password": "t0p-Secret-pass",
        "groups": [{"value": "ignored"}], "id": "client-chosen"})
    assert response.status_code == 201
    body = response.json()
    assert response.headers["content-type"].startswith(SCIM_JSON)
    assert response.headers["location"] == f"{SCIM_URL}/Users/{body['id']}"
    assert response.headers["etag"] == 'W/"1"'
    assert body["id"] != "client-chosen"
    assert "password" not in body and "t0p-Secret" not in response.text
    assert "groups" not in body
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["version"] == 'W/"1"'
    assert body["meta"]["created"].endswith("Z")
    read = app.client.get(f"/scim/v2/Users/{body['id']}", headers=auth)
    assert read.status_code == 200 and read.headers["etag"] == 'W/"1"'
    assert "password" not in read.json()


def test_application_json_is_accepted_too(app: ScimHarness, auth: dict[str, str]) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    response = app.client.post("/scim/v2/Groups", headers=headers,
                               json={"displayName": "Plain JSON"})
    assert response.status_code == 201
    assert response.headers["content-type"].startswith(SCIM_JSON)


def test_unknown_id_is_404(app: ScimHarness, auth: dict[str, str]) -> None:
    for path in ("/scim/v2/Users/nope", "/scim/v2/Groups/nope"):
        assert_error(app.client.get(path, headers=auth), 404)
        assert_error(app.client.delete(path, headers=auth), 404)
        assert_error(app.client.put(path, headers=auth, json={"userName": "x",
                                                              "displayName": "x"}), 404)


def test_duplicate_names_are_409_uniqueness(app: ScimHarness, auth: dict[str, str]) -> None:
    create_user(app, auth, "BJensen")
    response = app.client.post("/scim/v2/Users", headers=auth, json={"userName": "bjensen"})
    assert_error(response, 409, "uniqueness")
    app.client.post("/scim/v2/Groups", headers=auth, json={"displayName": "Admins"})
    response = app.client.post("/scim/v2/Groups", headers=auth, json={"displayName": "ADMINS"})
    assert_error(response, 409, "uniqueness")


def test_bad_bodies(app: ScimHarness, auth: dict[str, str]) -> None:
    assert_error(app.client.post("/scim/v2/Users", headers=auth, content=b"{not json"),
                 400, "invalidSyntax")
    assert_error(app.client.post("/scim/v2/Users", headers=auth, json={"displayName": "x"}),
                 400, "invalidValue")
    assert_error(app.client.post("/scim/v2/Users", headers=auth,
                                 json={"userName": "x", "active": "perhaps"}), 400, "invalidValue")
    assert_error(app.client.post("/scim/v2/Groups", headers=auth,
                                 json={"displayName": "G", "members": [{"value": "ghost"}]}),
                 400, "invalidValue")
    response = app.client.post("/scim/v2/Users", headers={**auth, "Content-Type": "text/plain"},
                                content=b"userName=x")
    assert_error(response, 415)


def test_body_too_large_is_413(app: ScimHarness, auth: dict[str, str]) -> None:
    response = app.client.post("/scim/v2/Users", headers=auth,
                               content=b'{"userName": "' + b"x" * (1024 * 1024 + 10) + b'"}')
    assert response.status_code == 413


# Lists and filters


def test_list_response_shape_and_window(app: ScimHarness, auth: dict[str, str]) -> None:
    ids = sorted(create_user(app, auth, f"user{i}")["id"] for i in range(4))
    body = app.client.get("/scim/v2/Users", headers=auth,
                          params={"startIndex": 2, "count": 2}).json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    assert (body["totalResults"], body["itemsPerPage"], body["startIndex"]) == (4, 2, 2)
    assert [r["id"] for r in body["Resources"]] == ids[1:3]  # stable order by id
    body = app.client.get("/scim/v2/Users", headers=auth,
                          params={"startIndex": -5, "count": -1}).json()
    assert (body["totalResults"], body["itemsPerPage"], body["startIndex"]) == (4, 0, 1)
    body = app.client.get("/scim/v2/Users", headers=auth, params={"count": 100000}).json()
    assert body["itemsPerPage"] == 4
    assert_error(app.client.get("/scim/v2/Users", headers=auth, params={"count": "many"}),
                 400, "invalidValue")


def test_filters(app: ScimHarness, auth: dict[str, str]) -> None:
    create_user(app, auth, "alice", emails=[{"value": "alice@work.example", "type": "work"}],
                active=False)
    create_user(app, auth, "bob", name={"givenName": "Robert"})

    def names(expr: str) -> list[str]:
        response = app.client.get("/scim/v2/Users", headers=auth, params={"filter": expr})
        assert response.status_code == 200, response.text
        return sorted(r["userName"] for r in response.json()["Resources"])

    assert names('userName eq "ALICE"') == ["alice"]
    assert names("active eq false") == ["alice"]
    assert names('emails[type eq "work" and value ew "example"]') == ["alice"]
    assert names('name.givenName sw "rob" or userName eq "nobody"') == ["bob"]
    assert names('not (userName eq "alice")') == ["bob"]
    assert names("displayName pr") == []
    assert names('meta.created gt "2000-01-01T00:00:00Z"') == ["alice", "bob"]


@pytest.mark.parametrize("expr", [
    'userName eq', 'nosuch eq "x"', "active gt true", 'userName eq "x" and', "((((",
    "meta.created gt \"yesterday\"", "x" * 5000,
])
def test_bad_filter_is_400_invalid_filter(app: ScimHarness, auth: dict[str, str],
                                          expr: str) -> None:
    assert_error(app.client.get("/scim/v2/Users", headers=auth, params={"filter": expr}),
                 400, "invalidFilter")


def test_attributes_and_excluded_attributes(app: ScimHarness, auth: dict[str, str]) -> None:
    user = create_user(app, auth, "bjensen", displayName="B", name={"givenName": "Bar"})
    body = app.client.get(f"/scim/v2/Users/{user['id']}", headers=auth,
                          params={"attributes": "userName,name.givenName"}).json()
    assert set(body) == {"schemas", "id", "userName", "name"}
    assert body["name"] == {"givenName": "Bar"}
    body = app.client.get("/scim/v2/Users", headers=auth,
                          params={"excludedAttributes": "meta,displayName"}).json()
    assert "meta" not in body["Resources"][0] and "displayName" not in body["Resources"][0]


# ETags


def test_etags_and_preconditions(app: ScimHarness, auth: dict[str, str]) -> None:
    user = create_user(app, auth)
    url = f"/scim/v2/Users/{user['id']}"
    not_modified = app.client.get(url, headers={**auth, "If-None-Match": 'W/"1"'})
    assert not_modified.status_code == 304
    assert app.client.get(url, headers={**auth, "If-None-Match": 'W/"9"'}).status_code == 200

    stale = app.client.put(url, headers={**auth, "If-Match": 'W/"7"'},
                           json={"userName": "bjensen", "displayName": "x"})
    assert_error(stale, 412)
    fresh = app.client.put(url, headers={**auth, "If-Match": 'W/"1"'},
                           json={"userName": "bjensen", "displayName": "x"})
    assert fresh.status_code == 200 and fresh.headers["etag"] == 'W/"2"'

    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "displayName",
                                                    "value": "y"}]}
    assert_error(app.client.patch(url, headers={**auth, "If-Match": 'W/"1"'}, json=patch), 412)
    assert_error(app.client.patch(url, headers={**auth, "If-Match": '"bogus"'}, json=patch), 412)
    ok = app.client.patch(url, headers={**auth, "If-Match": 'W/"1", W/"2"'}, json=patch)
    assert ok.status_code == 200 and ok.headers["etag"] == 'W/"3"'
    assert app.client.patch(url, headers={**auth, "If-Match": "*"}, json=patch).status_code == 200

    assert_error(app.client.delete(url, headers={**auth, "If-Match": 'W/"1"'}), 412)
    assert app.client.delete(url, headers={**auth, "If-Match": 'W/"3"'}).status_code == 204
    assert app.client.get(url, headers=auth).status_code == 404


# Authorization


def test_no_token_is_401_with_challenge(app: ScimHarness) -> None:
    for method, path in (("GET", "/scim/v2/Users"), ("POST", "/scim/v2/Users"),
                         ("GET", "/scim/v2/Groups/x"), ("DELETE", "/scim/v2/Users/x")):
        response = app.client.request(method, path)
        assert_error(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_bad_and_expired_tokens_are_401(app: ScimHarness) -> None:
    expired = app.token("scim:write", lifetime=-10)
    for token in ("tk_unknown", "not-a-token", expired):
        response = app.client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {token}"})
        assert_error(response, 401)
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_scopes(app: ScimHarness) -> None:
    reader = app.auth("scim:read")
    assert app.client.get("/scim/v2/Users", headers=reader).status_code == 200
    response = app.client.post("/scim/v2/Users", headers=reader, json={"userName": "x"})
    assert_error(response, 403)
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    other = app.auth("openid profile")
    assert_error(app.client.get("/scim/v2/Users", headers=other), 403)
    writer = app.auth("scim:write")
    assert app.client.get("/scim/v2/Groups", headers=writer).status_code == 200


def test_discovery_is_public_and_matches_what_is_served(app: ScimHarness) -> None:
    config = app.client.get("/scim/v2/ServiceProviderConfig").json()
    assert config["patch"]["supported"] and config["etag"]["supported"]
    assert config["filter"] == {"supported": True, "maxResults": 200}
    assert config["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    types = app.client.get("/scim/v2/ResourceTypes").json()
    assert {r["name"] for r in types["Resources"]} == {"User", "Group"}
    assert app.client.get("/scim/v2/ResourceTypes/Group").json()["endpoint"] == "/Groups"
    schemas = app.client.get("/scim/v2/Schemas").json()["Resources"]
    user_schema = next(s for s in schemas if s["id"] == USER_SCHEMA)
    attributes = {a["name"]: a for a in user_schema["attributes"]}
    assert set(attributes) == {"userName", "name", "displayName", "emails", "active",
                               "password", "groups", "nickName", "profileUrl", "title",
                               "userType", "preferredLanguage", "locale", "timezone",
                               "phoneNumbers", "addresses", "photos", "x509Certificates"}
    assert attributes["password"]["returned"] == "never"
    assert attributes["groups"]["mutability"] == "readOnly"
    assert attributes["userName"]["uniqueness"] == "server"
    assert attributes["userName"]["caseExact"] is False
    one = app.client.get(f"/scim/v2/Schemas/{GROUP_SCHEMA}").json()
    assert one["id"] == GROUP_SCHEMA
    assert_error(app.client.get("/scim/v2/Schemas/urn:nope"), 404)
    assert_error(app.client.get("/scim/v2/ResourceTypes/Nope"), 404)


# Deactivation and deletion revoke tokens


def test_deactivation_and_deletion_revoke_the_users_tokens(app: ScimHarness,
                                                          auth: dict[str, str]) -> None:
    user = create_user(app, auth)
    token = app.token("openid", sub=user["id"])
    assert app.token_active(token)
    response = app.client.patch(f"/scim/v2/Users/{user['id']}", headers=auth, json={
        "schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "active",
                                               "value": "False"}]})
    assert response.status_code == 200 and response.json()["active"] is False
    assert not app.token_active(token)

    other = create_user(app, auth, "other")
    other_token = app.token("openid", sub=other["id"])
    assert app.client.delete(f"/scim/v2/Users/{other['id']}", headers=auth).status_code == 204
    assert not app.token_active(other_token)


# Entra ID request shapes (verbatim from its provisioning service)


def test_entra_user_provisioning_flow(app: ScimHarness, auth: dict[str, str]) -> None:
    # 1. Entra first looks the user up by its matching attribute.
    probe = app.client.get("/scim/v2/Users", headers=auth,
                           params={"filter": 'userName eq "Test_User_ab6490ee@contoso.com"'})
    assert probe.status_code == 200 and probe.json()["totalResults"] == 0
    # 2. Then creates it.
    created = app.client.post("/scim/v2/Users", headers=auth, json={
        "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee@contoso.com",
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": "Test_User_fd0ea19b@contoso.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName",
                 "givenName": "givenName"},
        "roles": [],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"},
    })
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    found = app.client.get("/scim/v2/Users", headers=auth,
                           params={"filter": 'userName eq "test_user_ab6490ee@contoso.com"'})
    assert found.json()["totalResults"] == 1
    by_external = app.client.get("/scim/v2/Users", headers=auth, params={
        "filter": 'externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"'})
    assert by_external.json()["Resources"][0]["id"] == user_id
    # 3. Updates come as PATCH with capitalised ops and string booleans.
    patched = app.client.patch(f"/scim/v2/Users/{user_id}", headers=auth, json={
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "Replace", "path": "emails[type eq \"work\"].value",
             "value": "updatedEmail@microsoft.com"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
            {"op": "Add", "path": "displayName", "value": "Updated Name"},
            {"op": "Replace", "path": "active", "value": "False"},
        ],
    })
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["emails"] == [{"value": "updatedEmail@microsoft.com", "type": "work",
                               "primary": True}]
    assert body["name"]["familyName"] == "updatedFamilyName"
    assert body["displayName"] == "Updated Name"
    assert body["active"] is False
    # 4. An attribute we do not serve, named by path, is an invalidPath error.
    unknown = app.client.patch(f"/scim/v2/Users/{user_id}", headers=auth, json={
        "schemas": [PATCH_OP], "Operations": [{"op": "Add", "path": "roles", "value": "CEO"}]})
    assert_error(unknown, 400, "invalidPath")
    # 5. Finally Entra deletes (or soft-deletes with active=false, as above).
    assert app.client.delete(f"/scim/v2/Users/{user_id}", headers=auth).status_code == 204


def test_entra_group_provisioning_flow(app: ScimHarness, auth: dict[str, str]) -> None:
    alice = create_user(app, auth, "alice")["id"]
    bob = create_user(app, auth, "bob")["id"]
    probe = app.client.get("/scim/v2/Groups", headers=auth, params={
        "filter": 'displayName eq "Group1DisplayName"', "excludedAttributes": "members"})
    assert probe.json()["totalResults"] == 0
    created = app.client.post("/scim/v2/Groups", headers=auth, json={
        "schemas": [GROUP_SCHEMA], "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "Group1DisplayName", "meta": {"resourceType": "Group"}})
    assert created.status_code == 201
    group_id = created.json()["id"]
    added = app.client.patch(f"/scim/v2/Groups/{group_id}", headers=auth, json={
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Add", "path": "members",
                        "value": [{"value": alice}, {"value": bob}]}]})
    assert added.status_code == 200, added.text
    assert sorted(m["value"] for m in added.json()["members"]) == sorted([alice, bob])
    # Entra checks membership with a filter on the group.
    check = app.client.get("/scim/v2/Groups", headers=auth, params={
        "filter": f'id eq "{group_id}" and members eq "{alice}"',
        "excludedAttributes": "members"})
    assert check.json()["totalResults"] == 1
    assert "members" not in check.json()["Resources"][0]
    removed = app.client.patch(f"/scim/v2/Groups/{group_id}", headers=auth, json={
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Remove", "path": f'members[value eq "{alice}"]'}]})
    assert [m["value"] for m in removed.json()["members"]] == [bob]
    removed = app.client.patch(f"/scim/v2/Groups/{group_id}", headers=auth, json={
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Remove", "path": "members", "value": [{"value": bob}]}]})
    assert "members" not in removed.json() or removed.json()["members"] == []
    renamed = app.client.patch(f"/scim/v2/Groups/{group_id}", headers=auth, json={
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Replace", "path": "displayName", "value": "1879db59-3bdf"}]})
    assert renamed.json()["displayName"] == "1879db59-3bdf"


# Okta request shapes


def test_okta_user_provisioning_flow(app: ScimHarness, auth: dict[str, str]) -> None:
    probe = app.client.get("/scim/v2/Users", headers=auth, params={
        "filter": 'userName eq "test.user@okta.local"', "startIndex": "1", "count": "100"})
    assert probe.json()["totalResults"] == 0
    created = app.client.post("/scim/v2/Users", headers=auth, json={
        "schemas": [USER_SCHEMA], "userName": "test.user@okta.local",
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Test User", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [], "password": "1mz050nq", "active": True})
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    replaced = app.client.put(f"/scim/v2/Users/{user_id}", headers=auth, json={
        "schemas": [USER_SCHEMA], "id": user_id, "userName": "test.user@okta.local",
        "name": {"givenName": "Another", "familyName": "User"},
        "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Another User", "active": True, "groups": [],
        "meta": {"resourceType": "User"}})
    assert replaced.status_code == 200 and replaced.json()["name"]["givenName"] == "Another"
    deactivated = app.client.patch(f"/scim/v2/Users/{user_id}", headers=auth, json={
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]})
    assert deactivated.status_code == 200 and deactivated.json()["active"] is False
    password = app.client.patch(f"/scim/v2/Users/{user_id}", headers=auth, json={
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "value": {"password": "n3w-Passw0rd"}}]})
    assert password.status_code == 200 and "password" not in password.json()


def test_okta_group_push(app: ScimHarness, auth: dict[str, str]) -> None:
    user_id = create_user(app, auth, "member@okta.local")["id"]
    created = app.client.post("/scim/v2/Groups", headers=auth, json={
        "schemas": [GROUP_SCHEMA], "displayName": "Test SCIMv2", "members": []})
    group_id = created.json()["id"]
    response = app.client.patch(f"/scim/v2/Groups/{group_id}", headers=auth, json={
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "replace", "value": {"id": group_id, "displayName": "Test SCIMv2 renamed"}},
            {"op": "add", "path": "members",
             "value": [{"value": user_id, "display": "member@okta.local"}]},
        ]})
    assert response.status_code == 200, response.text
    assert response.json()["displayName"] == "Test SCIMv2 renamed"
    # members.display is returned "request" (docs/scim.md, Projection): the group reads back
    # as written, and the display comes when asked for.
    assert response.json()["members"] == [
        {"value": user_id, "$ref": f"{SCIM_URL}/Users/{user_id}", "type": "User"}]
    asked = app.client.get(f"/scim/v2/Groups/{group_id}?attributes=members.display",
                           headers=auth)
    assert asked.json()["members"] == [{"display": "member@okta.local"}]
    response = app.client.put(f"/scim/v2/Groups/{group_id}", headers=auth, json={
        "schemas": [GROUP_SCHEMA], "id": group_id, "displayName": "Test SCIMv2 renamed",
        "members": []})
    assert response.status_code == 200 and response.json()["members"] == []


def test_patch_errors(app: ScimHarness, auth: dict[str, str]) -> None:
    user = create_user(app, auth)
    url = f"/scim/v2/Users/{user['id']}"

    def send(*operations: dict[str, Any]) -> Any:
        return app.client.patch(url, headers=auth,
                                json={"schemas": [PATCH_OP], "Operations": list(operations)})

    assert_error(send({"op": "jump", "path": "x"}), 400, "invalidSyntax")
    assert_error(send({"op": "add", "path": "emails[type eq", "value": "x"}), 400, "invalidPath")
    assert_error(send({"op": "replace", "path": "active", "value": "maybe"}), 400,
                 "invalidValue")
    assert_error(send({"op": "replace", "path": "id", "value": "x"}), 400, "mutability")
    assert_error(send({"op": "remove"}), 400, "noTarget")
    assert_error(app.client.patch(url, headers=auth, json={"Operations": []}), 400,
                 "invalidSyntax")


# Store failures


class BrokenStore(MemoryStore):
    async def list_users(self, query: ListQuery) -> Any:
        raise StoreUnavailable("connection refused by asyncpg")


def test_store_unavailable_is_503_scim_error() -> None:
    from litestar.testing import TestClient

    from entrypoints.app import create_app
    from entrypoints.settings import load_settings

    store = BrokenStore()
    app = create_app(load_settings({
        "CLIENT_CREDENTIALS": f"{PROVISIONER}:{PROVISIONER_SECRET}"}), store=store)
    with TestClient(app=app) as client:
        harness = ScimHarness(client, app)
        response = client.get("/scim/v2/Users", headers=harness.auth("scim:read"))
        body = assert_error(response, 503)
        assert "asyncpg" not in body["detail"]


# Passwords: the policy, and revocation when one changes or is cleared


def test_a_password_the_policy_refuses_is_400_invalid_value(
    app: ScimHarness, auth: dict[str, str]
) -> None:
    short = app.client.post("/scim/v2/Users", headers=auth, json={
        "schemas": [USER_SCHEMA], "userName": "bjensen", "password": "7 chars"})
    assert "at least 8 characters" in assert_error(short, 400, "invalidValue")["detail"]
    user = create_user(app, auth, password="long-enough")
    for response in (
        app.client.put(f"/scim/v2/Users/{user['id']}", headers=auth, json={
            "schemas": [USER_SCHEMA], "userName": "bjensen", "password": "short"}),
        app.client.patch(f"/scim/v2/Users/{user['id']}", headers=auth, json={
            "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "password",
                                                   "value": "short"}]}),
        app.client.patch(f"/scim/v2/Users/{user['id']}", headers=auth, json={
            "schemas": [PATCH_OP], "Operations": [{"op": "replace",
                                                   "value": {"password": "x" * 1025}}]}),
    ):
        assert_error(response, 400, "invalidValue")
    credentials = app.call(app.store.get_credentials, user["id"])
    hasher = app.app.state.services.password_hasher
    assert app.call(hasher.verify, credentials.password_hash, "long-enough")  # unchanged


@pytest.mark.parametrize("backend", BACKENDS)
def test_password_min_length_is_configurable(backend: str) -> None:
    with scim_app(backend, PASSWORD_MIN_LENGTH="12") as app:
        auth = app.auth()
        refused = app.client.post("/scim/v2/Users", headers=auth, json={
            "userName": "bjensen", "password": "eleven char"})
        assert "at least 12" in assert_error(refused, 400, "invalidValue")["detail"]
        accepted = app.client.post("/scim/v2/Users", headers=auth, json={
            "userName": "bjensen", "password": "twelve chars"})
        assert accepted.status_code == 201, accepted.text


def test_changing_or_clearing_the_password_revokes_the_users_tokens(
    app: ScimHarness, auth: dict[str, str]
) -> None:
    user = create_user(app, auth, password="first-password")
    bystander = create_user(app, auth, "other", password="other-password")
    theirs = app.token("openid", sub=bystander["id"])
    for operation in ({"op": "replace", "path": "password", "value": "second-password"},
                      {"op": "replace", "value": {"password": "third-password"}},
                      {"op": "remove", "path": "password"}):
        token = app.token("openid offline_access", sub=user["id"])
        response = app.client.patch(f"/scim/v2/Users/{user['id']}", headers=auth, json={
            "schemas": [PATCH_OP], "Operations": [operation]})
        assert response.status_code == 200, response.text
        assert not app.token_active(token), operation
    assert app.call(app.store.get_credentials, user["id"]).password_hash is None
    token = app.token("openid", sub=user["id"])
    replaced = app.client.put(f"/scim/v2/Users/{user['id']}", headers=auth, json={
        "schemas": [USER_SCHEMA], "userName": "bjensen", "password": "fourth-password"})
    assert replaced.status_code == 200
    assert not app.token_active(token)
    assert app.token_active(theirs)


# Caching


def test_every_scim_response_says_no_store(app: ScimHarness, auth: dict[str, str]) -> None:
    created = app.client.post("/scim/v2/Users", headers=auth, json={"userName": "bjensen"})
    user_url = f"/scim/v2/Users/{created.json()['id']}"
    etag = created.headers["etag"]
    responses = {
        "create": created,
        "read": app.client.get(user_url, headers=auth),
        "not modified": app.client.get(user_url, headers={**auth, "If-None-Match": etag}),
        "list": app.client.get("/scim/v2/Users", headers=auth),
        "patch": app.client.patch(user_url, headers=auth, json={
            "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName",
                                                   "value": "B"}]}),
        "group": app.client.post("/scim/v2/Groups", headers=auth, json={"displayName": "g"}),
        "groups": app.client.get("/scim/v2/Groups", headers=auth),
        "discovery": app.client.get("/scim/v2/ServiceProviderConfig"),
        "schemas": app.client.get("/scim/v2/Schemas"),
        "bad filter": app.client.get("/scim/v2/Users", headers=auth,
                                     params={"filter": "nope"}),
        "unknown": app.client.get("/scim/v2/Users/nobody", headers=auth),
        "no token": app.client.get("/scim/v2/Users"),
        "delete": app.client.delete(user_url, headers=auth),
    }
    statuses = {name: response.status_code for name, response in responses.items()}
    assert statuses["not modified"] == 304 and statuses["delete"] == 204, statuses
    for name, response in responses.items():
        assert response.headers.get("cache-control") == "no-store", (name, response.headers)

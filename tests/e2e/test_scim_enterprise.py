"""The enterprise User extension and the other core User attributes over HTTP, with the
request shapes Entra ID and Okta send (from their SCIM provisioning documentation), on
each backend; and big groups (reads without members, one-member changes, member paging)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from domain.entities import Group, Member, User
from tests.e2e.scim_support import BACKENDS, SCIM_URL, ScimHarness, scim_app

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest) -> Iterator[ScimHarness]:
    with scim_app(request.param) as running:
        yield running


@pytest.fixture
def auth(app: ScimHarness) -> dict[str, str]:
    return app.auth("scim:write")


def _created(app: ScimHarness, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = app.client.post("/scim/v2/Users", headers=auth, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _ids(app: ScimHarness, auth: dict[str, str], text: str) -> list[str]:
    response = app.client.get("/scim/v2/Users", headers=auth, params={"filter": text})
    assert response.status_code == 200, response.text
    return [resource["id"] for resource in response.json()["Resources"]]


def _patch(app: ScimHarness, auth: dict[str, str], path: str,
           operations: list[dict[str, Any]], **params: str) -> dict[str, Any]:
    response = app.client.patch(path, headers=auth, params=params,
                                json={"schemas": [PATCH_OP], "Operations": operations})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# Discovery


def test_discovery_publishes_the_extension_and_the_new_attributes(app: ScimHarness) -> None:
    schemas = app.client.get("/scim/v2/Schemas").json()
    by_id = {schema["id"]: schema for schema in schemas["Resources"]}
    assert set(by_id) == {USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE}
    assert schemas["totalResults"] == 3
    enterprise = app.client.get(f"/scim/v2/Schemas/{ENTERPRISE}").json()
    names = [a["name"] for a in enterprise["attributes"]]
    assert names == ["employeeNumber", "costCenter", "organization", "division", "department",
                     "manager"]
    manager = next(a for a in enterprise["attributes"] if a["name"] == "manager")
    assert {s["name"]: s["mutability"] for s in manager["subAttributes"]} == {
        "value": "readWrite", "$ref": "readWrite", "displayName": "readOnly"}
    user = {a["name"]: a for a in by_id[USER_SCHEMA]["attributes"]}
    for name in ("nickName", "profileUrl", "title", "userType", "preferredLanguage", "locale",
                 "timezone", "phoneNumbers", "addresses", "photos", "x509Certificates"):
        assert name in user, name
    assert user["x509Certificates"]["subAttributes"][0]["type"] == "binary"
    assert [s["name"] for s in user["addresses"]["subAttributes"]][:6] == [
        "formatted", "streetAddress", "locality", "region", "postalCode", "country"]
    resource_type = app.client.get("/scim/v2/ResourceTypes/User").json()
    assert resource_type["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    group_type = app.client.get("/scim/v2/ResourceTypes/Group").json()
    assert group_type["schemaExtensions"] == []


# Entra ID


def _entra_user(manager_id: str) -> dict[str, Any]:
    """A create as Entra ID sends it with its default attribute mappings."""
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@contoso.com",
        "active": True,
        "addresses": [{
            "primary": True, "type": "work", "country": "US", "locality": "Redmond",
            "postalCode": "98052", "region": "WA",
            "streetAddress": "1 Microsoft Way", "formatted": "1 Microsoft Way Redmond WA",
        }],
        "displayName": "Test User",
        "emails": [{"primary": True, "type": "work",
                    "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName",
                 "givenName": "givenName"},
        "phoneNumbers": [{"type": "work", "value": "+1 425 555 0100"},
                         {"type": "mobile", "value": "+1 425 555 0101"},
                         {"type": "fax", "value": "+1 425 555 0102"}],
        "preferredLanguage": "en-US",
        "title": "Program Manager",
        "roles": [],
        ENTERPRISE: {"employeeNumber": "701984", "department": "Identity",
                     "manager": {"value": manager_id}},
    }


def test_entra_create_stores_every_mapped_attribute(app: ScimHarness,
                                                    auth: dict[str, str]) -> None:
    boss = _created(app, auth, {"schemas": [USER_SCHEMA], "userName": "boss@contoso.com",
                                "displayName": "The Boss"})
    created = _created(app, auth, _entra_user(boss["id"]))
    read = app.client.get(f"/scim/v2/Users/{created['id']}", headers=auth).json()
    assert read == created
    assert read["schemas"] == [USER_SCHEMA, ENTERPRISE]
    assert read["title"] == "Program Manager" and read["preferredLanguage"] == "en-US"
    assert read["addresses"] == [{
        "formatted": "1 Microsoft Way Redmond WA", "streetAddress": "1 Microsoft Way",
        "locality": "Redmond", "region": "WA", "postalCode": "98052", "country": "US",
        "type": "work", "primary": True}]
    assert [p["type"] for p in read["phoneNumbers"]] == ["work", "mobile", "fax"]
    assert read[ENTERPRISE] == {
        "employeeNumber": "701984", "department": "Identity",
        "manager": {"value": boss["id"], "$ref": f"{SCIM_URL}/Users/{boss['id']}",
                    "displayName": "The Boss"}}
    assert "roles" not in read


def test_entra_patches_of_the_new_attributes(app: ScimHarness, auth: dict[str, str]) -> None:
    boss = _created(app, auth, {"schemas": [USER_SCHEMA], "userName": "boss@contoso.com",
                                "displayName": "The Boss"})
    other = _created(app, auth, {"schemas": [USER_SCHEMA], "userName": "other@contoso.com"})
    user = _created(app, auth, {"schemas": [USER_SCHEMA], "userName": "u@contoso.com"})
    path = f"/scim/v2/Users/{user['id']}"
    # Entra's paths: the extension by URN, a manager as a bare id, value-filtered
    # sub-attributes of values that do not exist yet, capitalised ops.
    body = _patch(app, auth, path, [
        {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Identity"},
        {"op": "Add", "path": f"{ENTERPRISE}:employeeNumber", "value": "701984"},
        {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": boss["id"]},
        {"op": "Add", "path": "title", "value": "Program Manager"},
        {"op": "Replace", "path": 'addresses[type eq "work"].streetAddress',
         "value": "1 Microsoft Way"},
        {"op": "Replace", "path": 'addresses[type eq "work"].locality', "value": "Redmond"},
        {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 425 555 0101"},
        {"op": "Replace", "path": "userType", "value": "Member"},
    ])
    assert body["schemas"] == [USER_SCHEMA, ENTERPRISE]
    assert body[ENTERPRISE] == {
        "employeeNumber": "701984", "department": "Identity",
        "manager": {"value": boss["id"], "$ref": f"{SCIM_URL}/Users/{boss['id']}",
                    "displayName": "The Boss"}}
    assert body["addresses"] == [{"streetAddress": "1 Microsoft Way", "locality": "Redmond",
                                  "type": "work", "primary": False}]
    assert body["phoneNumbers"] == [{"value": "+1 425 555 0101", "type": "mobile",
                                     "primary": False}]
    assert (body["title"], body["userType"]) == ("Program Manager", "Member")
    # The path-less form with URN-prefixed keys, and a manager given as an object.
    body = _patch(app, auth, path, [{"op": "replace", "value": {
        f"{ENTERPRISE}:department": "Security", "title": "Director",
        f"{ENTERPRISE}:manager": {"value": other["id"]}}}])
    assert body[ENTERPRISE]["department"] == "Security" and body["title"] == "Director"
    assert body[ENTERPRISE]["manager"] == {"value": other["id"],
                                           "$ref": f"{SCIM_URL}/Users/{other['id']}"}
    # A read-only sub-attribute by path is a mutability error.
    response = app.client.patch(path, headers=auth, json={"schemas": [PATCH_OP], "Operations": [
        {"op": "Replace", "path": f"{ENTERPRISE}:manager.displayName", "value": "x"}]})
    assert response.status_code == 400 and response.json()["scimType"] == "mutability"
    # Removing the manager and the department, then the whole address.
    body = _patch(app, auth, path, [
        {"op": "Remove", "path": f"{ENTERPRISE}:manager"},
        {"op": "Remove", "path": f"{ENTERPRISE}:department"},
        {"op": "Remove", "path": 'addresses[type eq "work"]'},
    ])
    assert body[ENTERPRISE] == {"employeeNumber": "701984"}
    assert "addresses" not in body
    # Removing the last extension attribute drops the extension from the resource.
    body = _patch(app, auth, path, [{"op": "Remove", "path": ENTERPRISE}])
    assert ENTERPRISE not in body and body["schemas"] == [USER_SCHEMA]
    again = app.client.get(path, headers=auth).json()
    assert again == body


def test_an_unchanged_patch_keeps_the_version(app: ScimHarness, auth: dict[str, str]) -> None:
    boss = _created(app, auth, {"schemas": [USER_SCHEMA], "userName": "boss",
                                "displayName": "Boss"})
    user = _created(app, auth, {"schemas": [USER_SCHEMA, ENTERPRISE], "userName": "u",
                                ENTERPRISE: {"manager": {"value": boss["id"]}}})
    body = _patch(app, auth, f"/scim/v2/Users/{user['id']}", [
        {"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": boss["id"]}])
    assert body["meta"]["version"] == user["meta"]["version"]


# Okta


def test_okta_create_and_put_with_the_enterprise_extension(app: ScimHarness,
                                                           auth: dict[str, str]) -> None:
    # Okta's SCIM 2.0 create, with the enterprise attributes of its profile mappings.
    created = _created(app, auth, {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": "test.user@okta.local",
        "name": {"givenName": "Test", "familyName": "User", "middleName": "Q",
                 "honorificPrefix": "Dr."},
        "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Test User",
        "nickName": "Tess",
        "profileUrl": "https://okta.local/profile/test.user",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "userType": "Employee",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq-long-enough",
        "active": True,
        "photos": [{"value": "https://okta.local/photo.jpg", "type": "photo"}],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjEL"}],
        ENTERPRISE: {"employeeNumber": "42", "costCenter": "CC-7", "organization": "Okta",
                     "division": "R&D", "department": "Engineering",
                     "manager": {"value": "00umanager", "displayName": "Ignored"}},
    })
    assert created["name"] == {"givenName": "Test", "familyName": "User", "middleName": "Q",
                               "honorificPrefix": "Dr."}
    assert created["photos"] == [{"value": "https://okta.local/photo.jpg", "type": "photo",
                                   "primary": False}]
    assert created["x509Certificates"][0]["value"].startswith("MIIDQz")
    # A manager that is no user of ours is kept; it has no displayName to show.
    assert created[ENTERPRISE]["manager"] == {"value": "00umanager",
                                              "$ref": f"{SCIM_URL}/Users/00umanager"}
    assert "password" not in created
    # Okta updates by PUT, with the whole profile: what it leaves out is dropped.
    replaced = app.client.put(f"/scim/v2/Users/{created['id']}", headers=auth, json={
        "schemas": [USER_SCHEMA, ENTERPRISE], "id": created["id"],
        "userName": "test.user@okta.local", "active": True, "title": "Staff Engineer",
        ENTERPRISE: {"department": "Platform"},
    })
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body[ENTERPRISE] == {"department": "Platform"}
    assert body["title"] == "Staff Engineer"
    assert "nickName" not in body and "photos" not in body
    # Okta deactivates with a path-less PATCH; the extension stays.
    body = _patch(app, auth, f"/scim/v2/Users/{created['id']}",
                  [{"op": "replace", "value": {"active": False}}])
    assert body["active"] is False and body[ENTERPRISE] == {"department": "Platform"}


def test_bad_values_of_the_new_attributes_are_400(app: ScimHarness,
                                                  auth: dict[str, str]) -> None:
    for extra in ({"title": 5}, {"phoneNumbers": "555"}, {"addresses": [{"primary": "yes"}]},
                  {"phoneNumbers": [{"value": "1", "primary": True},
                                    {"value": "2", "primary": True}]},
                  {ENTERPRISE: "Engineering"}, {ENTERPRISE: {"manager": 7}},
                  {"timezone": "Europe/Paris\u0000"}):
        response = app.client.post("/scim/v2/Users", headers=auth,
                                   json={"schemas": [USER_SCHEMA], "userName": "x", **extra})
        assert response.status_code == 400, (extra, response.text)
        assert response.json()["scimType"] == "invalidValue"


# Filters


def test_filters_on_the_new_attributes(app: ScimHarness, auth: dict[str, str]) -> None:
    boss = _created(app, auth, {"schemas": [USER_SCHEMA], "userName": "boss"})
    entra = _created(app, auth, _entra_user(boss["id"]))["id"]
    okta = _created(app, auth, {
        "schemas": [USER_SCHEMA, ENTERPRISE], "userName": "okta", "userType": "Contractor",
        "addresses": [{"type": "home", "locality": "Paris", "country": "FR"}],
        ENTERPRISE: {"employeeNumber": "EMP-2", "department": "identity"}})["id"]
    assert _ids(app, auth, f'{ENTERPRISE}:employeeNumber eq "701984"') == [entra]
    assert sorted(_ids(app, auth, f'{ENTERPRISE}:department eq "IDENTITY"')) == sorted(
        [entra, okta])
    assert _ids(app, auth, 'employeeNumber sw "emp"') == [okta]
    assert _ids(app, auth, f'{ENTERPRISE}:manager.value eq "{boss["id"]}"') == [entra]
    assert _ids(app, auth, 'title eq "program manager"') == [entra]
    assert _ids(app, auth, 'userType eq "contractor"') == [okta]
    assert _ids(app, auth, 'phoneNumbers[type eq "mobile" and value eq "+1 425 555 0101"]') \
        == [entra]
    assert _ids(app, auth, 'phoneNumbers.value co "0102"') == [entra]
    assert _ids(app, auth, 'addresses[type eq "work" and locality eq "redmond"]') == [entra]
    assert _ids(app, auth, 'addresses.country eq "fr"') == [okta]
    assert _ids(app, auth, 'addresses.postalCode pr') == [entra]
    assert _ids(app, auth, 'preferredLanguage eq "en-us" and not (title eq "x")') == [entra]
    for bad in ('profileUrl eq "x"', f'{ENTERPRISE}:manager.displayName eq "x"',
                'x509Certificates.value eq "x"', f'{ENTERPRISE}:badge eq "x"'):
        response = app.client.get("/scim/v2/Users", headers=auth, params={"filter": bad})
        assert response.status_code == 400, bad
        assert response.json()["scimType"] == "invalidFilter"


# Big groups


MEMBERS = 3000


def _big_group(app: ScimHarness) -> tuple[str, list[str]]:
    ids = [f"user-{n:05d}" for n in range(MEMBERS + 1)]

    async def load() -> str:
        for user_id in ids:
            await app.store.create_user(User(id=user_id, user_name=user_id))
        group = await app.store.create_group(Group(
            display_name="everyone", members=tuple(Member(value=i) for i in ids[:MEMBERS])))
        return group.id

    return app.call(load), ids


def test_big_group_reads_without_members_and_changes_one_member(
    app: ScimHarness, auth: dict[str, str]
) -> None:
    group_id, ids = _big_group(app)
    path = f"/scim/v2/Groups/{group_id}"
    bare = app.client.get(path, headers=auth, params={"excludedAttributes": "members"})
    assert bare.status_code == 200
    assert "members" not in bare.json() and bare.json()["displayName"] == "everyone"
    listed = app.client.get("/scim/v2/Groups", headers=auth, params={
        "filter": 'displayName eq "everyone"', "excludedAttributes": "members"}).json()
    assert listed["totalResults"] == 1 and "members" not in listed["Resources"][0]
    only_name = app.client.get(path, headers=auth, params={"attributes": "displayName"}).json()
    assert "members" not in only_name
    # One member added and removed (Entra's and Okta's shapes); the answer has no members.
    added = _patch(app, auth, path, [{"op": "Add", "path": "members",
                                      "value": [{"value": ids[MEMBERS]}]}],
                   excludedAttributes="members")
    assert "members" not in added
    assert added["meta"]["version"] != bare.json()["meta"]["version"]
    full = app.client.get(path, headers=auth).json()
    assert len(full["members"]) == MEMBERS + 1
    # members.display is returned on request only (docs/scim.md, "Projection").
    assert full["members"][-1] == {"value": ids[MEMBERS],
                                   "$ref": f"{SCIM_URL}/Users/{ids[MEMBERS]}", "type": "User"}
    removed = _patch(app, auth, path, [{"op": "remove",
                                        "path": f'members[value eq "{ids[0]}"]'}])
    assert len(removed["members"]) == MEMBERS  # without excludedAttributes: all of them
    assert removed["members"][0]["value"] == ids[1]
    # An unknown user is refused and changes nothing.
    response = app.client.patch(path, headers=auth, json={"schemas": [PATCH_OP], "Operations": [
        {"op": "Add", "path": "members", "value": [{"value": "no-such-user"}]}]})
    assert response.status_code == 400 and response.json()["scimType"] == "invalidValue"
    # A stale If-Match is 412.
    stale = app.client.patch(path, headers={**auth, "If-Match": bare.json()["meta"]["version"]},
                             json={"schemas": [PATCH_OP], "Operations": [
                                 {"op": "Add", "path": "members", "value": [{"value": ids[0]}]}]})
    assert stale.status_code == 412


def test_big_group_members_are_paged_through_the_users_filter(
    app: ScimHarness, auth: dict[str, str]
) -> None:
    group_id, ids = _big_group(app)
    seen: list[str] = []
    start = 1
    while True:
        page = app.client.get("/scim/v2/Users", headers=auth, params={
            "filter": f'groups.value eq "{group_id}"', "startIndex": start, "count": 200,
            "attributes": "userName"}).json()
        assert page["totalResults"] == MEMBERS
        seen += [resource["id"] for resource in page["Resources"]]
        if not page["Resources"]:
            break
        start += len(page["Resources"])
    assert seen == ids[:MEMBERS]

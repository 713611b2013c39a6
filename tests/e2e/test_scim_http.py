"""SCIM over HTTP beyond CRUD, on each backend: every answer a SCIM answer (unknown paths,
methods and media types), search over POST, sorting, projection (``attributes``,
``excludedAttributes`` and ``returned``), and a PATCH ``remove`` of ``active``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.scim_support import BACKENDS, SCIM_JSON, SCIM_URL, ScimHarness, scim_app
from tests.e2e.test_scim_api import GROUP_SCHEMA, PATCH_OP, USER_SCHEMA, assert_error

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest) -> Iterator[ScimHarness]:
    with scim_app(request.param) as running:
        yield running


@pytest.fixture
def auth(app: ScimHarness) -> dict[str, str]:
    return app.auth("scim:write")


def user(app: ScimHarness, auth: dict[str, str], name: str, **extra: Any) -> dict[str, Any]:
    response = app.client.post("/scim/v2/Users", headers=auth,
                               json={"schemas": [USER_SCHEMA], "userName": name, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def group(app: ScimHarness, auth: dict[str, str], name: str, *members: str) -> dict[str, Any]:
    response = app.client.post("/scim/v2/Groups", headers=auth, json={
        "schemas": [GROUP_SCHEMA], "displayName": name,
        "members": [{"value": m} for m in members]})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def names(response: Any, key: str = "userName") -> list[str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(SCIM_JSON)
    return [r.get(key) for r in response.json()["Resources"]]


# Every answer is a SCIM answer


@pytest.mark.parametrize("method, path", [
    ("GET", "/scim/v2/Nope"), ("GET", "/scim/v2"), ("POST", "/scim/v2/Users/x/y"),
    ("DELETE", "/scim/v2/Groups/a/members"), ("GET", "/scim/v2/Users/.search/x"),
])
def test_unknown_paths_are_404_scim_errors(app: ScimHarness, auth: dict[str, str],
                                           method: str, path: str) -> None:
    assert_error(app.client.request(method, path, headers=auth), 404)


@pytest.mark.parametrize("method, path", [
    ("DELETE", "/scim/v2/Users"), ("PUT", "/scim/v2/Groups"),
    ("POST", "/scim/v2/ServiceProviderConfig"), ("GET", "/scim/v2/Users/.search"),
    ("GET", "/scim/v2/.search"), ("POST", "/scim/v2/Users/some-id"),
])
def test_unknown_methods_are_405_scim_errors(app: ScimHarness, auth: dict[str, str],
                                             method: str, path: str) -> None:
    assert_error(app.client.request(method, path, headers=auth), 405)


def test_media_types_are_415_and_406_scim_errors(app: ScimHarness,
                                                 auth: dict[str, str]) -> None:
    for path in ("/scim/v2/Users", "/scim/v2/Users/.search", "/scim/v2/.search"):
        response = app.client.post(path, headers={**auth, "Content-Type": "text/xml"},
                                   content=b"<x/>")
        assert_error(response, 415)
    for accept in ("text/html", "application/xml", "application/scim+json;q=0"):
        response = app.client.get("/scim/v2/Users", headers={**auth, "Accept": accept})
        assert_error(response, 406)
    assert_error(app.client.get("/scim/v2/ServiceProviderConfig",
                                headers={"Accept": "text/html"}), 406)
    for accept in ("application/scim+json", "application/json", "*/*",
                   "text/html, application/*;q=0.5"):
        response = app.client.get("/scim/v2/Users", headers={**auth, "Accept": accept})
        assert response.status_code == 200, accept
        assert response.headers["content-type"].startswith(SCIM_JSON)


def test_every_body_is_scim_json(app: ScimHarness, auth: dict[str, str]) -> None:
    created = user(app, auth, "bjensen")
    responses = [
        app.client.get("/scim/v2/Users", headers=auth),
        app.client.get(f"/scim/v2/Users/{created['id']}", headers=auth),
        app.client.post("/scim/v2/Users/.search", headers=auth, json={"schemas": [SEARCH]}),
        app.client.post("/scim/v2/.search", headers=auth, json={"schemas": [SEARCH]}),
        app.client.get("/scim/v2/Schemas"),
        app.client.get("/scim/v2/Nope"),
        app.client.get("/scim/v2/Users"),
    ]
    for response in responses:
        assert response.content and response.headers["content-type"].startswith(SCIM_JSON)


# Search over POST


def test_post_search_is_the_get_list(app: ScimHarness, auth: dict[str, str]) -> None:
    for name in ("carol", "Alice", "bob", "dave"):
        user(app, auth, name, active=name != "dave")
    get = app.client.get("/scim/v2/Users", headers=auth, params={
        "filter": "active eq true", "sortBy": "userName", "sortOrder": "descending",
        "startIndex": "2", "count": "2", "attributes": "userName"})
    post = app.client.post("/scim/v2/Users/.search", headers=auth, json={
        "schemas": [SEARCH], "filter": "active eq true", "sortBy": "userName",
        "sortOrder": "descending", "startIndex": 2, "count": 2, "attributes": ["userName"]})
    assert post.status_code == 200 and post.json() == get.json()
    assert names(post) == ["bob", "Alice"]
    assert post.json()["totalResults"] == 3 and post.json()["startIndex"] == 2
    assert set(post.json()["Resources"][0]) == {"id", "schemas", "userName"}


def test_post_search_on_groups(app: ScimHarness, auth: dict[str, str]) -> None:
    member = user(app, auth, "m")["id"]
    for name in ("Beta", "alpha", "Gamma"):
        group(app, auth, name, member)
    response = app.client.post("/scim/v2/Groups/.search", headers=auth, json={
        "schemas": [SEARCH], "filter": 'displayName ne "Gamma"', "sortBy": "displayName",
        "excludedAttributes": ["members"]})
    assert names(response, "displayName") == ["alpha", "Beta"]
    assert all("members" not in r for r in response.json()["Resources"])


def test_root_search_spans_users_and_groups(app: ScimHarness, auth: dict[str, str]) -> None:
    member = user(app, auth, "Zed", displayName="Zed Z")["id"]
    user(app, auth, "amy", displayName="Amy A")
    group(app, auth, "Middle", member)
    body = {"schemas": [SEARCH], "sortBy": "displayName"}
    response = app.client.post("/scim/v2/.search", headers=auth, json=body)
    assert names(response, "displayName") == ["Amy A", "Middle", "Zed Z"]
    assert [r["meta"]["resourceType"] for r in response.json()["Resources"]] == [
        "User", "Group", "User"]
    assert response.json()["totalResults"] == 3
    # A filter on a user attribute selects users only; paging runs over the merged list.
    response = app.client.post("/scim/v2/.search", headers=auth, json={
        **body, "filter": 'userName pr', "sortOrder": "descending", "count": 1})
    assert names(response, "displayName") == ["Zed Z"]
    assert response.json()["totalResults"] == 2
    # Sorting by an attribute only users have puts the group last (it has no value).
    response = app.client.post("/scim/v2/.search", headers=auth,
                               json={"sortBy": "userName", "attributes": "displayName"})
    assert names(response, "displayName") == ["Amy A", "Zed Z", "Middle"]


def test_search_errors(app: ScimHarness, auth: dict[str, str]) -> None:
    for path in ("/scim/v2/Users/.search", "/scim/v2/.search"):
        assert_error(app.client.post(path, headers=auth, json={"filter": "userName eq"}),
                     400, "invalidFilter")
        assert_error(app.client.post(path, headers=auth, json={"count": "ten"}),
                     400, "invalidSyntax")
        assert_error(app.client.post(path, headers=auth, json=["not", "an", "object"]),
                     400, "invalidSyntax")
        assert_error(app.client.post(path, headers=auth, json={"schemas": ["urn:x"]}),
                     400, "invalidSyntax")
        assert_error(app.client.post(path, headers=auth, json={"sortBy": "password"}),
                     400, "invalidValue")
    assert_error(app.client.post("/scim/v2/.search", headers=auth,
                                 json={"filter": 'nope eq "x"'}), 400, "invalidFilter")
    # Reading needs scim:read, as a GET list does.
    response = app.client.post("/scim/v2/.search", json={},
                               headers={"Content-Type": SCIM_JSON})
    assert_error(response, 401)


# Sorting


def test_sort_by_and_sort_order(app: ScimHarness, auth: dict[str, str]) -> None:
    for name, display in (("b", "beta"), ("C", None), ("a", "Alpha"), ("d", "")):
        user(app, auth, name, **({"displayName": display} if display is not None else {}))
    listed = app.client.get("/scim/v2/Users?sortBy=userName", headers=auth)
    assert names(listed) == ["a", "b", "C", "d"]
    listed = app.client.get("/scim/v2/Users?sortBy=displayName&sortOrder=DESCENDING",
                            headers=auth)
    # Missing (and empty) values come first descending, last ascending.
    assert names(listed)[2:] == ["b", "a"] and set(names(listed)[:2]) == {"C", "d"}
    listed = app.client.get("/scim/v2/Users?sortBy=urn:ietf:params:scim:schemas:core:2.0:"
                            "User:userName&sortOrder=descending&count=2", headers=auth)
    assert names(listed) == ["d", "C"] and listed.json()["totalResults"] == 4
    assert_error(app.client.get("/scim/v2/Users?sortBy=nope", headers=auth), 400,
                 "invalidValue")
    assert_error(app.client.get("/scim/v2/Users?sortBy=userName&sortOrder=up", headers=auth),
                 400, "invalidValue")
    config = app.client.get("/scim/v2/ServiceProviderConfig").json()
    assert config["sort"] == {"supported": True}


def test_sort_by_multi_valued_attributes(app: ScimHarness, auth: dict[str, str]) -> None:
    first = user(app, auth, "one", emails=[{"value": "z@x.org"},
                                           {"value": "a@x.org", "primary": True}])
    second = user(app, auth, "two", emails=[{"value": "m@x.org"}, {"value": "b@x.org"}])
    group(app, auth, "g-b", first["id"])
    group(app, auth, "g-a", second["id"], first["id"])
    assert names(app.client.get("/scim/v2/Users?sortBy=emails", headers=auth)) == [
        "one", "two"]
    listed = app.client.get("/scim/v2/Groups?sortBy=members.value&attributes=displayName",
                            headers=auth)
    expected = sorted([("g-b", first["id"]), ("g-a", second["id"])], key=lambda p: p[1])
    assert names(listed, "displayName") == [name for name, _ in expected]


# Projection


def test_projection_on_every_kind_of_answer(app: ScimHarness, auth: dict[str, str]) -> None:
    created = app.client.post("/scim/v2/Users?attributes=userName,name.givenName",
                              headers=auth, json={
        "userName": "bjensen", "password": "t0p-Secret-pass", "displayName": "Babs",
        "name": {"givenName": "Barbara", "familyName": "Jensen"}})
    assert created.status_code == 201
    assert created.json() == {"schemas": [USER_SCHEMA], "id": created.json()["id"],
                              "userName": "bjensen", "name": {"givenName": "Barbara"}}
    url = f"/scim/v2/Users/{created.json()['id']}"
    read = app.client.get(url + "?excludedAttributes=name.familyName,meta,displayName",
                          headers=auth).json()
    assert read["name"] == {"givenName": "Barbara"} and "meta" not in read
    assert "displayName" not in read and read["userName"] == "bjensen"
    # "always" attributes stay, "never" ones never come, even when asked for.
    read = app.client.get(url + "?attributes=password,emails&excludedAttributes=id",
                          headers=auth).json()
    assert read == {"schemas": [USER_SCHEMA], "id": created.json()["id"]}
    read = app.client.get(url + "?excludedAttributes=id,schemas", headers=auth).json()
    assert read["id"] == created.json()["id"] and read["schemas"] == [USER_SCHEMA]
    patched = app.client.patch(url + "?attributes=displayName", headers=auth, json={
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName",
                                               "value": "B. Jensen"}]})
    assert set(patched.json()) == {"schemas", "id", "displayName"}
    replaced = app.client.put(url + "?excludedAttributes=meta,name", headers=auth,
                              json={"userName": "bjensen", "name": {"givenName": "B"}})
    assert "meta" not in replaced.json() and "name" not in replaced.json()
    listed = app.client.get("/scim/v2/Users?attributes=USERNAME", headers=auth).json()
    assert set(listed["Resources"][0]) == {"schemas", "id", "userName"}
    assert "t0p-Secret" not in str(listed)


def test_members_display_is_returned_on_request(app: ScimHarness,
                                                auth: dict[str, str]) -> None:
    member = user(app, auth, "member@example.com")["id"]
    created = group(app, auth, "G", member)
    assert created["members"] == [
        {"value": member, "$ref": f"{SCIM_URL}/Users/{member}", "type": "User"}]
    url = f"/scim/v2/Groups/{created['id']}"
    asked = app.client.get(url + "?attributes=members.display,members.value",
                           headers=auth).json()
    assert asked["members"] == [{"value": member, "display": "member@example.com"}]
    both = app.client.get(url + "?attributes=members,members.display", headers=auth).json()
    assert both["members"][0]["display"] == "member@example.com"
    assert both["members"][0]["$ref"].endswith(member)
    schema = app.client.get("/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group")
    members = next(a for a in schema.json()["attributes"] if a["name"] == "members")
    display = next(s for s in members["subAttributes"] if s["name"] == "display")
    assert display["returned"] == "request"


# PATCH remove of active


def test_patch_remove_of_active_leaves_it_unassigned(app: ScimHarness,
                                                     auth: dict[str, str]) -> None:
    created = user(app, auth, "bjensen", active=True)
    url = f"/scim/v2/Users/{created['id']}"
    token = app.token("openid", sub=created["id"])
    removed = app.client.patch(url, headers=auth, json={
        "schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "active"}]})
    assert removed.status_code == 200, removed.text
    assert "active" not in removed.json()
    assert "active" not in app.client.get(url, headers=auth).json()
    # Unassigned is no permission to sign in: the user's tokens went as on deactivation.
    assert not app.token_active(token)
    filtered = app.client.get("/scim/v2/Users?filter=active pr", headers=auth)
    assert filtered.json()["totalResults"] == 0
    # Other patches keep it unassigned; setting it again assigns it.
    app.client.patch(url, headers=auth, json={"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "displayName", "value": "B"}]})
    assert "active" not in app.client.get(url, headers=auth).json()
    back = app.client.patch(url, headers=auth, json={"schemas": [PATCH_OP], "Operations": [
        {"op": "add", "path": "active", "value": True}]})
    assert back.json()["active"] is True


def test_emails_primary_reads_back_as_sent(app: ScimHarness, auth: dict[str, str]) -> None:
    created = user(app, auth, "bjensen", emails=[
        {"value": "a@x.org", "primary": False}, {"value": "b@x.org", "primary": True}])
    assert [e["primary"] for e in created["emails"]] == [False, True]

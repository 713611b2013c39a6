"""POST /scim/v2/Bulk (RFC 7644 section 3.7) on each backend: bulkId references,
failOnErrors, versions, per-operation authorization and the limits of section 3.7.4."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.scim_support import BACKENDS, SCIM_JSON, SCIM_URL, ScimHarness, scim_app

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
MIB = 1024 * 1024


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest) -> Iterator[ScimHarness]:
    with scim_app(request.param) as running:
        yield running


def bulk(app: ScimHarness, operations: list[dict[str, Any]], *, scope: str = "scim:write",
         **extra: Any) -> dict[str, Any]:
    response = app.client.post("/scim/v2/Bulk", headers=app.auth(scope), json={
        "schemas": [BULK_REQUEST], "Operations": operations, **extra})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(SCIM_JSON)
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [BULK_RESPONSE]
    return body


def post_user(bulk_id: str, user_name: str, **extra: Any) -> dict[str, Any]:
    return {"method": "POST", "path": "/Users", "bulkId": bulk_id,
            "data": {"schemas": [USER_SCHEMA], "userName": user_name, **extra}}


def post_group(bulk_id: str, name: str, members: list[str]) -> dict[str, Any]:
    return {"method": "POST", "path": "/Groups", "bulkId": bulk_id,
            "data": {"schemas": [GROUP_SCHEMA], "displayName": name,
                     "members": [{"value": m} for m in members]}}


def get(app: ScimHarness, location: str) -> dict[str, Any]:
    response = app.client.get(location.removeprefix(SCIM_URL.removesuffix("/scim/v2")),
                              headers=app.auth("scim:read"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_service_provider_config_advertises_bulk_and_its_limits(app: ScimHarness) -> None:
    config = app.client.get("/scim/v2/ServiceProviderConfig").json()
    assert config["bulk"] == {"supported": True, "maxOperations": 1000,
                              "maxPayloadSize": 1048576}


def test_create_reference_patch_and_delete_in_one_bulk(app: ScimHarness) -> None:
    body = bulk(app, [
        post_user("u1", "bjensen"),
        post_group("g1", "Tour Guides", ["bulkId:u1"]),
        {"method": "PATCH", "path": "/Users/bulkId:u1", "version": 'W/"1"',
         "data": {"schemas": [PATCH_OP], "Operations": [
             {"op": "replace", "path": "displayName", "value": "Barbara"}]}},
        post_user("u2", "jsmith"),
        {"method": "PATCH", "path": "/Groups/bulkId:g1", "data": {
            "schemas": [PATCH_OP], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": "bulkId:u2"}]}]}},
        {"method": "DELETE", "path": "/Users/bulkId:u2"},
    ])
    results = body["Operations"]
    assert [(r["method"], r["status"]) for r in results] == [
        ("POST", "201"), ("POST", "201"), ("PATCH", "200"), ("POST", "201"), ("PATCH", "200"),
        ("DELETE", "204")]
    user_location = results[0]["location"]
    assert user_location.startswith(f"{SCIM_URL}/Users/")
    assert results[0]["bulkId"] == "u1" and results[0]["version"] == 'W/"1"'
    assert "response" not in results[0]
    user_id = user_location.rsplit("/", 1)[1]
    assert results[2]["location"] == user_location and results[2]["version"] == 'W/"2"'
    assert get(app, user_location)["displayName"] == "Barbara"
    group = get(app, results[1]["location"])
    # u2 was added, then deleted with its memberships: only u1 remains, by its real id.
    assert [m["value"] for m in group["members"]] == [user_id]
    assert results[4]["version"] == 'W/"2"'
    assert app.client.get(results[5]["location"].removeprefix("http://testserver.local"),
                          headers=app.auth("scim:read")).status_code == 404


def test_an_operation_may_refer_to_one_later_in_the_request(app: ScimHarness) -> None:
    body = bulk(app, [post_group("g", "Admins", ["bulkId:u"]), post_user("u", "admin")])
    results = body["Operations"]
    # The user is created first, so that the group can name it.
    assert [(r["bulkId"], r["status"]) for r in results] == [("u", "201"), ("g", "201")]
    group = get(app, results[1]["location"])
    assert [m["value"] for m in group["members"]] == [results[0]["location"].rsplit("/", 1)[1]]


def test_fail_on_errors_stops_after_the_failing_middle_operation(app: ScimHarness) -> None:
    body = bulk(app, [
        post_user("a", "alice"),
        post_user("b", "ALICE"),  # userName clash (case-insensitive): 409
        post_user("c", "carol"),
    ], failOnErrors=1)
    results = body["Operations"]
    assert [(r["bulkId"], r["status"]) for r in results] == [("a", "201"), ("b", "409")]
    error = results[1]["response"]
    assert error["schemas"] == [ERROR] and error["status"] == "409"
    assert error["scimType"] == "uniqueness" and error["detail"]
    listed = app.client.get("/scim/v2/Users", headers=app.auth("scim:read")).json()
    assert sorted(u["userName"] for u in listed["Resources"]) == ["alice"]


def test_without_fail_on_errors_every_operation_runs(app: ScimHarness) -> None:
    body = bulk(app, [
        post_user("a", "alice"),
        post_user("b", "alice"),
        {"method": "PUT", "path": "/Users/missing", "data": {"userName": "x"}},
        post_user("c", "carol"),
    ])
    assert [r["status"] for r in body["Operations"]] == ["201", "409", "404", "201"]


def test_fail_on_errors_counts_errors(app: ScimHarness) -> None:
    body = bulk(app, [
        post_user("a", ""), post_user("b", "bob"), post_user("c", ""), post_user("d", "dan"),
    ], failOnErrors=2)
    assert [r["status"] for r in body["Operations"]] == ["400", "201", "400"]


def test_version_is_if_match_per_operation(app: ScimHarness) -> None:
    created = bulk(app, [post_user("a", "alice")])["Operations"][0]
    path = "/Users/" + created["location"].rsplit("/", 1)[1]
    body = bulk(app, [
        {"method": "PUT", "path": path, "version": 'W/"7"', "data": {"userName": "alice2"}},
        {"method": "DELETE", "path": path, "version": 'W/"7"'},
        {"method": "PUT", "path": path, "version": 'W/"1"', "data": {"userName": "alice3"}},
    ])
    assert [r["status"] for r in body["Operations"]] == ["412", "412", "200"]
    assert body["Operations"][2]["version"] == 'W/"2"'


def test_references_to_failed_unknown_or_circular_operations(app: ScimHarness) -> None:
    body = bulk(app, [
        post_user("bad", ""),                       # fails: empty userName
        post_group("g1", "One", ["bulkId:bad"]),    # refers to a failed operation
        post_group("g2", "Two", ["bulkId:nobody"]),  # refers to no operation
        post_group("g3", "Three", ["bulkId:g4"]),   # g3 and g4 refer to each other
        post_group("g4", "Four", ["bulkId:g3"]),
    ])
    by_id = {r["bulkId"]: r for r in body["Operations"]}
    assert by_id["bad"]["status"] == "400"
    assert by_id["g1"]["status"] == "409" and "bad" in by_id["g1"]["response"]["detail"]
    assert by_id["g2"]["status"] == "400"
    assert by_id["g2"]["response"]["scimType"] == "invalidValue"
    assert "nobody" in by_id["g2"]["response"]["detail"]
    assert by_id["g3"]["status"] == by_id["g4"]["status"] == "409"
    assert "cycle" in by_id["g3"]["response"]["detail"]
    listed = app.client.get("/scim/v2/Groups", headers=app.auth("scim:read")).json()
    assert listed["totalResults"] == 0


def test_malformed_operations_fail_alone(app: ScimHarness) -> None:
    body = bulk(app, [
        {"method": "GET", "path": "/Users"},
        {"method": "POST", "path": "/Users", "data": {"userName": "nobulkid"}},
        {"method": "POST", "path": "/Widgets", "bulkId": "w", "data": {}},
        {"method": "POST", "path": "/Users/abc", "bulkId": "x", "data": {"userName": "x"}},
        {"method": "PUT", "path": "/Users/abc"},
        post_user("ok", "fine"),
    ])
    assert [r["status"] for r in body["Operations"]] == ["400", "400", "404", "405", "400",
                                                         "201"]
    for result in body["Operations"][:5]:
        assert result["response"]["schemas"] == [ERROR]


@pytest.mark.parametrize("body", [
    {"schemas": [BULK_REQUEST]},
    {"schemas": [BULK_REQUEST], "Operations": []},
    {"schemas": ["urn:wrong"], "Operations": [post_user("a", "a")]},
    {"schemas": [BULK_REQUEST], "Operations": [post_user("a", "a")], "failOnErrors": 0},
    {"schemas": [BULK_REQUEST], "Operations": [post_user("a", "a"), post_user("a", "b")]},
    ["not", "an", "object"],
])
def test_a_malformed_bulk_request_is_400(app: ScimHarness, body: Any) -> None:
    response = app.client.post("/scim/v2/Bulk", headers=app.auth(), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == "invalidSyntax"
    assert response.headers["content-type"].startswith(SCIM_JSON)


# Authorization


def test_each_operation_needs_scim_write(app: ScimHarness) -> None:
    body = bulk(app, [post_user("a", "alice"), post_user("b", "bob")], scope="scim:read")
    results = body["Operations"]
    assert [r["status"] for r in results] == ["403", "403"]
    assert "scim:write" in results[0]["response"]["detail"]
    assert app.client.get("/scim/v2/Users", headers=app.auth("scim:read")
                          ).json()["totalResults"] == 0


def test_a_user_token_or_none_is_refused_before_any_operation(app: ScimHarness) -> None:
    request = {"schemas": [BULK_REQUEST], "Operations": [post_user("a", "alice")]}
    user_token = app.token("scim:write", sub="user-1")
    refused = app.client.post("/scim/v2/Bulk", json=request,
                              headers={"Authorization": f"Bearer {user_token}"})
    assert refused.status_code == 403 and refused.json()["schemas"] == [ERROR]
    anonymous = app.client.post("/scim/v2/Bulk", json=request)
    assert anonymous.status_code == 401 and "bearer" in anonymous.headers["www-authenticate"
                                                                          ].lower()
    assert app.client.get("/scim/v2/Users", headers=app.auth("scim:read")
                          ).json()["totalResults"] == 0


# Limits (RFC 7644 section 3.7.4)


def test_more_than_max_operations_is_413_naming_the_limit(app: ScimHarness) -> None:
    operations = [post_user(f"u{i}", f"user{i}") for i in range(1001)]
    response = app.client.post("/scim/v2/Bulk", headers=app.auth(), json={
        "schemas": [BULK_REQUEST], "Operations": operations})
    assert response.status_code == 413
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == "413"
    assert "maxOperations" in body["detail"] and "1000" in body["detail"]
    assert response.headers["content-type"].startswith(SCIM_JSON)
    assert app.client.get("/scim/v2/Users", headers=app.auth("scim:read")
                          ).json()["totalResults"] == 0


def test_a_declared_payload_over_max_payload_size_is_413_naming_the_limit(
    app: ScimHarness,
) -> None:
    response = app.client.post("/scim/v2/Bulk", headers=app.auth(),
                               content=b'{"Operations": [' + b" " * MIB + b"]}")
    assert response.status_code == 413
    assert response.headers["content-type"].startswith(SCIM_JSON)
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == "413"
    assert body["detail"] == ("The size of the bulk operation exceeds the maxPayloadSize "
                              "(1048576).")


def test_a_streamed_payload_over_max_payload_size_is_413_naming_the_limit(
    app: ScimHarness,
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(17):
            yield b" " * 64 * 1024

    response = app.client.post("/scim/v2/Bulk", headers=app.auth(), content=chunks())
    assert response.status_code == 413
    assert "maxPayloadSize" in response.json()["detail"]


def test_a_bulk_of_max_operations_runs(app: ScimHarness) -> None:
    operations = [post_user(f"u{i}", f"user{i}") for i in range(1000)]
    body = bulk(app, operations)
    assert len(body["Operations"]) == 1000
    assert {r["status"] for r in body["Operations"]} == {"201"}
    assert app.client.get("/scim/v2/Users?count=1", headers=app.auth("scim:read")
                          ).json()["totalResults"] == 1000

"""The PATCH engine (RFC 7644 section 3.5.2), including Entra ID and Okta payloads verbatim."""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import InvalidValue
from domain.filter_parser import InvalidPath
from domain.scim.errors import InvalidSyntax, Mutability, NoTarget
from domain.scim.patch import apply_patch, read_patch_request
from domain.scim.schema import GROUP, USER

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def user_doc() -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "u-1",
        "userName": "bjensen",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [
            {"value": "b@work.example", "type": "work", "primary": True},
            {"value": "b@home.example", "type": "home"},
        ],
        "active": True,
        "groups": [{"value": "g-1", "display": "Admins"}],
        "meta": {"resourceType": "User", "version": 'W/"3"'},
    }


def group_doc() -> dict[str, Any]:
    return {"id": "g-1", "displayName": "Admins",
            "members": [{"value": "u-1", "display": "a", "type": "User"}, {"value": "u-2"}]}


def patch(doc: dict[str, Any], *operations: dict[str, Any], resource: Any = USER
          ) -> dict[str, Any]:
    request = read_patch_request({"schemas": [PATCH_OP], "Operations": list(operations)})
    return apply_patch(doc, request, resource)


# Request shape


def test_ops_are_case_insensitive_and_document_is_not_modified() -> None:
    doc = user_doc()
    result = patch(doc, {"op": "Replace", "path": "displayName", "value": "Babs"})
    assert result["displayName"] == "Babs"
    assert "displayName" not in doc


@pytest.mark.parametrize("body", [
    [], "x", {"Operations": []}, {"Operations": "x"}, {"Operations": [{"op": "move"}]},
    {"Operations": [{"path": "x"}]}, {"Operations": ["add"]},
    {"schemas": ["urn:wrong"], "Operations": [{"op": "add", "value": {}}]},
    {"Operations": [{"op": "add", "value": {}}] * 1001},
])
def test_malformed_requests(body: Any) -> None:
    with pytest.raises(InvalidSyntax):
        read_patch_request(body)


def test_non_string_path() -> None:
    with pytest.raises(InvalidPath):
        read_patch_request({"Operations": [{"op": "add", "path": 3, "value": 1}]})


def test_operations_key_and_fields_are_case_insensitive() -> None:
    ops = read_patch_request({"operations": [{"OP": "ADD", "Path": "displayName", "Value": "x"}]})
    assert apply_patch(user_doc(), ops, USER)["displayName"] == "x"


# Simple attributes


def test_add_and_replace_simple() -> None:
    doc = patch(user_doc(), {"op": "add", "path": "displayName", "value": "B"})
    assert doc["displayName"] == "B"
    assert patch(user_doc(), {"op": "replace", "path": "userName", "value": "x"})["userName"] == "x"
    assert patch(user_doc(), {"op": "replace", "path": "USERNAME", "value": "y"})["userName"] == "y"


def test_remove_simple() -> None:
    doc = patch(user_doc(), {"op": "add", "path": "externalId", "value": "e"},
                {"op": "remove", "path": "externalId"})
    assert "externalId" not in doc


def test_remove_required_attribute_is_invalid() -> None:
    with pytest.raises(InvalidValue, match="required"):
        patch(user_doc(), {"op": "remove", "path": "userName"})


def test_replace_with_null_unassigns() -> None:
    doc = patch(user_doc(), {"op": "replace", "path": "name.givenName", "value": None})
    assert doc["name"] == {"familyName": "Jensen"}


def test_wrong_type() -> None:
    with pytest.raises(InvalidValue):
        patch(user_doc(), {"op": "replace", "path": "userName", "value": 5})
    with pytest.raises(InvalidValue):
        patch(user_doc(), {"op": "replace", "path": "active", "value": "maybe"})


@pytest.mark.parametrize(("value", "expected"), [
    (False, False), ("False", False), ("false", False), ("True", True), (True, True),
])
def test_boolean_strings(value: Any, expected: bool) -> None:
    doc = patch(user_doc(), {"op": "replace", "path": "active", "value": value})
    assert doc["active"] is expected


def test_value_required_for_add() -> None:
    with pytest.raises(InvalidValue):
        patch(user_doc(), {"op": "add", "path": "displayName"})


# Paths


def test_unknown_path() -> None:
    with pytest.raises(InvalidPath):
        patch(user_doc(), {"op": "replace", "path": "roles", "value": "x"})
    with pytest.raises(InvalidPath):
        patch(user_doc(), {"op": "replace", "path": "name.nickName", "value": "x"})
    with pytest.raises(InvalidPath):
        patch(user_doc(), {"op": "replace", "value": "x",
                           "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:"
                                   "badge"})
    with pytest.raises(InvalidPath):
        patch(user_doc(), {"op": "replace", "path": "emails[type eq", "value": "x"})


def test_urn_prefixed_path() -> None:
    doc = patch(user_doc(), {"op": "replace",
                             "path": "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName",
                             "value": "Babs"})
    assert doc["name"]["givenName"] == "Babs"
    with pytest.raises(InvalidPath):
        patch(user_doc(), {"op": "replace",
                           "path": "urn:ietf:params:scim:schemas:core:2.0:Group:displayName",
                           "value": "x"})


@pytest.mark.parametrize("path", ["id", "meta", "groups", "meta.created"])
def test_read_only_paths(path: str) -> None:
    with pytest.raises(Mutability):
        patch(user_doc(), {"op": "replace", "path": path, "value": "x"})


def test_read_only_sub_attribute() -> None:
    with pytest.raises(Mutability):
        patch(group_doc(), {"op": "replace", "path": 'members[value eq "u-1"].display',
                            "value": "x"}, resource=GROUP)


def test_immutable_member_value() -> None:
    with pytest.raises(Mutability):
        patch(group_doc(), {"op": "replace", "path": 'members[value eq "u-1"].value',
                            "value": "u-9"}, resource=GROUP)


def test_value_filter_must_be_valid() -> None:
    with pytest.raises(InvalidPath):
        patch(user_doc(), {"op": "replace", "path": 'emails[nope eq "x"].value', "value": "x"})
    with pytest.raises(InvalidPath):
        patch(user_doc(), {"op": "replace", "path": 'name[givenName eq "x"]', "value": {}})


# Complex single-valued


def test_add_complex_merges() -> None:
    doc = patch(user_doc(), {"op": "add", "path": "name", "value": {"formatted": "B J"}})
    assert doc["name"] == {"givenName": "Barbara", "familyName": "Jensen", "formatted": "B J"}


def test_replace_complex_merges_given_sub_attributes() -> None:
    doc = patch(user_doc(), {"op": "replace", "path": "name", "value": {"givenname": "Babs"}})
    assert doc["name"] == {"givenName": "Babs", "familyName": "Jensen"}


def test_remove_complex() -> None:
    assert "name" not in patch(user_doc(), {"op": "remove", "path": "name"})
    doc = patch(user_doc(), {"op": "remove", "path": "name.familyName"})
    assert doc["name"] == {"givenName": "Barbara"}


def test_complex_needs_object() -> None:
    with pytest.raises(InvalidValue):
        patch(user_doc(), {"op": "replace", "path": "name", "value": "Babs"})


# Multi-valued


def test_add_multi_appends_new_values_only() -> None:
    # A value already there (same address case-insensitively, same type) is merged, not added.
    doc = patch(user_doc(), {"op": "add", "path": "emails", "value": [
        {"value": "B@HOME.example", "type": "home"}, {"value": "x@other", "type": "other"}]})
    assert [e["value"] for e in doc["emails"]] == ["b@work.example", "B@HOME.example", "x@other"]


def test_add_single_object_to_multi() -> None:
    doc = patch(user_doc(), {"op": "add", "path": "emails", "value": {"value": "n@x"}})
    assert doc["emails"][-1] == {"value": "n@x"}


def test_replace_multi_replaces_all() -> None:
    doc = patch(user_doc(), {"op": "replace", "path": "emails", "value": [{"value": "only@x"}]})
    assert doc["emails"] == [{"value": "only@x"}]


def test_remove_multi() -> None:
    assert "emails" not in patch(user_doc(), {"op": "remove", "path": "emails"})


def test_remove_with_filter() -> None:
    doc = patch(user_doc(), {"op": "remove", "path": 'emails[type eq "home"]'})
    assert [e["type"] for e in doc["emails"]] == ["work"]


def test_remove_with_filter_matching_nothing_is_fine() -> None:
    assert patch(user_doc(), {"op": "remove", "path": 'emails[type eq "x"]'})["emails"] == \
        user_doc()["emails"]


def test_remove_last_value_unassigns() -> None:
    doc = patch(user_doc(), {"op": "remove", "path": "emails[type pr]"})
    assert "emails" not in doc


def test_remove_sub_attribute_with_filter() -> None:
    doc = patch(user_doc(), {"op": "remove", "path": 'emails[type eq "work"].primary'})
    assert doc["emails"][0] == {"value": "b@work.example", "type": "work"}


def test_replace_with_filter_and_sub_attribute() -> None:
    doc = patch(user_doc(), {"op": "replace", "path": 'emails[type eq "work"].value',
                             "value": "new@work.example"})
    assert doc["emails"][0] == {"value": "new@work.example", "type": "work", "primary": True}
    assert doc["emails"][1]["value"] == "b@home.example"


def test_replace_with_filter_merges_object() -> None:
    doc = patch(user_doc(), {"op": "replace", "path": 'emails[type eq "home"]',
                             "value": {"value": "n@home", "primary": True}})
    assert doc["emails"][1] == {"value": "n@home", "type": "home", "primary": True}
    assert doc["emails"][0]["primary"] is False  # only one primary


def test_filter_without_match_creates_value_from_eq_terms() -> None:
    doc = patch(user_doc(), {"op": "add", "path": 'emails[type eq "other"].value',
                             "value": "o@x"})
    assert doc["emails"][-1] == {"type": "other", "value": "o@x"}
    doc = patch(user_doc(), {"op": "replace", "path": 'emails[type eq "other"].value',
                             "value": "o@x"})
    assert doc["emails"][-1] == {"type": "other", "value": "o@x"}


def test_filter_without_match_and_no_eq_terms_is_no_target() -> None:
    with pytest.raises(NoTarget):
        patch(user_doc(), {"op": "replace", "path": 'emails[type co "oth"].value', "value": "x"})
    with pytest.raises(NoTarget):
        patch(user_doc(), {"op": "replace", "path": 'emails[type eq "other"]',
                           "value": {"value": "x"}})


def test_filter_evaluation_is_case_insensitive_where_the_schema_says() -> None:
    doc = patch(user_doc(), {"op": "replace", "path": 'emails[type eq "WORK"].type',
                             "value": "office"})
    assert doc["emails"][0]["type"] == "office"
    group = patch(group_doc(), {"op": "remove", "path": 'members[value eq "U-1"]'},
                  resource=GROUP)
    assert len(group["members"]) == 2  # member ids are case-exact


def test_primary_moves() -> None:
    doc = patch(user_doc(), {"op": "add", "path": "emails",
                             "value": [{"value": "p@x", "primary": "True"}]})
    assert [e.get("primary") for e in doc["emails"]] == [False, None, True]


def test_sub_attribute_of_every_value_without_filter() -> None:
    doc = patch(user_doc(), {"op": "replace", "path": "emails.type", "value": "other"})
    assert {e["type"] for e in doc["emails"]} == {"other"}


def test_unknown_sub_attributes_in_values_are_ignored() -> None:
    doc = patch(user_doc(), {"op": "add", "path": "emails",
                             "value": [{"value": "z@x", "display": "Z"}]})
    assert doc["emails"][-1] == {"value": "z@x"}


def test_multi_values_must_be_objects() -> None:
    with pytest.raises(InvalidValue):
        patch(user_doc(), {"op": "add", "path": "emails", "value": ["x@y"]})


# Without a path


def test_no_path_sets_each_attribute() -> None:
    doc = patch(user_doc(), {"op": "replace", "value": {
        "displayName": "B", "name": {"familyName": "J"}, "active": "False"}})
    assert doc["displayName"] == "B"
    assert doc["name"] == {"givenName": "Barbara", "familyName": "J"}
    assert doc["active"] is False


def test_no_path_ignores_read_only_and_unknown_keys() -> None:
    doc = patch(user_doc(), {"op": "replace", "value": {
        "id": "other", "meta": {}, "groups": [], "roles": ["CEO"], "schemas": ["x"],
        "urn:ietf:params:scim:schemas:extension:other:2.0:User": {"department": "R&D"},
        "displayName": "B"}})
    assert doc["id"] == "u-1"
    assert doc["groups"] == [{"value": "g-1", "display": "Admins"}]
    assert "roles" not in doc
    assert not any(key.startswith("urn:") for key in doc)
    assert doc["displayName"] == "B"


def test_no_path_keys_may_be_paths() -> None:
    doc = patch(user_doc(), {"op": "add", "value": {
        "name.givenName": "Babs", 'emails[type eq "work"].value': "w@x",
        "urn:ietf:params:scim:schemas:core:2.0:User:displayName": "D"}})
    assert doc["name"]["givenName"] == "Babs"
    assert doc["emails"][0]["value"] == "w@x"
    assert doc["displayName"] == "D"


def test_no_path_core_schema_wrapper() -> None:
    doc = patch(user_doc(), {"op": "replace", "value": {
        "urn:ietf:params:scim:schemas:core:2.0:User": {"displayName": "W"}}})
    assert doc["displayName"] == "W"


def test_no_path_needs_object_and_remove_needs_path() -> None:
    with pytest.raises(InvalidValue):
        patch(user_doc(), {"op": "replace", "value": "x"})
    with pytest.raises(NoTarget):
        patch(user_doc(), {"op": "remove"})


# Entra ID (Azure AD) payloads, as its provisioning service sends them


def test_entra_user_update() -> None:
    doc = patch(user_doc(), *read_entra_user_ops())
    assert doc["active"] is False
    assert doc["displayName"] == "Barbara J"
    assert doc["emails"][0]["value"] == "barbara@contoso.com"
    assert doc["name"] == {"givenName": "Barbara", "familyName": "Jensen-Smith"}
    assert doc["externalId"] == "bjensen-ext"


def read_entra_user_ops() -> list[dict[str, Any]]:
    return [
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Add", "path": "displayName", "value": "Barbara J"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "barbara@contoso.com"},
        {"op": "Replace", "path": "name.familyName", "value": "Jensen-Smith"},
        {"op": "Add", "path": "externalId", "value": "bjensen-ext"},
    ]


def test_entra_add_members() -> None:
    doc = patch(group_doc(), {"op": "Add", "path": "members",
                              "value": [{"value": "u-3"}, {"value": "u-4"}]}, resource=GROUP)
    assert [m["value"] for m in doc["members"]] == ["u-1", "u-2", "u-3", "u-4"]


def test_entra_remove_member_by_filter() -> None:
    doc = patch(group_doc(), {"op": "Remove", "path": 'members[value eq "u-1"]'}, resource=GROUP)
    assert [m["value"] for m in doc["members"]] == ["u-2"]


def test_entra_remove_member_by_value() -> None:
    doc = patch(group_doc(), {"op": "Remove", "path": "members", "value": [{"value": "u-2"}]},
                resource=GROUP)
    assert [m["value"] for m in doc["members"]] == ["u-1"]


def test_entra_replace_group_name() -> None:
    doc = patch(group_doc(), {"op": "Replace", "path": "displayName", "value": "Admins 2"},
                resource=GROUP)
    assert doc["displayName"] == "Admins 2"


# Okta payloads


def test_okta_deactivate() -> None:
    assert patch(user_doc(), {"op": "replace", "value": {"active": False}})["active"] is False


def test_okta_password_change() -> None:
    doc = patch(user_doc(), {"op": "replace", "value": {"password": "n3w-Passw0rd!"}})
    assert doc["password"] == "n3w-Passw0rd!"


def test_okta_group_membership() -> None:
    doc = patch(group_doc(), {"op": "add", "path": "members",
                              "value": [{"value": "u-9", "display": "nine@x"}]},
                {"op": "remove", "path": 'members[value eq "u-2"]'}, resource=GROUP)
    assert [m["value"] for m in doc["members"]] == ["u-1", "u-9"]


def test_okta_rename_group_without_path() -> None:
    doc = patch(group_doc(), {"op": "replace", "value": {"id": "g-1", "displayName": "New"}},
                resource=GROUP)
    assert doc["displayName"] == "New"
    assert doc["id"] == "g-1"

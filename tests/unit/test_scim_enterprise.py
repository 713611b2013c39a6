"""The enterprise User extension and the other core User attributes in the domain: reading
and writing SCIM JSON, PATCH paths, filter validation; and which group patches are member
changes (applied without the member list)."""

from __future__ import annotations

from typing import Any

import pytest

from domain.entities import Address, EnterpriseUser, Manager, MultiValue, User
from domain.errors import InvalidValue
from domain.filter_parser import InvalidFilter, parse_filter
from domain.scim.patch import MemberChange, apply_patch, member_change, read_patch_request
from domain.scim.resources import user_from_json, user_to_json
from domain.scim.schema import USER, validate_filter

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _patched(user: User, *operations: dict[str, Any]) -> User:
    body = {"schemas": [PATCH_OP], "Operations": list(operations)}
    return user_from_json(apply_patch(user_to_json(user, ""), read_patch_request(body),
                                      USER))[0]


def test_every_attribute_survives_a_round_trip_through_scim_json() -> None:
    user = User(
        id="u1", user_name="bjensen", nick_name="Babs", profile_url="https://x/bjensen",
        title="Guide", user_type="Employee", preferred_language="en-US", locale="en-US",
        timezone="America/Los_Angeles",
        phone_numbers=(MultiValue("555", "work", True, "desk"), MultiValue("556", "mobile")),
        addresses=(Address(street_address="1 Main", locality="LA", region="CA",
                           postal_code="9", country="US", formatted="1 Main, LA",
                           type="work", primary=True),),
        photos=(MultiValue("https://x/p.jpg", "photo"),),
        x509_certificates=(MultiValue("MIIB"),),
        enterprise=EnterpriseUser(employee_number="1", cost_center="2", organization="3",
                                  division="4", department="5", manager=Manager("boss")),
    )
    document = user_to_json(user, "https://h/scim/v2")
    assert document["schemas"] == [CORE, ENTERPRISE]
    assert document[ENTERPRISE]["manager"] == {"value": "boss",
                                               "$ref": "https://h/scim/v2/Users/boss"}
    assert user_from_json(document)[0] == User(**{
        **{f: getattr(user, f) for f in user.__struct_fields__}, "id": ""})


def test_the_extension_is_read_from_its_object_or_from_prefixed_keys() -> None:
    user, _ = user_from_json({
        "userName": "u",
        ENTERPRISE.upper(): {"Department": "R&D", "manager": "boss-id"},
        f"{ENTERPRISE}:employeeNumber": "42",
    })
    assert user.enterprise == EnterpriseUser(employee_number="42", department="R&D",
                                             manager=Manager("boss-id"))


@pytest.mark.parametrize("manager", [None, "", {"value": ""}, {"value": None}])
def test_an_empty_manager_is_no_manager(manager: Any) -> None:
    user, _ = user_from_json({"userName": "u", ENTERPRISE: {"manager": manager}})
    assert user.enterprise is None


@pytest.mark.parametrize("extra", [
    {"phoneNumbers": [{"type": "work"}]},  # value is required
    {"addresses": "Main street"},
    {"photos": [{"value": "a", "primary": True}, {"value": "b", "primary": "True"}]},
    {ENTERPRISE: ["R&D"]},
    {ENTERPRISE: {"department": 3}},
    {"x509Certificates": [{"value": "A" * 20000}]},
    {"phoneNumbers": [{"value": str(n)} for n in range(51)]},
])
def test_malformed_new_attributes_are_invalid_values(extra: dict[str, Any]) -> None:
    with pytest.raises(InvalidValue):
        user_from_json({"userName": "u", **extra})


def test_patch_of_the_whole_extension_merges_and_remove_drops_it() -> None:
    user = User(user_name="u", enterprise=EnterpriseUser(department="R&D", division="A"))
    merged = _patched(user, {"op": "add", "path": ENTERPRISE,
                             "value": {"division": "B", "manager": {"value": "m"}}})
    assert merged.enterprise == EnterpriseUser(department="R&D", division="B",
                                               manager=Manager("m"))
    assert _patched(merged, {"op": "remove", "path": ENTERPRISE}).enterprise is None
    wrapped = _patched(user, {"op": "replace", "value": {ENTERPRISE: {"costCenter": "C"}}})
    assert wrapped.enterprise == EnterpriseUser(department="R&D", division="A",
                                                cost_center="C")


def test_patch_of_a_sub_attribute_of_the_manager() -> None:
    user = User(user_name="u")
    patched = _patched(user, {"op": "add", "path": f"{ENTERPRISE}:manager.value",
                              "value": "m2"})
    assert patched.enterprise == EnterpriseUser(manager=Manager("m2"))


def test_patch_sets_a_primary_phone_and_clears_the_other() -> None:
    user = User(user_name="u", phone_numbers=(MultiValue("1", "work", True),))
    patched = _patched(user, {"op": "add", "path": "phoneNumbers",
                              "value": [{"value": "2", "type": "mobile", "primary": True}]})
    assert patched.phone_numbers == (MultiValue("1", "work"), MultiValue("2", "mobile", True))


@pytest.mark.parametrize("text", [
    'title eq "x"', 'nickName co "b"', 'userType eq "Employee"', 'locale sw "en"',
    'timezone pr', 'preferredLanguage eq "en"', 'name.middleName pr',
    'phoneNumbers eq "1"', 'phoneNumbers[type eq "work" and value sw "+1"]',
    'addresses.streetAddress co "Main"', 'addresses[type eq "work" and country eq "US"]',
    'addresses eq "1 Main, LA"', 'addresses.primary eq true', 'photos.type eq "photo"',
    f'{ENTERPRISE}:employeeNumber eq "1"', f'{ENTERPRISE}:department pr',
    f'{ENTERPRISE}:manager.value eq "m"', 'costCenter eq "2"', 'manager[value eq "m"]',
])
def test_filters_on_the_new_attributes_are_valid(text: str) -> None:
    validate_filter(parse_filter(text), USER)


def test_a_value_filter_cannot_name_a_schema() -> None:
    with pytest.raises(InvalidFilter):
        validate_filter(parse_filter(f'addresses[{ENTERPRISE}:department eq "x"]'), USER)


# Member changes


def _change(*operations: dict[str, Any]) -> MemberChange | None:
    return member_change(read_patch_request({"schemas": [PATCH_OP],
                                             "Operations": list(operations)}))


def test_entra_and_okta_member_patches_are_member_changes() -> None:
    assert _change({"op": "Add", "path": "members", "value": [{"value": "a"}, {"value": "b"}]},
                   {"op": "add", "path": "members", "value": [{"value": "a"}]}) == \
        MemberChange("add", ("a", "b"))
    assert _change({"op": "add", "value": {"members": [{"value": "a", "display": "x"}]}}) == \
        MemberChange("add", ("a",))
    assert _change({"op": "Remove", "path": "members", "value": [{"value": "a"}]}) == \
        MemberChange("remove", ("a",))
    assert _change({"op": "remove", "path": 'members[value eq "a"]'},
                   {"op": "remove", "path": 'members[value eq "b" or value eq "c"]'}) == \
        MemberChange("remove", ("a", "b", "c"))
    assert _change({"op": "add", "value": [{"value": "a"}],
                    "path": "urn:ietf:params:scim:schemas:core:2.0:Group:members"}) == \
        MemberChange("add", ("a",))


@pytest.mark.parametrize("operations", [
    [{"op": "replace", "path": "members", "value": [{"value": "a"}]}],
    [{"op": "remove", "path": "members"}],
    [{"op": "remove", "path": 'members[value ne "a"]'}],
    [{"op": "remove", "path": 'members[display eq "a"]'}],
    [{"op": "remove", "path": 'members[value eq "a"].display'}],
    [{"op": "add", "path": "members", "value": [{"value": "a"}]},
     {"op": "remove", "path": "members", "value": [{"value": "b"}]}],
    [{"op": "add", "path": "members", "value": [{"value": "a"}]},
     {"op": "replace", "path": "displayName", "value": "x"}],
    [{"op": "add", "value": {"members": [{"value": "a"}], "displayName": "x"}}],
    [{"op": "add", "path": "members", "value": [{"value": "a", "type": "Group"}]}],
])
def test_other_group_patches_take_the_general_path(operations: list[dict[str, Any]]) -> None:
    assert _change(*operations) is None

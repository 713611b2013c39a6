"""Pure parts of SCIM search: projection (``attributes``/``excludedAttributes`` with
``returned``), ``sortBy``/``sortOrder`` reading and the entity sort order, SearchRequest
bodies, and ``Accept`` negotiation."""

from __future__ import annotations

import pytest

from domain.entities import Email, Group, Member, User
from domain.errors import InvalidValue
from domain.filters import AttrPath, SortKey
from domain.scim.errors import InvalidSyntax
from domain.scim.projection import project
from domain.scim.schema import GROUP, USER
from domain.scim.search import read_search_request
from domain.scim.sorting import read_sort, sort_entities
from entrypoints.http.scim import accepts_scim

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
DOC = {
    "schemas": [USER_URN, ENTERPRISE], "id": "u1", "userName": "bjensen",
    "name": {"givenName": "Barbara", "familyName": "Jensen"},
    "emails": [{"value": "b@x", "type": "work", "primary": True}],
    "password": "never-leaves", "meta": {"resourceType": "User"},
    ENTERPRISE: {"department": "Sales", "costCenter": "4130"},
}


def test_attributes_select_and_keep_always_returned_ones() -> None:
    assert project(DOC, USER, ["userName", "name.familyName"]) == {
        "schemas": DOC["schemas"], "id": "u1", "userName": "bjensen",
        "name": {"familyName": "Jensen"}}
    assert project(DOC, USER, [f"{USER_URN}:emails.value"])["emails"] == [{"value": "b@x"}]


def test_excluded_attributes_remove_but_never_always_ones() -> None:
    out = project(DOC, USER, excluded=["id", "name.givenName", "EMAILS", "meta"])
    assert out["id"] == "u1" and out["name"] == {"familyName": "Jensen"}
    assert "emails" not in out and "meta" not in out


def test_never_returned_is_never_returned() -> None:
    assert "password" not in project(DOC, USER)
    assert "password" not in project(DOC, USER, ["password"])


def test_extension_attributes_by_urn() -> None:
    assert project(DOC, USER, [f"{ENTERPRISE}:department"])[ENTERPRISE] == {
        "department": "Sales"}
    assert project(DOC, USER, [ENTERPRISE])[ENTERPRISE] == DOC[ENTERPRISE]
    assert ENTERPRISE not in project(DOC, USER, excluded=[ENTERPRISE])


def test_attributes_win_over_excluded_attributes() -> None:
    assert project(DOC, USER, ["userName"], ["userName"])["userName"] == "bjensen"


def test_request_sub_attributes_only_when_named() -> None:
    doc = {"schemas": [], "id": "g", "displayName": "G",
           "members": [{"value": "u1", "display": "bjensen", "type": "User"}]}
    assert project(doc, GROUP)["members"] == [{"value": "u1", "type": "User"}]
    assert project(doc, GROUP, ["members"])["members"] == [{"value": "u1", "type": "User"}]
    assert project(doc, GROUP, ["members.display"])["members"] == [{"display": "bjensen"}]


def test_read_sort() -> None:
    assert read_sort(None, "descending", USER) is None
    assert read_sort("name", None, USER) == SortKey(AttrPath("name", "formatted"))
    assert read_sort("emails", "Descending", USER) == SortKey(AttrPath("emails", "value"),
                                                             descending=True)
    assert read_sort(f"{USER_URN}:meta.lastModified", None, USER) == SortKey(
        AttrPath("meta", "lastmodified"))
    for bad in ("password", "nope", "groups.$ref", "members"):
        with pytest.raises(InvalidValue):
            read_sort(bad, None, USER)
    with pytest.raises(InvalidValue):
        read_sort("userName", "sideways", USER)


def test_sort_entities_missing_last_ties_by_id_descending_reversed() -> None:
    users = [User(id="c", user_name="x", display_name=None),
             User(id="a", user_name="y", display_name="Bob"),
             User(id="b", user_name="z", display_name="bob"),
             User(id="d", user_name="w", display_name="al")]
    key = SortKey(AttrPath("displayname"))
    assert [u.id for u in sort_entities(users, key)] == ["d", "a", "b", "c"]
    descending = SortKey(AttrPath("displayname"), descending=True)
    assert [u.id for u in sort_entities(users, descending)] == ["c", "b", "a", "d"]
    assert [u.id for u in sort_entities(users, None)] == ["a", "b", "c", "d"]


def test_multi_valued_sort_values() -> None:
    users = [User(id="1", user_name="a", emails=(Email("z@x"), Email("b@x", primary=True))),
             User(id="2", user_name="b", emails=(Email("c@x"),)),
             User(id="3", user_name="c")]
    assert [u.id for u in sort_entities(users, SortKey(AttrPath("emails", "value")))] == [
        "1", "2", "3"]
    groups = [Group(id="g1", display_name="x", members=(Member("u9"), Member("u1"))),
              Group(id="g2", display_name="y", members=(Member("u5"),))]
    assert [g.id for g in sort_entities(groups, SortKey(AttrPath("members", "value")))] == [
        "g2", "g1"]


def test_read_search_request() -> None:
    search = read_search_request({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "Attributes": ["userName", " emails "], "excludedAttributes": "meta,name",
        "FILTER": 'userName sw "b"', "sortBy": "userName", "sortOrder": "descending",
        "startIndex": 3, "count": 7})
    assert search.attributes == ("userName", "emails")
    assert search.excluded_attributes == ("meta", "name")
    assert (search.filter, search.sort_by, search.sort_order) == (
        'userName sw "b"', "userName", "descending")
    assert (search.start_index, search.count) == (3, 7)
    assert read_search_request({}).filter is None
    for bad in ([], {"count": "7"}, {"count": True}, {"filter": 3},
                {"attributes": [1]}, {"schemas": "x"}):
        with pytest.raises(InvalidSyntax):
            read_search_request(bad)


@pytest.mark.parametrize("header, accepted", [
    (None, True), ("", True), ("*/*", True), ("application/scim+json", True),
    ("application/json; charset=utf-8", True), ("text/html, application/*;q=0.1", True),
    ("text/html", False), ("application/scim+json;q=0", False), ("application/xml", False),
    ("application/json;q=abc", False),
])
def test_accept_negotiation(header: str | None, accepted: bool) -> None:
    assert accepts_scim(header) is accepted

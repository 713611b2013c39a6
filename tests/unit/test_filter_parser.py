"""The SCIM filter and PATCH path grammar (RFC 7644 sections 3.4.2.2 and 3.5.2)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidValue
from domain.filter_parser import (
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    InvalidFilter,
    InvalidPath,
    PatchPath,
    parse_filter,
    parse_patch_path,
)
from domain.filters import And, AttrPath, Compare, Not, Or, Present, ValuePath

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"


def eq(attr: str, value: object, sub: str | None = None) -> Compare:
    return Compare(AttrPath(attr, sub), "eq", value)  # type: ignore[arg-type]


@pytest.mark.parametrize("op", ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])
def test_every_comparison_operator(op: str) -> None:
    assert parse_filter(f'userName {op} "x"') == Compare(AttrPath("username"), op, "x")  # type: ignore[arg-type]


@pytest.mark.parametrize("op", ["EQ", "Eq", "eQ"])
def test_operators_are_case_insensitive(op: str) -> None:
    assert parse_filter(f'userName {op} "x"') == eq("username", "x")


def test_attribute_names_are_lower_cased() -> None:
    assert parse_filter('UserName eq "BJensen"') == eq("username", "BJensen")


def test_present() -> None:
    assert parse_filter("title pr") == Present(AttrPath("title"))
    assert parse_filter("title PR") == Present(AttrPath("title"))


def test_sub_attribute() -> None:
    assert parse_filter('name.familyName co "O\'Malley"') == Compare(
        AttrPath("name", "familyname"), "co", "O'Malley")


@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("false", False), ("null", None), ("True", True), ("FALSE", False),
    ("0", 0), ("42", 42), ("-7", -7), ("1.5", 1.5), ("2e3", 2000.0), ("-0.25E-2", -0.0025),
    ('""', ""), ('"a b"', "a b"), (r'"quote \" here"', 'quote " here'),
    (r'"back\\slash"', "back\\slash"), (r'"\u00e9t\u00E9"', "été"), (r'"tab\tnl\n"', "tab\tnl\n"),
    (r'"\/"', "/"), ('"ünï"', "ünï"),
])
def test_json_literals(text: str, value: object) -> None:
    parsed = parse_filter(f"attr eq {text}")
    assert isinstance(parsed, Compare)
    assert parsed.value == value
    assert type(parsed.value) is type(value)


def test_and_binds_tighter_than_or() -> None:
    assert parse_filter("a pr or b pr and c pr") == Or(
        Present(AttrPath("a")), And(Present(AttrPath("b")), Present(AttrPath("c"))))
    assert parse_filter("a pr and b pr or c pr") == Or(
        And(Present(AttrPath("a")), Present(AttrPath("b"))), Present(AttrPath("c")))


def test_left_associative_chains() -> None:
    assert parse_filter("a pr or b pr or c pr") == Or(
        Or(Present(AttrPath("a")), Present(AttrPath("b"))), Present(AttrPath("c")))
    assert parse_filter("a pr and b pr and c pr") == And(
        And(Present(AttrPath("a")), Present(AttrPath("b"))), Present(AttrPath("c")))


def test_parentheses_override_precedence() -> None:
    assert parse_filter("(a pr or b pr) and c pr") == And(
        Or(Present(AttrPath("a")), Present(AttrPath("b"))), Present(AttrPath("c")))


def test_logical_keywords_case_insensitive() -> None:
    assert parse_filter("a pr AND b pr Or NOT (c pr)") == Or(
        And(Present(AttrPath("a")), Present(AttrPath("b"))), Not(Present(AttrPath("c"))))


def test_not() -> None:
    assert parse_filter('not (userName eq "x")') == Not(eq("username", "x"))
    assert parse_filter('not(userName eq "x")') == Not(eq("username", "x"))
    assert parse_filter("not (not (a pr))") == Not(Not(Present(AttrPath("a"))))


def test_rfc_examples() -> None:
    assert parse_filter(
        'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")'
    ) == And(
        eq("usertype", "Employee"),
        Or(Compare(AttrPath("emails"), "co", "example.com"),
           Compare(AttrPath("emails", "value"), "co", "example.org")),
    )
    assert parse_filter('meta.lastModified gt "2011-05-13T04:42:34Z"') == Compare(
        AttrPath("meta", "lastmodified"), "gt", "2011-05-13T04:42:34Z")
    assert parse_filter(
        'userType eq "Employee" and emails[type eq "work" and value co "@example.com"]'
    ) == And(
        eq("usertype", "Employee"),
        ValuePath(AttrPath("emails"), And(eq("type", "work"),
                                          Compare(AttrPath("value"), "co", "@example.com"))),
    )


def test_value_path_with_or_and_not_inside() -> None:
    assert parse_filter('emails[type eq "work" or not (primary eq true)]') == ValuePath(
        AttrPath("emails"), Or(eq("type", "work"), Not(eq("primary", True))))


def test_value_path_combined_with_logic() -> None:
    assert parse_filter('members[value eq "1"] or members[value eq "2"]') == Or(
        ValuePath(AttrPath("members"), eq("value", "1")),
        ValuePath(AttrPath("members"), eq("value", "2")))


def test_urn_prefixed_attribute() -> None:
    expr = parse_filter(f'{USER_URN}:userName eq "x"')
    assert expr == Compare(AttrPath("username", None, USER_URN.lower()), "eq", "x")
    expr = parse_filter(f'{USER_URN}:name.givenName sw "B"')
    assert expr == Compare(AttrPath("name", "givenname", USER_URN.lower()), "sw", "B")


def test_enterprise_extension_urn() -> None:
    urn = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    expr = parse_filter(f'{urn}:employeeNumber eq "7"')
    assert expr == Compare(AttrPath("employeenumber", None, urn.lower()), "eq", "7")


def test_whitespace_is_free() -> None:
    assert parse_filter('  userName   eq\t"x"  ') == eq("username", "x")
    assert parse_filter('( a pr )') == Present(AttrPath("a"))


def test_ref_attribute_name() -> None:
    assert parse_filter('members.$ref pr') == Present(AttrPath("members", "$ref"))


@pytest.mark.parametrize("text", [
    "", "   ", "userName", "userName eq", 'userName eq "x" and', 'userName xx "x"',
    'userName eq "unterminated', 'userName eq bare', "(a pr", "a pr)", "not a pr",
    "not (a pr", 'emails[type eq "work"', 'emails type eq "work"]', "a pr b pr",
    'emails[types[x eq "y"] ]', '"x" eq userName', "a.b.c pr", "a. pr", ".a pr",
    'a eq "x" or', "and a pr", "a eq 01", 'a eq "bad \\q escape"', "a eq 1.", "a eq tru",
    'a eq "ctl\x01"', "a ! pr", 'emails[type eq "w"].value eq "x"', 'name.given[x pr]',
    "a eq -", "a pr and", "()", "[]", f'{USER_URN}:emails[{USER_URN}:type pr]',
])
def test_invalid_filters(text: str) -> None:
    with pytest.raises(InvalidFilter):
        parse_filter(text)


def test_invalid_filter_is_an_invalid_value_with_a_reason() -> None:
    with pytest.raises(InvalidValue, match="operator"):
        parse_filter('userName xx "x"')


def test_length_limit() -> None:
    long_value = "x" * MAX_FILTER_LENGTH
    with pytest.raises(InvalidFilter, match="longer"):
        parse_filter(f'userName eq "{long_value}"')


def test_depth_limit_parentheses() -> None:
    ok = "(" * MAX_DEPTH + "a pr" + ")" * MAX_DEPTH
    assert parse_filter(ok) == Present(AttrPath("a"))
    deep = "(" * (MAX_DEPTH + 1) + "a pr" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(InvalidFilter, match="nested"):
        parse_filter(deep)


def test_depth_limit_not() -> None:
    deep = "not (" * (MAX_DEPTH + 1) + "a pr" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(InvalidFilter, match="nested"):
        parse_filter(deep)


def test_long_flat_chain_does_not_recurse() -> None:
    text = " or ".join(["a pr"] * 400)
    assert len(text) < MAX_FILTER_LENGTH
    assert isinstance(parse_filter(text), Or)


@given(st.text(max_size=200))
def test_arbitrary_text_parses_or_fails_cleanly(text: str) -> None:
    with contextlib.suppress(InvalidFilter):
        parse_filter(text)


@given(st.text(max_size=60).filter(lambda s: "\x00" not in s))
def test_any_string_round_trips_as_a_literal(value: str) -> None:
    import json

    expr = parse_filter(f"userName eq {json.dumps(value)}")
    assert expr == eq("username", value)


# PATCH paths


def test_patch_path_plain() -> None:
    assert parse_patch_path("userName") == PatchPath(AttrPath("username"))
    assert parse_patch_path("name.givenName") == PatchPath(AttrPath("name", "givenname"))


def test_patch_path_urn() -> None:
    assert parse_patch_path(f"{USER_URN}:name.familyName") == PatchPath(
        AttrPath("name", "familyname", USER_URN.lower()))


def test_patch_path_value_filter() -> None:
    assert parse_patch_path('members[value eq "2819c223"]') == PatchPath(
        AttrPath("members"), eq("value", "2819c223"))


def test_patch_path_value_filter_with_sub_attribute() -> None:
    assert parse_patch_path('emails[type eq "work"].value') == PatchPath(
        AttrPath("emails"), eq("type", "work"), "value")
    assert parse_patch_path('emails[type eq "work" and primary eq true].Display') == PatchPath(
        AttrPath("emails"), And(eq("type", "work"), eq("primary", True)), "display")


def test_patch_path_brackets_inside_string_value() -> None:
    assert parse_patch_path('members[value eq "a]b"]') == PatchPath(
        AttrPath("members"), eq("value", "a]b"))


@pytest.mark.parametrize("text", [
    "", "emails[", 'emails[type eq "work"', "emails[]", 'emails[type eq "work"]value',
    'emails[type eq "work"].', 'emails[type eq "work"].a.b', "name.given.x", "1abc",
    'name.givenName[type eq "x"]', 'emails[type eq "work"] extra', "emails[type zz 1]",
    'emails[x[y pr]]',
])
def test_invalid_patch_paths(text: str) -> None:
    with pytest.raises(InvalidPath):
        parse_patch_path(text)


def test_patch_path_length_limit() -> None:
    with pytest.raises(InvalidPath):
        parse_patch_path("a" * (MAX_FILTER_LENGTH + 1))

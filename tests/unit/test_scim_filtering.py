"""Filter semantics: the memory evaluator and the schema validation of filters."""

from __future__ import annotations

import pytest

from adapters.memory.filtering import matches
from domain.entities import Email, Group, GroupRef, Member, Name, User
from domain.errors import InvalidValue
from domain.filter_parser import InvalidFilter, parse_filter
from domain.scim.schema import GROUP, USER, validate_filter

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z

BARBARA = User(
    id="u-1",
    user_name="BJensen",
    external_id="Ext-1",
    display_name="Barbara Jensen",
    name=Name(formatted="Ms. Barbara J Jensen", given_name="Barbara", family_name="Jensen"),
    emails=(
        Email(value="bjensen@Example.com", type="work", primary=True),
        Email(value="babs@home.example", type="home"),
    ),
    active=True,
    groups=(GroupRef(value="g-Admins", display="Administrators"),),
    created=T0,
    last_modified=T0 + 60,
)
BARE = User(id="u-2", user_name="bare", created=T0, last_modified=T0)
ADMINS = Group(
    id="g-1", display_name="Administrators", external_id="E-1",
    members=(Member(value="u-1", display="BJensen"), Member(value="U-3", display="other")),
    created=T0, last_modified=T0,
)
EMPTY_GROUP = Group(id="g-2", display_name="Empty", created=T0, last_modified=T0)


def user_matches(text: str, user: User = BARBARA) -> bool:
    expr = parse_filter(text)
    validate_filter(expr, USER)
    return matches(expr, user)


def group_matches(text: str, group: Group = ADMINS) -> bool:
    expr = parse_filter(text)
    validate_filter(expr, GROUP)
    return matches(expr, group)


# Case-insensitive strings


@pytest.mark.parametrize(("text", "expected"), [
    ('userName eq "bjensen"', True), ('userName eq "BJENSEN"', True),
    ('userName eq "bjense"', False),
    ('userName ne "bjensen"', False), ('userName ne "other"', True),
    ('userName co "JENS"', True), ('userName co "x"', False), ('userName co ""', True),
    ('userName sw "bj"', True), ('userName sw "je"', False),
    ('userName ew "SEN"', True), ('userName ew "bj"', False),
    ('userName gt "bjensem"', True), ('userName gt "bjensen"', False),
    ('userName ge "BJENSEN"', True), ('userName ge "bjenseo"', False),
    ('userName lt "bjenseo"', True), ('userName lt "bjensen"', False),
    ('userName le "bjensen"', True), ('userName le "bjensem"', False),
    ('displayName co "barbara j"', True), ('userName pr', True),
])
def test_case_insensitive_string(text: str, expected: bool) -> None:
    assert user_matches(text) is expected


# Case-exact strings


@pytest.mark.parametrize(("text", "expected"), [
    ('id eq "u-1"', True), ('id eq "U-1"', False), ('externalId eq "Ext-1"', True),
    ('externalId eq "ext-1"', False), ('externalId co "xt"', True), ('externalId co "XT"', False),
    ('externalId sw "E"', True), ('externalId ew "1"', True), ('externalId gt "Ext-0"', True),
    ('externalId lt "Ext-0"', False), ('externalId ne "ext-1"', True),
])
def test_case_exact_string(text: str, expected: bool) -> None:
    assert user_matches(text) is expected


# Missing attributes


@pytest.mark.parametrize(("text", "expected"), [
    ('displayName eq "x"', False), ('displayName ne "x"', True), ('displayName co "x"', False),
    ('displayName gt "a"', False), ("displayName pr", False), ("displayName eq null", True),
    ("displayName ne null", False), ('externalId ne "x"', True), ('name.givenName eq "x"', False),
    ('name.givenName ne "x"', True), ("name pr", False), ("name.familyName pr", False),
    ('emails eq "x"', False), ('emails ne "x"', True), ("emails pr", False),
    ('emails[type eq "work"]', False), ('not (emails[type eq "work"])', True),
    ("groups pr", False), ('groups eq "g"', False), ('name[givenName eq "x"]', False),
    ('name[not (givenName eq "x")]', True),
])
def test_missing_attributes(text: str, expected: bool) -> None:
    assert user_matches(text, BARE) is expected


def test_empty_string_is_not_present() -> None:
    user = User(id="u", user_name="u", display_name="", created=T0, last_modified=T0)
    assert user_matches("displayName pr", user) is False
    assert user_matches("displayName eq null", user) is True


# Complex and multi-valued


@pytest.mark.parametrize(("text", "expected"), [
    ('name.givenName eq "barbara"', True), ('name.familyName sw "jen"', True),
    ('name eq "ms. barbara j jensen"', True), ('name.formatted co "J J"', True),
    ('name[givenName eq "Barbara" and familyName eq "jensen"]', True),
    ('name[givenName eq "Barbara" and familyName eq "x"]', False),
    ('emails eq "babs@home.example"', True), ('emails.value eq "BJENSEN@example.COM"', True),
    ('emails co "home"', True), ('emails.type eq "home"', True), ('emails.type eq "other"', False),
    ('emails ne "babs@home.example"', False), ('emails.value ew ".com"', True),
    ('emails[type eq "work" and value co "example.com"]', True),
    # any value matches each side, but no single value matches both:
    ('emails[type eq "home" and value co "example.com"]', False),
    ('emails.type eq "home" and emails.value co "example.com"', True),
    ('emails[type eq "home" or primary eq true]', True),
    ('emails[not (type eq "work")]', True),
    ("emails.primary eq true", True), ("emails[primary eq false]", True),
    ('emails[type eq "home" and primary eq true]', False),
    ('emails[type eq "home" and primary ne true]', True),
    ("emails pr", True), ("emails[type pr]", True), ("emails[value eq null]", False),
    ('groups eq "g-Admins"', True), ('groups eq "g-admins"', False),
    ('groups.display eq "administrators"', True), ('groups[display sw "ADMIN"]', True),
    ("groups pr", True),
])
def test_complex_and_multi_valued(text: str, expected: bool) -> None:
    assert user_matches(text) is expected


# Booleans


@pytest.mark.parametrize(("text", "expected"), [
    ("active eq true", True), ("active eq false", False), ("active ne false", True),
    ("active ne true", False), ("active pr", True), ("ACTIVE EQ TRUE", True),
])
def test_boolean(text: str, expected: bool) -> None:
    assert user_matches(text) is expected


def test_inactive_user() -> None:
    user = User(id="u", user_name="u", active=False, created=T0, last_modified=T0)
    assert user_matches("active eq false", user)
    assert not user_matches("active eq true", user)


# Timestamps


@pytest.mark.parametrize(("text", "expected"), [
    ('meta.created eq "2023-11-14T22:13:20Z"', True),
    ('meta.created eq "2023-11-14T23:13:20+01:00"', True),
    ('meta.created eq "2023-11-14T22:13:20"', True),  # naive means UTC
    ('meta.created eq "2023-11-14T22:13:21Z"', False),
    ('meta.created ne "2023-11-14T22:13:21Z"', True),
    ('meta.created gt "2023-11-14T22:13:19Z"', True),
    ('meta.created gt "2023-11-14T22:13:20Z"', False),
    ('meta.created ge "2023-11-14T22:13:20Z"', True),
    ('meta.created lt "2023-11-14T22:13:20.5Z"', True),
    ('meta.created le "2023-11-14T22:13:19.9Z"', False),
    ('meta.lastModified gt "2023-11-14T22:13:20Z"', True),
    ('meta.lastModified lt "2023-11-14T22:14:00Z"', False),
    # chronological, not lexicographic: 2024 in another zone is still later
    ('meta.lastModified lt "2023-11-15T01:00:00+05:00"', False),
    ("meta.created pr", True),
])
def test_timestamps(text: str, expected: bool) -> None:
    assert user_matches(text) is expected


# Logic


@pytest.mark.parametrize(("text", "expected"), [
    ('userName eq "bjensen" and active eq true', True),
    ('userName eq "bjensen" and active eq false', False),
    ('userName eq "x" or active eq true', True),
    ('userName eq "x" or active eq false', False),
    ('not (userName eq "x")', True), ('not (userName eq "bjensen")', False),
    ('userName eq "x" or userName eq "y" and active eq true', False),
    ('(userName eq "x" or userName eq "bjensen") and active eq true', True),
    ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bjensen"', True),
])
def test_logic(text: str, expected: bool) -> None:
    assert user_matches(text) is expected


# Groups


@pytest.mark.parametrize(("text", "expected"), [
    ('displayName eq "administrators"', True), ('displayName sw "Admin"', True),
    ('id eq "g-1"', True), ('externalId eq "e-1"', False), ('externalId eq "E-1"', True),
    ('members eq "u-1"', True), ('members eq "U-1"', False), ('members.value eq "U-3"', True),
    ('members[value eq "u-1"]', True), ('members[value eq "u-9"]', False),
    ('members.display eq "bjensen"', True), ('members[display co "OTH"]', True),
    ('members.type eq "user"', True), ("members pr", True), ('members ne "u-1"', False),
    ('meta.lastModified ge "2023-11-14T22:13:20Z"', True),
    ('urn:ietf:params:scim:schemas:core:2.0:Group:displayName pr', True),
])
def test_group_filters(text: str, expected: bool) -> None:
    assert group_matches(text) is expected


def test_empty_group() -> None:
    assert group_matches("members pr", EMPTY_GROUP) is False
    assert group_matches('members ne "u-1"', EMPTY_GROUP) is True
    assert group_matches("members eq null", EMPTY_GROUP) is True


# Validation


@pytest.mark.parametrize("text", [
    'foo eq "x"', 'name.nickName eq "x"', 'emails.display eq "x"', "meta pr",
    'meta.version eq "x"', "password pr", 'members eq "x"', "active gt true", "active co true",
    'active eq "true"', 'userName eq 1', "userName eq true", 'userName gt null',
    'meta.created co "2020"', 'meta.created eq "yesterday"', "meta.created gt 5",
    'urn:ietf:params:scim:schemas:core:2.0:Group:userName eq "x"',
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:badge eq "1"',
    'urn:ietf:params:scim:schemas:extension:other:2.0:User:department eq "1"',
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "1"',
    'manager.displayName eq "x"', 'manager.$ref pr', 'profileUrl pr', 'photos pr',
    'x509Certificates.value eq "x"', 'phoneNumbers.display eq "x"',
    'userName[value eq "x"]', 'emails.type[value eq "x"]', 'emails[foo eq "x"]',
    'emails[type.value eq "x"]', 'groups.$ref pr', 'emails[primary gt true]',
])
def test_user_validation_rejects(text: str) -> None:
    with pytest.raises(InvalidFilter):
        validate_filter(parse_filter(text), USER)


@pytest.mark.parametrize("text", [
    'userName eq "x"', 'active eq true', 'emails[type eq "x"]', 'members.$ref pr',
])
def test_group_validation_rejects_user_attributes(text: str) -> None:
    with pytest.raises(InvalidFilter):
        validate_filter(parse_filter(text), GROUP)


def test_evaluator_rejects_what_it_cannot_evaluate() -> None:
    # Even without the schema check, an ordering on a boolean is an error, not "false".
    with pytest.raises(InvalidValue):
        matches(parse_filter("active gt true"), BARBARA)
    with pytest.raises(InvalidValue):
        matches(parse_filter("nosuch pr"), BARBARA)


def test_evaluator_type_mismatch_on_equality_is_false() -> None:
    assert matches(parse_filter("userName eq 5"), BARBARA) is False
    assert matches(parse_filter('active eq "true"'), BARBARA) is False

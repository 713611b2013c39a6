"""SCIM filters pushed down into SQL: a fixed data set, filter trees, the ids they select."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.dialects.postgresql.base import PGDialect

from adapters.sql import SqlStore, open_sql_store
from adapters.sql.filtering import group_clause, user_clause
from adapters.testing.filter_agreement import GROUPS, USERS
from domain.errors import InvalidValue
from domain.filters import (
    And,
    AttrPath,
    Compare,
    CompareOp,
    Filter,
    ListQuery,
    Not,
    Or,
    Present,
    Scalar,
    ValuePath,
)
from tests.services.postgres_server import empty_migrated_database

pytestmark = pytest.mark.postgres

def c(path: str, op: CompareOp, value: Scalar) -> Compare:
    attr, _, sub = path.partition(".")
    return Compare(AttrPath(attr, sub or None), op, value)


def p(path: str) -> Present:
    attr, _, sub = path.partition(".")
    return Present(AttrPath(attr, sub or None))


USER_CASES: list[tuple[Filter, set[str]]] = [
    (c("username", "eq", "ALICE"), {"u1"}),
    (c("username", "eq", "émile"), {"u4"}),
    (c("username", "co", "_"), {"u2"}),
    (c("username", "co", "%"), {"u3"}),
    (c("username", "sw", "B"), {"u2"}),
    (c("username", "ew", "X"), {"u3"}),
    (c("username", "gt", "bob_smith"), {"u3", "u4"}),
    (c("username", "le", "bob_smith"), {"u1", "u2"}),
    (c("id", "eq", "u1"), {"u1"}),
    (c("id", "eq", "U1"), set()),
    (c("externalid", "eq", "ext-1"), {"u3"}),
    (Not(c("externalid", "eq", "EXT-1")), {"u2", "u3", "u4"}),
    (c("externalid", "ne", "EXT-1"), {"u2", "u3", "u4"}),
    (p("displayname"), {"u1", "u4"}),
    (Not(p("displayname")), {"u2", "u3"}),
    (c("displayname", "eq", None), {"u2", "u3"}),
    (c("displayname", "ne", None), {"u1", "u4"}),
    (c("displayname", "co", "lid"), {"u1"}),
    (Not(c("displayname", "co", "lid")), {"u2", "u3", "u4"}),
    (c("emails", "eq", "alice@HOME.org"), {"u1"}),
    (c("emails.value", "ew", ".example"), {"u4"}),
    (c("emails.type", "eq", "work"), {"u1"}),
    (ValuePath(AttrPath("emails"), And(c("type", "eq", "work"), c("value", "co", "home"))),
     set()),
    (ValuePath(AttrPath("emails"), And(c("type", "eq", "home"), c("value", "co", "home"))),
     {"u1"}),
    (ValuePath(AttrPath("emails"), c("primary", "eq", True)), {"u1"}),
    (c("emails.primary", "eq", False), {"u1", "u2", "u4"}),
    (Not(c("emails.type", "eq", "home")), {"u3", "u4"}),
    (ValuePath(AttrPath("emails"), Not(c("type", "eq", "home"))), {"u1", "u4"}),
    (p("emails"), {"u1", "u2", "u4"}),
    (p("emails.type"), {"u1", "u2"}),
    (c("active", "eq", False), {"u2"}),
    (c("active", "ne", True), {"u2"}),
    (c("meta.created", "gt", "2024-03-01T00:00:00Z"), {"u2", "u3"}),
    (c("meta.created", "ge", "2024-01-01T00:00:00Z"), {"u1", "u2", "u3"}),
    (c("meta.created", "lt", "2024-01-01T00:00:00.5Z"), {"u1", "u4"}),
    (c("meta.created", "eq", "2024-01-01T01:00:00+01:00"), {"u1"}),
    (c("meta.lastmodified", "le", "2023-12-31T00:00:00"), {"u4"}),
    (c("name.givenname", "eq", "alice"), {"u1"}),
    (c("name.formatted", "sw", "carol"), {"u3"}),
    (c("name", "sw", "carol"), {"u3"}),
    (ValuePath(AttrPath("name"), And(c("givenname", "eq", "ALICE"), p("familyname"))), {"u1"}),
    (c("groups", "eq", "g1"), {"u1", "u2"}),
    (c("groups.display", "eq", "STAFF"), {"u3"}),
    (Not(p("groups")), {"u4"}),
    (Or(c("username", "eq", "alice"), c("active", "eq", False)), {"u1", "u2"}),
    (And(c("username", "eq", "alice"), c("active", "eq", False)), set()),
    (c("username", "eq", 5), set()),
    (c("username", "ne", True), {"u1", "u2", "u3", "u4"}),
    (Compare(AttrPath("username", None, "urn:ietf:params:scim:schemas:core:2.0:user"),
             "eq", "alice"), {"u1"}),
]

GROUP_CASES: list[tuple[Filter, set[str]]] = [
    (c("displayname", "eq", "admins"), {"g1"}),
    (c("displayname", "sw", "E"), {"g3"}),
    (c("members", "eq", "u1"), {"g1"}),
    (c("members", "eq", "U1"), set()),
    (c("members.display", "eq", "CAROL%X"), {"g2"}),
    (Not(p("members")), {"g3"}),
    (ValuePath(AttrPath("members"), c("value", "eq", "u2")), {"g1"}),
    (c("members.type", "eq", "user"), {"g1", "g2"}),
    (c("externalid", "eq", "a"), set()),
    (c("externalid", "eq", "A"), {"g1"}),
    (c("externalid", "ne", "A"), {"g2", "g3"}),
    (c("meta.created", "eq", "1970-01-01T00:00:00Z"), {"g1", "g2", "g3"}),
]

INVALID: list[Filter] = [
    c("active", "gt", True),
    c("meta.created", "co", "2024"),
    c("meta.created", "eq", "not a date"),
    c("nosuch", "eq", "x"),
    c("emails.nosuch", "eq", "x"),
    ValuePath(AttrPath("username"), c("value", "eq", "x")),
    Compare(AttrPath("username", None, "urn:ietf:params:scim:schemas:extension:x"), "eq", "a"),
]


@pytest.fixture
async def store() -> AsyncIterator[SqlStore]:
    sql = await open_sql_store(await empty_migrated_database(), migrate=False)
    for user in USERS:
        await sql.create_user(user)
    for group in GROUPS:
        await sql.create_group(group)
    yield sql
    await sql.close()


async def test_every_user_filter_selects_the_expected_ids(store: SqlStore) -> None:
    failures = []
    for expr, expected in USER_CASES:
        page = await store.list_users(ListQuery(filter=expr, count=100))
        got = {u.id for u in page.items}
        if got != expected or page.total != len(expected):
            failures.append(f"{expr}: got {sorted(got)}, expected {sorted(expected)}")
    assert not failures, "\n".join(failures)


async def test_every_group_filter_selects_the_expected_ids(store: SqlStore) -> None:
    failures = []
    for expr, expected in GROUP_CASES:
        page = await store.list_groups(ListQuery(filter=expr, count=100))
        got = {g.id for g in page.items}
        if got != expected:
            failures.append(f"{expr}: got {sorted(got)}, expected {sorted(expected)}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("expr", INVALID, ids=str)
def test_impossible_filters_are_invalid_values(expr: Filter) -> None:
    with pytest.raises(InvalidValue):
        user_clause(expr)


def test_group_only_attributes_are_unknown_on_users() -> None:
    with pytest.raises(InvalidValue):
        user_clause(c("members", "eq", "u1"))
    with pytest.raises(InvalidValue):
        group_clause(c("username", "eq", "alice"))


def test_values_travel_as_bind_parameters_never_in_the_sql_text() -> None:
    hostile = "x' OR '1'='1"
    expr = Or(c("username", "co", hostile), c("emails.type", "eq", hostile))
    compiled = user_clause(expr).compile(dialect=PGDialect())  # type: ignore[no-untyped-call]
    assert hostile not in str(compiled)
    assert any(hostile in str(v) for v in compiled.params.values())


async def test_filter_paging_counts_every_match(store: SqlStore) -> None:
    page = await store.list_users(ListQuery(filter=p("emails"), start_index=2, count=1))
    assert page.total == 3
    assert [u.id for u in page.items] == ["u2"]

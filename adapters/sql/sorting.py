"""SCIM sorting (:class:`domain.filters.SortKey`) as ORDER BY clauses over ``users`` and
``groups``, with the semantics of ``domain.scim.sorting.sort_value`` (the contract suite
holds the two equal):

- case-insensitive strings order by ``lower()`` under the ICU root collation (the case
  folding of the filters) in code-point order (``COLLATE "C"``), case-exact ones by code
  point; an empty string counts as missing;
- ``emails`` sort by the primary address, else the first; ``groups`` by the group of the
  smallest id; ``members`` by the first member (``position``);
- missing values last ascending, first descending (PostgreSQL's own default for NULLs,
  spelled out); ties by ``id`` in code-point order; descending reverses all of it, so an
  index on ``(key, id)`` serves both directions.

The ``userName``, ``displayName`` and ``meta`` orders have indexes with exactly these
expressions (migration 0011), so a sorted page is read in index order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from adapters.sql.filtering import active_value, fold
from adapters.sql.tables import group_members, groups, users
from domain.errors import InvalidValue
from domain.filters import SortKey

_CODE_POINT = "C"
# A constant jsonpath (never user input): the first element whose primary is true.
_PRIMARY_EMAIL: ColumnElement[Any] = sa.literal_column("'$[*] ? (@.primary == true)'")

Expr = ColumnElement[Any]


def folded(expr: Expr, nullable: bool = True) -> Expr:
    """The case-insensitive sort key of a text expression."""
    inner = sa.func.nullif(expr, "") if nullable else expr
    return fold(inner).collate(_CODE_POINT)


def exact(expr: Expr) -> Expr:
    """The case-exact sort key of a nullable text expression."""
    return sa.func.nullif(expr, "").collate(_CODE_POINT)


def _email() -> Expr:
    chosen = sa.func.coalesce(
        sa.func.jsonb_path_query_first(users.c.emails, _PRIMARY_EMAIL),
        users.c.emails[0],
    )
    return sa.type_coerce(chosen, JSONB)


def _first_group(column: Callable[[Any, Any], Expr]) -> Expr:
    gm, g = group_members.alias("sort_gm"), groups.alias("sort_g")
    return (
        sa.select(column(gm, g))
        .select_from(gm.join(g, g.c.id == gm.c.group_id))
        .where(gm.c.user_id == users.c.id)
        .order_by(gm.c.group_id.collate(_CODE_POINT))
        .limit(1)
        .scalar_subquery()
    )


def _first_member(column: Callable[[Any, Any], Expr]) -> Expr:
    gm, u = group_members.alias("sort_gm"), users.alias("sort_u")
    return (
        sa.select(column(gm, u))
        .select_from(gm.join(u, u.c.id == gm.c.user_id))
        .where(gm.c.group_id == groups.c.id)
        .order_by(gm.c.position)
        .limit(1)
        .scalar_subquery()
    )


def _user_keys() -> dict[str, Callable[[], Expr]]:
    return {
        "id": lambda: users.c.id.collate(_CODE_POINT),
        "externalid": lambda: exact(users.c.external_id),
        "username": lambda: folded(users.c.user_name, nullable=False),
        "displayname": lambda: folded(users.c.display_name),
        "active": active_value,
        "name.formatted": lambda: folded(users.c.formatted_name),
        "name.givenname": lambda: folded(users.c.given_name),
        "name.familyname": lambda: folded(users.c.family_name),
        "emails.value": lambda: folded(_email()["value"].astext),
        "emails.type": lambda: folded(_email()["type"].astext),
        "emails.primary": lambda: sa.case(
            (sa.func.jsonb_array_length(users.c.emails) > 0,
             sa.func.coalesce(_email()["primary"].as_boolean(), sa.false())),
            else_=sa.null()),
        "groups.value": lambda: _first_group(lambda gm, g: gm.c.group_id).collate(_CODE_POINT),
        "groups.display": lambda: _first_group(
            lambda gm, g: folded(g.c.display_name, nullable=False)),
        "meta.created": lambda: users.c.created,
        "meta.lastmodified": lambda: users.c.last_modified,
    }


def _group_keys() -> dict[str, Callable[[], Expr]]:
    return {
        "id": lambda: groups.c.id.collate(_CODE_POINT),
        "externalid": lambda: exact(groups.c.external_id),
        "displayname": lambda: folded(groups.c.display_name, nullable=False),
        "members.value": lambda: _first_member(lambda gm, u: gm.c.user_id).collate(_CODE_POINT),
        "members.display": lambda: _first_member(
            lambda gm, u: folded(u.c.user_name, nullable=False)),
        "members.type": lambda: _first_member(lambda gm, u: folded(gm.c.member_type)),
        "meta.created": lambda: groups.c.created,
        "meta.lastmodified": lambda: groups.c.last_modified,
    }


_USER_KEYS = _user_keys()
_GROUP_KEYS = _group_keys()


def _order(keys: dict[str, Callable[[], Expr]], table: sa.Table,
           sort: SortKey | None) -> list[Expr]:
    by_id = table.c.id.collate(_CODE_POINT)
    if sort is None:
        return [by_id]
    build = keys.get(sort.path.dotted())
    if build is None:
        raise InvalidValue(f"cannot sort by {sort.path.dotted()}")
    key = build()
    if sort.descending:
        return [key.desc().nulls_first(), by_id.desc()]
    return [key.asc().nulls_last(), by_id.asc()]


def user_order(sort: SortKey | None) -> list[Expr]:
    """ORDER BY clauses for ``users`` (see the module docstring). Raises ``InvalidValue``."""
    return _order(_USER_KEYS, users, sort)


def group_order(sort: SortKey | None) -> list[Expr]:
    """ORDER BY clauses for ``groups`` (see the module docstring). Raises ``InvalidValue``."""
    return _order(_GROUP_KEYS, groups, sort)

"""SCIM filters (``domain.filters``) as SQL WHERE clauses over ``users`` and ``groups``.

The filter runs in PostgreSQL; no row is loaded just to be tested. Semantics (shared with
the memory evaluator, ``adapters.memory.filtering``):

- the attribute names are those of the memory evaluator (its docstring lists them: the
  core ones, the multi-valued ``phoneNumbers``, ``addresses``, ``photos`` and
  ``x509Certificates`` held as JSON arrays, the enterprise extension's columns);
- strings compare case-insensitively, except ``id``, ``externalId``, ``members.value``,
  ``groups.value`` and ``manager.value``; case folding is Unicode's (``lower`` under the
  ICU root collation), and ``gt``/``ge``/``lt``/``le`` order strings by code point, as
  Python does;
- ``co``/``sw``/``ew`` are substring, prefix and suffix matches (LIKE wildcards escaped);
- ``meta.created`` and ``meta.lastModified`` take an ISO 8601 value and compare as instants;
- booleans only take ``eq``/``ne``; ``pr`` means present and not empty;
- ``ne`` is exactly ``not eq``, and ``not`` is two-valued: a comparison on a missing value
  is false (never SQL NULL), so its negation is true;
- a comparison on a multi-valued attribute (``emails``, ``groups``, ``members``) holds when
  any value matches; ``attr[inner]`` holds when one value satisfies all of ``inner``;
- ``x eq null`` means ``not (x pr)`` and ``x ne null`` means ``x pr``.

Values always travel as bind parameters. Unknown attributes and impossible comparisons
raise :class:`~domain.errors.InvalidValue`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from adapters.sql.tables import group_members, groups, users
from domain.errors import InvalidValue
from domain.filters import (
    And,
    AttrPath,
    Compare,
    Filter,
    Not,
    Or,
    Present,
    Scalar,
    ValuePath,
)

Kind = Literal["ci", "exact", "bool", "time"]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:user"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user"

# Case folding that agrees with Python's str.lower(), whatever the database locale.
_FOLD_COLLATION = "und-x-icu"
# Code-point order, which is what Python's string comparison uses.
_ORDER_COLLATION = "C"


def fold(expr: ColumnElement[Any]) -> ColumnElement[str]:
    """``lower(expr)`` under the ICU root collation: the key of case-insensitive matching.

    The unique indexes on ``lower(user_name)`` and ``lower(display_name)`` are built on
    exactly this expression, so equality lookups use them.
    """
    return sa.func.lower(sa.type_coerce(expr, sa.Text).collate(_FOLD_COLLATION))


class _Scalar(NamedTuple):
    """A single value: its SQL expression, how it compares, and whether it may be NULL."""

    expr: ColumnElement[Any]
    kind: Kind
    nullable: bool


class _Resolver(Protocol):
    def __call__(self, path: AttrPath) -> _Scalar | _Multi: ...


class _Multi(NamedTuple):
    """A multi-valued (or complex) attribute.

    ``over(build)`` gives the condition "some value satisfies ``build(element)``", where
    ``element`` resolves the sub-attributes of one value.
    """

    over: Callable[[Callable[[_Resolver], ColumnElement[bool]]], ColumnElement[bool]]
    default_sub: str


def _invalid(message: str) -> InvalidValue:
    return InvalidValue(message)


def _check_schema(path: AttrPath, schema: str) -> None:
    if path.schema is not None and path.schema != schema:
        raise _invalid(f"unsupported schema in filter: {path.schema}")


# Users


def active_value() -> ColumnElement[Any]:
    """``users.active`` as SCIM sees it: NULL when unassigned (``active_assigned`` false)."""
    return sa.case((users.c.active_assigned, users.c.active), else_=sa.null())


def _email_element(element: Any) -> _Resolver:
    value = element.c.value

    def resolve(path: AttrPath) -> _Scalar | _Multi:
        if path.sub_attr is not None:
            raise _invalid(f"unknown attribute emails.{path.dotted()}")
        if path.attr == "value":
            return _Scalar(value["value"].astext, "ci", True)
        if path.attr == "type":
            return _Scalar(value["type"].astext, "ci", True)
        if path.attr == "primary":
            return _Scalar(
                sa.func.coalesce(value["primary"].as_boolean(), sa.false()), "bool", False
            )
        raise _invalid(f"unknown attribute emails.{path.attr}")

    return resolve


def _user_emails() -> _Multi:
    def over(build: Callable[[_Resolver], ColumnElement[bool]]) -> ColumnElement[bool]:
        element = (
            sa.func.jsonb_array_elements(users.c.emails)
            .table_valued(sa.column("value", JSONB))
            .alias("email")
        )
        return sa.exists().select_from(element).where(build(_email_element(element)))

    return _Multi(over, "value")


def _json_element(attribute: str, keys: dict[str, tuple[str, Kind]]) -> Callable[[Any], _Resolver]:
    """Sub-attributes of one value of a JSON array column: filter name to (key, kind)."""

    def element_of(element: Any) -> _Resolver:
        value = element.c.value

        def resolve(path: AttrPath) -> _Scalar | _Multi:
            found = keys.get(path.attr) if path.sub_attr is None else None
            if found is None:
                raise _invalid(f"unknown attribute {attribute}.{path.dotted()}")
            key, kind = found
            if kind == "bool":
                return _Scalar(
                    sa.func.coalesce(value[key].as_boolean(), sa.false()), "bool", False)
            return _Scalar(value[key].astext, kind, True)

        return resolve

    return element_of


def _json_array(column: Any, element_of: Callable[[Any], _Resolver], default: str) -> _Multi:
    def over(build: Callable[[_Resolver], ColumnElement[bool]]) -> ColumnElement[bool]:
        element = (
            sa.func.jsonb_array_elements(column)
            .table_valued(sa.column("value", JSONB))
            .alias("item")
        )
        return sa.exists().select_from(element).where(build(element_of(element)))

    return _Multi(over, default)


_TYPED: dict[str, tuple[str, Kind]] = {"type": ("type", "ci"), "primary": ("primary", "bool")}
_PHONE = _json_element("phoneNumbers", {"value": ("value", "ci"), **_TYPED})
_ADDRESS = _json_element("addresses", {
    "formatted": ("formatted", "ci"),
    "streetaddress": ("street_address", "ci"),
    "locality": ("locality", "ci"),
    "region": ("region", "ci"),
    "postalcode": ("postal_code", "ci"),
    "country": ("country", "ci"),
    **_TYPED,
})
_PHOTO = _json_element("photos", _TYPED)
_CERTIFICATE = _json_element("x509Certificates", _TYPED)

_ENTERPRISE_COLUMNS = {
    "employeenumber": users.c.employee_number,
    "costcenter": users.c.cost_center,
    "organization": users.c.organization,
    "division": users.c.division,
    "department": users.c.department,
}


def _manager_part(path: AttrPath) -> _Scalar | _Multi:
    if path.sub_attr is None and path.attr == "value":
        return _Scalar(users.c.manager_id, "exact", True)
    raise _invalid(f"unknown attribute manager.{path.dotted()}")


def _manager(build: Callable[[_Resolver], ColumnElement[bool]]) -> ColumnElement[bool]:
    return build(_manager_part)


def _resolve_enterprise(path: AttrPath) -> _Scalar | _Multi:
    attr, sub = path.attr, path.sub_attr
    if sub is None and attr in _ENTERPRISE_COLUMNS:
        return _Scalar(_ENTERPRISE_COLUMNS[attr], "ci", True)
    if attr == "manager":
        if sub is None:
            return _Multi(_manager, "value")
        return _manager_part(AttrPath(sub))
    raise _invalid(f"unknown attribute {path.dotted()}")


def _user_groups() -> _Multi:
    def over(build: Callable[[_Resolver], ColumnElement[bool]]) -> ColumnElement[bool]:
        gm = group_members.alias("ug_member")
        g = groups.alias("ug_group")

        def resolve(path: AttrPath) -> _Scalar | _Multi:
            if path.sub_attr is None and path.attr == "value":
                return _Scalar(gm.c.group_id, "exact", False)
            if path.sub_attr is None and path.attr == "display":
                return _Scalar(g.c.display_name, "ci", False)
            raise _invalid(f"unknown attribute groups.{path.dotted()}")

        return (
            sa.exists()
            .select_from(gm.join(g, g.c.id == gm.c.group_id))
            .where(gm.c.user_id == users.c.id, build(resolve))
        )

    return _Multi(over, "value")


def _user_name_part(path: AttrPath) -> _Scalar | _Multi:
    if path.sub_attr is None:
        column = {
            "givenname": users.c.given_name,
            "familyname": users.c.family_name,
            "formatted": users.c.formatted_name,
            "middlename": users.c.middle_name,
            "honorificprefix": users.c.honorific_prefix,
            "honorificsuffix": users.c.honorific_suffix,
        }.get(path.attr)
        if column is not None:
            return _Scalar(column, "ci", True)
    raise _invalid(f"unknown attribute name.{path.dotted()}")


def _single(build: Callable[[_Resolver], ColumnElement[bool]]) -> ColumnElement[bool]:
    return build(_user_name_part)


def resolve_user(path: AttrPath) -> _Scalar | _Multi:
    """The SQL form of a user attribute (see the module docstring for the names)."""
    if path.schema == ENTERPRISE_SCHEMA or (
        path.schema is None and (path.attr in _ENTERPRISE_COLUMNS or path.attr == "manager")
    ):
        return _resolve_enterprise(path)
    _check_schema(path, USER_SCHEMA)
    attr, sub = path.attr, path.sub_attr
    if sub is None:
        simple: dict[str, _Scalar] = {
            "id": _Scalar(users.c.id, "exact", False),
            "externalid": _Scalar(users.c.external_id, "exact", True),
            "username": _Scalar(users.c.user_name, "ci", False),
            "displayname": _Scalar(users.c.display_name, "ci", True),
            "active": _Scalar(active_value(), "bool", True),
            "nickname": _Scalar(users.c.nick_name, "ci", True),
            "title": _Scalar(users.c.title, "ci", True),
            "usertype": _Scalar(users.c.user_type, "ci", True),
            "preferredlanguage": _Scalar(users.c.preferred_language, "ci", True),
            "locale": _Scalar(users.c.locale, "ci", True),
            "timezone": _Scalar(users.c.timezone, "ci", True),
        }
        if attr in simple:
            return simple[attr]
    if attr == "name":
        if sub is None:
            return _Multi(_single, "formatted")
        return _user_name_part(AttrPath(sub))
    if attr == "meta":
        meta = {"created": users.c.created, "lastmodified": users.c.last_modified}
        if sub in meta:
            return _Scalar(meta[sub], "time", False)
    if attr == "emails":
        return _with_sub(_user_emails(), sub)
    if attr == "groups":
        return _with_sub(_user_groups(), sub)
    arrays = {
        "phonenumbers": (users.c.phone_numbers, _PHONE, "value"),
        "addresses": (users.c.addresses, _ADDRESS, "formatted"),
        "photos": (users.c.photos, _PHOTO, "type"),
        "x509certificates": (users.c.x509_certificates, _CERTIFICATE, "type"),
    }
    if attr in arrays:
        column, element_of, default = arrays[attr]
        return _with_sub(_json_array(column, element_of, default), sub)
    raise _invalid(f"unknown attribute {path.dotted()}")


# Groups


def _group_members() -> _Multi:
    def over(build: Callable[[_Resolver], ColumnElement[bool]]) -> ColumnElement[bool]:
        gm = group_members.alias("gm_member")
        u = users.alias("gm_user")

        def resolve(path: AttrPath) -> _Scalar | _Multi:
            if path.sub_attr is None and path.attr == "value":
                return _Scalar(gm.c.user_id, "exact", False)
            if path.sub_attr is None and path.attr == "display":
                return _Scalar(u.c.user_name, "ci", False)
            if path.sub_attr is None and path.attr == "type":
                return _Scalar(gm.c.member_type, "ci", False)
            raise _invalid(f"unknown attribute members.{path.dotted()}")

        return (
            sa.exists()
            .select_from(gm.join(u, u.c.id == gm.c.user_id))
            .where(gm.c.group_id == groups.c.id, build(resolve))
        )

    return _Multi(over, "value")


def resolve_group(path: AttrPath) -> _Scalar | _Multi:
    """The SQL form of a group attribute (see the module docstring for the names)."""
    _check_schema(path, GROUP_SCHEMA)
    attr, sub = path.attr, path.sub_attr
    if sub is None:
        simple: dict[str, _Scalar] = {
            "id": _Scalar(groups.c.id, "exact", False),
            "externalid": _Scalar(groups.c.external_id, "exact", True),
            "displayname": _Scalar(groups.c.display_name, "ci", False),
        }
        if attr in simple:
            return simple[attr]
    if attr == "meta":
        meta = {"created": groups.c.created, "lastmodified": groups.c.last_modified}
        if sub in meta:
            return _Scalar(meta[sub], "time", False)
    if attr == "members":
        return _with_sub(_group_members(), sub)
    raise _invalid(f"unknown attribute {path.dotted()}")


def _with_sub(multi: _Multi, sub: str | None) -> _Multi:
    # The sub-attribute is remembered as the default one, for comparisons on this path.
    return multi._replace(default_sub=sub or multi.default_sub)


# Translation


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _parse_instant(value: Scalar) -> int | float:
    if not isinstance(value, str):
        raise _invalid("a date-time attribute compares only with an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _invalid(f"not an ISO 8601 date-time: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = moment.timestamp()
    return int(seconds) if seconds.is_integer() else seconds


def _present(scalar: _Scalar) -> ColumnElement[bool]:
    if scalar.kind in ("ci", "exact"):
        return sa.and_(scalar.expr.is_not(None), scalar.expr != "")
    return scalar.expr.is_not(None) if scalar.nullable else sa.true()


def _not_null(condition: ColumnElement[bool], scalar: _Scalar) -> ColumnElement[bool]:
    # Two-valued logic: a comparison with a NULL is false, never unknown, so NOT is true.
    return sa.func.coalesce(condition, sa.false()) if scalar.nullable else condition


def _compare_scalar(scalar: _Scalar, op: str, value: Scalar) -> ColumnElement[bool]:
    if op == "ne":
        return sa.not_(_compare_scalar(scalar, "eq", value))
    if value is None:
        if op == "eq":
            return sa.not_(_present(scalar))
        raise _invalid(f"'{op}' cannot compare with null")
    if scalar.kind == "bool":
        if op != "eq":
            raise _invalid(f"'{op}' does not apply to a boolean attribute")
        if not isinstance(value, bool):
            return sa.false()
        # A missing boolean reads as false, as in the memory evaluator.
        flag = sa.func.coalesce(scalar.expr, sa.false()) if scalar.nullable else scalar.expr
        return flag == sa.literal(value, sa.Boolean)
    if scalar.kind == "time":
        instant = _parse_instant(value)
        if op in ("co", "sw", "ew"):
            raise _invalid(f"'{op}' does not apply to a date-time attribute")
        column: ColumnElement[Any] = scalar.expr
        bound: ColumnElement[Any]
        if isinstance(instant, int):
            bound = sa.literal(instant, sa.BigInteger)
        else:
            column = sa.cast(column, sa.Float)
            bound = sa.literal(instant, sa.Float)
        return _not_null(_ordered(column, op, bound), scalar)
    if not isinstance(value, str) or isinstance(value, bool):
        # A string attribute never equals a number or a boolean.
        if op in ("eq", "co", "sw", "ew"):
            return sa.false()
        raise _invalid(f"'{op}' on a string attribute needs a string value")
    left: ColumnElement[Any]
    right: ColumnElement[Any]
    if scalar.kind == "ci":
        left, right = fold(scalar.expr), fold(sa.literal(value, sa.Text))
    else:
        left, right = scalar.expr, sa.literal(value, sa.Text)
    if op in ("co", "sw", "ew"):
        escaped = _escape_like(value)
        pattern = {"co": f"%{escaped}%", "sw": f"{escaped}%", "ew": f"%{escaped}"}[op]
        right = sa.literal(pattern, sa.Text)
        if scalar.kind == "ci":
            right = fold(right)
        else:
            left = left.collate(_ORDER_COLLATION)
        return _not_null(left.like(right, escape="\\"), scalar)
    if op == "eq":
        return _not_null(left == right, scalar)
    return _not_null(
        _ordered(left.collate(_ORDER_COLLATION), op, right.collate(_ORDER_COLLATION)), scalar
    )


def _ordered(left: ColumnElement[Any], op: str, right: ColumnElement[Any]) -> ColumnElement[bool]:
    if op == "eq":
        return left == right
    if op == "gt":
        return left > right
    if op == "ge":
        return left >= right
    if op == "lt":
        return left < right
    if op == "le":
        return left <= right
    raise _invalid(f"unknown comparison operator {op!r}")


def _compare(resolve: _Resolver, expr: Compare) -> ColumnElement[bool]:
    target = resolve(expr.path)
    if isinstance(target, _Scalar):
        return _compare_scalar(target, expr.op, expr.value)
    if expr.op == "ne":
        return sa.not_(_compare(resolve, Compare(expr.path, "eq", expr.value)))
    if expr.value is None and expr.op == "eq":
        return sa.not_(_clause(resolve, Present(expr.path)))
    sub = AttrPath(target.default_sub)
    return target.over(lambda element: _compare(element, Compare(sub, expr.op, expr.value)))


def _clause(resolve: _Resolver, expr: Filter) -> ColumnElement[bool]:
    if isinstance(expr, Compare):
        return _compare(resolve, expr)
    if isinstance(expr, Present):
        target = resolve(expr.path)
        if isinstance(target, _Scalar):
            return _present(target)
        sub = AttrPath(target.default_sub)
        return target.over(lambda element: _clause(element, Present(sub)))
    if isinstance(expr, And):
        return sa.and_(_clause(resolve, expr.left), _clause(resolve, expr.right))
    if isinstance(expr, Or):
        return sa.or_(_clause(resolve, expr.left), _clause(resolve, expr.right))
    if isinstance(expr, Not):
        return sa.not_(_clause(resolve, expr.inner))
    if isinstance(expr, ValuePath):
        target = resolve(AttrPath(expr.path.attr, None, expr.path.schema))
        if isinstance(target, _Scalar) or expr.path.sub_attr is not None:
            raise _invalid(f"{expr.path.dotted()} is not a multi-valued or complex attribute")
        inner = expr.inner
        return target.over(lambda element: _clause(element, inner))
    raise _invalid(f"unsupported filter node {type(expr).__name__}")


def user_clause(expr: Filter) -> ColumnElement[bool]:
    """A WHERE clause over ``users`` equivalent to the SCIM filter. Raises ``InvalidValue``."""
    return _clause(resolve_user, expr)


def group_clause(expr: Filter) -> ColumnElement[bool]:
    """A WHERE clause over ``groups`` equivalent to the SCIM filter. Raises ``InvalidValue``."""
    return _clause(resolve_group, expr)

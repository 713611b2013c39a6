"""Evaluation of a SCIM filter (``domain.filters``) against a User or Group, for the memory adapter.

The semantics (the sql adapter, ``adapters.sql.filtering``, implements the same ones, and
tests compare the two):

- Attribute names arrive lower-cased. Users: ``id``, ``externalid``, ``username``,
  ``displayname``, ``name`` (bare means ``name.formatted``), ``name.givenname``,
  ``name.familyname``, ``name.formatted``, ``emails`` (``value``, ``type``, ``primary``;
  bare means ``emails.value``), ``active``, ``groups`` (``value``, ``display``; bare means
  ``value``), ``meta.created``, ``meta.lastmodified``. Groups: ``id``, ``externalid``,
  ``displayname``, ``members`` (``value``, ``display``, ``type``; bare means ``value``),
  ``meta.created``, ``meta.lastmodified``. A schema prefix must be the resource's own.
- Strings compare case-insensitively (``str.lower()``), except ``id``, ``externalId``,
  ``members.value`` and ``groups.value``, which are case-exact. ``co``/``sw``/``ew`` are
  substring, prefix and suffix tests; ``gt``/``ge``/``lt``/``le`` order strings by code
  point (after lower-casing when case-insensitive).
- ``meta.created``/``meta.lastmodified`` take an ISO 8601 string (naive means UTC) and
  compare chronologically; ``co``/``sw``/``ew`` on them are invalid.
- Booleans (``active``, ``emails.primary``) take only ``eq`` and ``ne`` with ``true`` or
  ``false``; a missing ``primary`` reads as false. Ordering operators on them are invalid.
- ``pr`` means present and non-empty (an empty string is absent). ``eq null`` is
  ``not pr``, ``ne null`` is ``pr``.
- A comparison on a missing value is false, and ``ne`` is exactly ``not eq``, so a missing
  attribute satisfies every ``ne``. A string attribute never equals a number or boolean.
- Multi-valued attributes: a comparison holds when any value matches;
  ``emails[type eq "work" and value co "@x"]`` holds when one single value satisfies the
  whole inner filter.

What cannot be evaluated raises :class:`~domain.errors.InvalidValue`; the use cases reject
such filters earlier with ``InvalidFilter`` (``domain.scim.schema.validate_filter``).
Filters are compiled once into closures (cached), so a list only runs the closures.
"""

from __future__ import annotations

from functools import lru_cache
from operator import attrgetter

from domain.entities import Group, Name, User
from domain.errors import InvalidValue
from domain.filters import AttrPath, Filter
from domain.scim.evaluation import (
    MultiTarget,
    Predicate,
    Resolver,
    ScalarTarget,
    compile_filter,
)

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:user"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:group"

_NO_NAME = Name()


def _element_resolver(attribute: str, fields: dict[str, ScalarTarget]) -> Resolver:
    def resolve(path: AttrPath) -> ScalarTarget | MultiTarget:
        target = fields.get(path.attr) if path.sub_attr is None and path.schema is None else None
        if target is None:
            raise InvalidValue(f"unknown attribute {attribute}.{path.dotted()}")
        return target

    return resolve


_EMAIL = _element_resolver("emails", {
    "value": ScalarTarget(attrgetter("value"), "ci"),
    "type": ScalarTarget(attrgetter("type"), "ci"),
    "primary": ScalarTarget(attrgetter("primary"), "bool"),
})
_GROUP_REF = _element_resolver("groups", {
    "value": ScalarTarget(attrgetter("value"), "exact"),
    "display": ScalarTarget(attrgetter("display"), "ci"),
})
_MEMBER = _element_resolver("members", {
    "value": ScalarTarget(attrgetter("value"), "exact"),
    "display": ScalarTarget(attrgetter("display"), "ci"),
    "type": ScalarTarget(attrgetter("type"), "ci"),
})
_NAME = _element_resolver("name", {
    "givenname": ScalarTarget(attrgetter("given_name"), "ci"),
    "familyname": ScalarTarget(attrgetter("family_name"), "ci"),
    "formatted": ScalarTarget(attrgetter("formatted"), "ci"),
})


def _name_values(user: User) -> tuple[Name]:
    # Always one value, so that a missing name behaves like one with every part missing.
    return (user.name or _NO_NAME,)


_USER_SCALARS = {
    "id": ScalarTarget(attrgetter("id"), "exact"),
    "externalid": ScalarTarget(attrgetter("external_id"), "exact"),
    "username": ScalarTarget(attrgetter("user_name"), "ci"),
    "displayname": ScalarTarget(attrgetter("display_name"), "ci"),
    "active": ScalarTarget(attrgetter("active"), "bool"),
}
_USER_MULTI = {
    "name": MultiTarget(_name_values, _NAME, "formatted"),
    "emails": MultiTarget(attrgetter("emails"), _EMAIL, "value"),
    "groups": MultiTarget(attrgetter("groups"), _GROUP_REF, "value"),
}
_GROUP_SCALARS = {
    "id": ScalarTarget(attrgetter("id"), "exact"),
    "externalid": ScalarTarget(attrgetter("external_id"), "exact"),
    "displayname": ScalarTarget(attrgetter("display_name"), "ci"),
}
_GROUP_MULTI = {
    "members": MultiTarget(attrgetter("members"), _MEMBER, "value"),
}
_META = {
    "created": ScalarTarget(attrgetter("created"), "time"),
    "lastmodified": ScalarTarget(attrgetter("last_modified"), "time"),
}


def _resolver(
    schema: str, scalars: dict[str, ScalarTarget], multi: dict[str, MultiTarget]
) -> Resolver:
    def resolve(path: AttrPath) -> ScalarTarget | MultiTarget:
        if path.schema is not None and path.schema != schema:
            raise InvalidValue(f"unsupported schema in filter: {path.schema}")
        attr, sub = path.attr, path.sub_attr
        if sub is None and attr in scalars:
            return scalars[attr]
        if attr == "meta" and sub in _META:
            return _META[sub]
        target = multi.get(attr)
        if target is not None:
            if sub is None:
                return target
            # ``emails.type`` compares the ``type`` of each value.
            target.resolve(AttrPath(sub))
            return target._replace(default_sub=sub)
        raise InvalidValue(f"unknown attribute {path.dotted()}")

    return resolve


_RESOLVE_USER = _resolver(USER_SCHEMA, _USER_SCALARS, _USER_MULTI)
_RESOLVE_GROUP = _resolver(GROUP_SCHEMA, _GROUP_SCALARS, _GROUP_MULTI)


@lru_cache(maxsize=256)
def compile_user_filter(expr: Filter) -> Predicate:
    """A predicate over :class:`User` equivalent to ``expr``. Raises ``InvalidValue``."""
    return compile_filter(expr, _RESOLVE_USER)


@lru_cache(maxsize=256)
def compile_group_filter(expr: Filter) -> Predicate:
    """A predicate over :class:`Group` equivalent to ``expr``. Raises ``InvalidValue``."""
    return compile_filter(expr, _RESOLVE_GROUP)


def matches(expr: Filter, resource: User | Group) -> bool:
    """True when ``resource`` satisfies ``expr`` (see the module docstring for the rules)."""
    if isinstance(resource, User):
        return compile_user_filter(expr)(resource)
    return compile_group_filter(expr)(resource)

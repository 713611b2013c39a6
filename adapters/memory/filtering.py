"""Evaluation of a SCIM filter (``domain.filters``) against a User or Group, for the memory adapter.

The semantics (the sql adapter, ``adapters.sql.filtering``, implements the same ones, and
tests compare the two):

- Attribute names arrive lower-cased. Users: ``id``, ``externalid``, ``username``,
  ``displayname``, ``name`` (bare means ``name.formatted``), ``name.givenname``,
  ``name.familyname``, ``name.formatted``, ``name.middlename``, ``name.honorificprefix``,
  ``name.honorificsuffix``, ``emails`` (``value``, ``type``, ``primary``; bare means
  ``emails.value``), ``active``, ``groups`` (``value``, ``display``; bare means ``value``),
  ``meta.created``, ``meta.lastmodified``, ``nickname``, ``title``, ``usertype``,
  ``preferredlanguage``, ``locale``, ``timezone``, ``phonenumbers`` (``value``, ``type``,
  ``primary``), ``addresses`` (``formatted``, ``streetaddress``, ``locality``, ``region``,
  ``postalcode``, ``country``, ``type``, ``primary``; bare means ``formatted``),
  ``photos`` and ``x509certificates`` (``type``, ``primary``), and in the enterprise
  extension (its URN prefix, or none) ``employeenumber``, ``costcenter``,
  ``organization``, ``division``, ``department`` and ``manager.value``. Groups: ``id``,
  ``externalid``, ``displayname``, ``members`` (``value``, ``display``, ``type``; bare
  means ``value``), ``meta.created``, ``meta.lastmodified``. A schema prefix must be the
  resource's own (or, for users, the enterprise extension's).
- Strings compare case-insensitively (``str.lower()``), except ``id``, ``externalId``,
  ``members.value``, ``groups.value`` and ``manager.value``, which are case-exact.
  ``co``/``sw``/``ew`` are substring, prefix and suffix tests; ``gt``/``ge``/``lt``/``le``
  order strings by code point (after lower-casing when case-insensitive).
- ``meta.created``/``meta.lastmodified`` take an ISO 8601 string (naive means UTC) and
  compare chronologically; ``co``/``sw``/``ew`` on them are invalid.
- Booleans (``active``, ``*.primary``) take only ``eq`` and ``ne`` with ``true`` or
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

from domain.entities import EnterpriseUser, Group, Name, User
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
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user"

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
    "middlename": ScalarTarget(attrgetter("middle_name"), "ci"),
    "honorificprefix": ScalarTarget(attrgetter("honorific_prefix"), "ci"),
    "honorificsuffix": ScalarTarget(attrgetter("honorific_suffix"), "ci"),
})
_TYPED = {
    "type": ScalarTarget(attrgetter("type"), "ci"),
    "primary": ScalarTarget(attrgetter("primary"), "bool"),
}
_PHONE = _element_resolver("phoneNumbers", {
    "value": ScalarTarget(attrgetter("value"), "ci"), **_TYPED})
_PHOTO = _element_resolver("photos", _TYPED)
_CERTIFICATE = _element_resolver("x509Certificates", _TYPED)
_ADDRESS = _element_resolver("addresses", {
    "formatted": ScalarTarget(attrgetter("formatted"), "ci"),
    "streetaddress": ScalarTarget(attrgetter("street_address"), "ci"),
    "locality": ScalarTarget(attrgetter("locality"), "ci"),
    "region": ScalarTarget(attrgetter("region"), "ci"),
    "postalcode": ScalarTarget(attrgetter("postal_code"), "ci"),
    "country": ScalarTarget(attrgetter("country"), "ci"),
    **_TYPED,
})
_MANAGER = _element_resolver("manager", {"value": ScalarTarget(attrgetter("value"), "exact")})
_NO_ENTERPRISE = EnterpriseUser()


def _name_values(user: User) -> tuple[Name]:
    # Always one value, so that a missing name behaves like one with every part missing.
    return (user.name or _NO_NAME,)


def _enterprise(field: str) -> ScalarTarget:
    read = attrgetter(field)
    return ScalarTarget(lambda user: read(user.enterprise or _NO_ENTERPRISE), "ci")


def _manager_values(user: User) -> tuple[object, ...]:
    manager = user.enterprise.manager if user.enterprise is not None else None
    return () if manager is None else (manager,)


_USER_SCALARS = {
    "id": ScalarTarget(attrgetter("id"), "exact"),
    "externalid": ScalarTarget(attrgetter("external_id"), "exact"),
    "username": ScalarTarget(attrgetter("user_name"), "ci"),
    "displayname": ScalarTarget(attrgetter("display_name"), "ci"),
    "active": ScalarTarget(attrgetter("active"), "bool"),
    "nickname": ScalarTarget(attrgetter("nick_name"), "ci"),
    "title": ScalarTarget(attrgetter("title"), "ci"),
    "usertype": ScalarTarget(attrgetter("user_type"), "ci"),
    "preferredlanguage": ScalarTarget(attrgetter("preferred_language"), "ci"),
    "locale": ScalarTarget(attrgetter("locale"), "ci"),
    "timezone": ScalarTarget(attrgetter("timezone"), "ci"),
}
_USER_MULTI = {
    "name": MultiTarget(_name_values, _NAME, "formatted"),
    "emails": MultiTarget(attrgetter("emails"), _EMAIL, "value"),
    "groups": MultiTarget(attrgetter("groups"), _GROUP_REF, "value"),
    "phonenumbers": MultiTarget(attrgetter("phone_numbers"), _PHONE, "value"),
    "addresses": MultiTarget(attrgetter("addresses"), _ADDRESS, "formatted"),
    "photos": MultiTarget(attrgetter("photos"), _PHOTO, "type"),
    "x509certificates": MultiTarget(attrgetter("x509_certificates"), _CERTIFICATE, "type"),
}
_ENTERPRISE_SCALARS = {
    "employeenumber": _enterprise("employee_number"),
    "costcenter": _enterprise("cost_center"),
    "organization": _enterprise("organization"),
    "division": _enterprise("division"),
    "department": _enterprise("department"),
}
_ENTERPRISE_MULTI = {"manager": MultiTarget(_manager_values, _MANAGER, "value")}
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


_RESOLVE_CORE_USER = _resolver(USER_SCHEMA, _USER_SCALARS, _USER_MULTI)
_RESOLVE_ENTERPRISE = _resolver(ENTERPRISE_SCHEMA, _ENTERPRISE_SCALARS, _ENTERPRISE_MULTI)


def _resolve_user(path: AttrPath) -> ScalarTarget | MultiTarget:
    # Enterprise attributes by their URN, or bare (no core attribute shares their names).
    if path.schema == ENTERPRISE_SCHEMA or (
        path.schema is None and (path.attr in _ENTERPRISE_SCALARS
                                 or path.attr in _ENTERPRISE_MULTI)
    ):
        return _RESOLVE_ENTERPRISE(path)
    return _RESOLVE_CORE_USER(path)


_RESOLVE_USER = _resolve_user
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

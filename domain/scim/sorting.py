"""Sorting (RFC 7644 section 3.4.2.3): ``sortBy``/``sortOrder`` read into a
:class:`~domain.filters.SortKey`, and the value an entity sorts by.

:func:`sort_value` is the reference semantics (see ``SortKey``): the memory adapter sorts
with it, root searches merge users and groups with it, and the sql adapter orders by SQL
expressions that the contract suite holds equal to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from domain.entities import Email, Group, User
from domain.errors import InvalidValue
from domain.filter_parser import parse_attr_path
from domain.filters import SortKey
from domain.scim.schema import ResourceSchema, sort_target

#: What an entity sorts by: a lower-cased or exact string, Unix seconds, a boolean, or None.
SortValue = str | int | bool | None

_E = TypeVar("_E", User, Group)


def read_sort(sort_by: str | None, sort_order: str | None,
              resource: ResourceSchema) -> SortKey | None:
    """The checked sort of a request, None without ``sortBy``. ``sortOrder`` is
    ``ascending`` (the default) or ``descending``, in any case; anything else, or a ``sortBy``
    that names no sortable attribute, raises ``InvalidValue``."""
    order = (sort_order or "").strip().lower()
    if order not in ("", "ascending", "descending"):
        raise InvalidValue("sortOrder must be ascending or descending")
    if sort_by is None or not sort_by.strip():
        return None
    path, _ = sort_target(parse_attr_path(sort_by.strip(), InvalidValue), resource)
    return SortKey(path=path, descending=order == "descending")


def _text(value: str | None) -> str | None:
    return value or None


def _folded(value: str | None) -> str | None:
    return value.lower() if value else None


def _first_email(user: User) -> Email | None:
    for email in user.emails:
        if email.primary:
            return email
    return user.emails[0] if user.emails else None


def _email_part(part: str) -> Callable[[User], SortValue]:
    def read(user: User) -> SortValue:
        email = _first_email(user)
        if email is None:
            return None
        if part == "value":
            return _folded(email.value)
        if part == "type":
            return _folded(email.type)
        return email.primary

    return read


def _user_name_part(attr: str) -> Callable[[User], SortValue]:
    def read(user: User) -> SortValue:
        return _folded(getattr(user.name, attr)) if user.name is not None else None

    return read


_USER: dict[str, Callable[[User], SortValue]] = {
    "id": lambda u: _text(u.id),
    "externalid": lambda u: _text(u.external_id),
    "username": lambda u: _folded(u.user_name),
    "displayname": lambda u: _folded(u.display_name),
    "active": lambda u: u.active,
    "name.formatted": _user_name_part("formatted"),
    "name.givenname": _user_name_part("given_name"),
    "name.familyname": _user_name_part("family_name"),
    "emails.value": _email_part("value"),
    "emails.type": _email_part("type"),
    "emails.primary": _email_part("primary"),
    "groups.value": lambda u: _text(u.groups[0].value) if u.groups else None,
    "groups.display": lambda u: _folded(u.groups[0].display) if u.groups else None,
    "meta.created": lambda u: u.created,
    "meta.lastmodified": lambda u: u.last_modified,
}

_GROUP: dict[str, Callable[[Group], SortValue]] = {
    "id": lambda g: _text(g.id),
    "externalid": lambda g: _text(g.external_id),
    "displayname": lambda g: _folded(g.display_name),
    "members.value": lambda g: _text(g.members[0].value) if g.members else None,
    "members.display": lambda g: _folded(g.members[0].display) if g.members else None,
    "members.type": lambda g: _folded(g.members[0].type) if g.members else None,
    "meta.created": lambda g: g.created,
    "meta.lastmodified": lambda g: g.last_modified,
}


def sort_value(entity: User | Group, key: SortKey) -> SortValue:
    """The value ``entity`` sorts by under ``key``; None when it has none (or when ``key``
    names an attribute its resource type does not have, as in a root search)."""
    table: dict[str, Any] = _USER if isinstance(entity, User) else _GROUP
    read = table.get(key.path.dotted())
    return None if read is None else read(entity)


def order_key(key: SortKey) -> Callable[[User | Group], tuple[bool, SortValue, str]]:
    """A ``sorted`` key for ``key`` in ascending order: missing values last, ties by id."""

    def of(entity: User | Group) -> tuple[bool, SortValue, str]:
        value = sort_value(entity, key)
        return (value is None, value, entity.id)

    return of


def sort_entities(items: Sequence[_E], key: SortKey | None) -> list[_E]:
    """``items`` in :class:`SortKey` order (by ``id`` alone without a key); descending is
    the exact reverse of ascending."""
    if key is None:
        return sorted(items, key=lambda item: item.id)
    return sorted(items, key=order_key(key), reverse=key.descending)

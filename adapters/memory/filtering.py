"""Evaluation of a SCIM filter (``domain.filters``) against an entity, for the memory adapter.

PLACEHOLDER owned by the SCIM work: supports only ``eq`` on top-level string attributes.
"""

from __future__ import annotations

from domain.entities import Group, User
from domain.filters import Compare, Filter


def matches(expr: Filter, resource: User | Group) -> bool:
    """True when ``resource`` satisfies ``expr``."""
    if isinstance(expr, Compare) and expr.op == "eq":
        field = {"id": "id", "username": "user_name", "displayname": "display_name",
                 "externalid": "external_id"}.get(expr.path.attr)
        if field is None:
            return False
        value = getattr(resource, field, None)
        if isinstance(value, str) and isinstance(expr.value, str):
            return value.lower() == expr.value.lower()
        return False
    raise NotImplementedError("filter not supported yet")

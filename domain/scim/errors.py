"""SCIM-specific refinements of ``InvalidValue``, one per RFC 7644 ``scimType``.

``InvalidFilter`` and ``InvalidPath`` live in :mod:`domain.filter_parser`, next to the parser
that raises them; they are re-exported here so the HTTP layer has one place to look.
"""

from __future__ import annotations

from domain.errors import InvalidValue
from domain.filter_parser import InvalidFilter, InvalidPath

__all__ = ["InvalidFilter", "InvalidPath", "InvalidSyntax", "Mutability", "NoTarget"]


class InvalidSyntax(InvalidValue):
    """The request body is not a well-formed SCIM message (``invalidSyntax``)."""


class Mutability(InvalidValue):
    """The request would change a read-only or immutable attribute (``mutability``)."""


class NoTarget(InvalidValue):
    """A PATCH path or value filter matched nothing where something was required (``noTarget``)."""

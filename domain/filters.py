"""The SCIM filter expression (RFC 7644 section 3.4.2.2), as the domain sees it.

A filter is parsed once (``domain.filter_parser.parse_filter``) into these nodes and then
translated by each adapter: the memory adapter evaluates it, the sql adapter turns it into
a WHERE clause. Attribute names are normalised to lower case; the schema URN prefix, when
given, is kept (lower case) in ``AttrPath.schema``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

CompareOp = Literal["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]
Scalar = str | int | float | bool | None


class AttrPath(msgspec.Struct, frozen=True):
    """``[schema:]attr[.sub_attr]``, lower-cased: ``name.givenname``, ``emails.value``."""

    attr: str
    sub_attr: str | None = None
    schema: str | None = None

    def dotted(self) -> str:
        return f"{self.attr}.{self.sub_attr}" if self.sub_attr else self.attr


class Compare(msgspec.Struct, frozen=True):
    """``path op value``. ``value`` is the JSON literal: string, number, boolean or null."""

    path: AttrPath
    op: CompareOp
    value: Scalar


class Present(msgspec.Struct, frozen=True):
    """``path pr``: the attribute has a non-empty value."""

    path: AttrPath


class And(msgspec.Struct, frozen=True):
    left: Filter
    right: Filter


class Or(msgspec.Struct, frozen=True):
    left: Filter
    right: Filter


class Not(msgspec.Struct, frozen=True):
    inner: Filter


class ValuePath(msgspec.Struct, frozen=True):
    """``attr[inner]`` on a multi-valued attribute (``emails[type eq "work"]``).

    Paths inside ``inner`` name sub-attributes of ``path`` (their ``attr`` is the sub-attribute,
    e.g. ``type``). True when at least one value of the attribute matches ``inner``.
    """

    path: AttrPath
    inner: Filter


Filter = Compare | Present | And | Or | Not | ValuePath


class SortKey(msgspec.Struct, frozen=True):
    """``sortBy``/``sortOrder`` (RFC 7644 section 3.4.2.3), checked against the resource.

    ``path`` is lower-cased, without a schema prefix, and always names a single value: a
    complex attribute is completed with its default sub-attribute (``name`` is
    ``name.formatted``, ``emails`` is ``emails.value``). The value a resource sorts by:

    - a multi-valued attribute sorts by its primary value if it has one, else its first value
      (``groups`` come by id in code-point order, ``members`` and ``emails`` as stored);
    - case-insensitive strings compare by ``str.lower()``, case-exact ones as they are, both
      in code-point order; date-times chronologically; ``false`` before ``true``;
    - a missing value (or an empty string) sorts last ascending and first descending;
    - ties are ordered by ``id`` (code points); ``descending`` is the exact reverse of the
      ascending order, ties included, so one index serves both directions.
    """

    path: AttrPath
    descending: bool = False


class ListQuery(msgspec.Struct, frozen=True):
    """What a list asks of a store: an optional filter, an optional sort and a 1-based page
    window.

    ``count`` 0 asks only for the total. Results come in a stable order: by ``sort`` (see
    :class:`SortKey`) and then by ``id``; by ``id`` alone without a sort.
    """

    filter: Filter | None = None
    start_index: int = 1
    count: int = 100
    sort: SortKey | None = None

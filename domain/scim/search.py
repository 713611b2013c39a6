"""Search from the service root (``POST /scim/v2/.search``, RFC 7644 section 3.4.3): users
and groups in one list, with the same filter, sort and paging as each type's own list.

- The filter applies to every resource type it makes sense for; a type whose attributes it
  does not fit (``userName`` for groups) contributes nothing. A filter that fits no type is
  ``InvalidFilter``, as on a type's own list.
- ``sortBy`` sorts across types; a type without the attribute has no value for it, so its
  resources come last ascending (first descending), by id. Without ``sortBy`` the list is
  in id order. Merging is exact because each store returns its part in the very order of
  :func:`domain.scim.sorting.order_key` (the contract suite pins it).
- Paging reads at most ``startIndex - 1 + count`` resources of each type, so a root search
  pages through its first :data:`MAX_ROOT_WINDOW` results; further on, search each type.
"""

from __future__ import annotations

import msgspec

from domain.entities import Group, User
from domain.errors import InvalidValue
from domain.filters import AttrPath, ListQuery, SortKey
from domain.identities import list_query
from domain.scim.errors import InvalidSyntax
from domain.scim.schema import GROUP, USER
from domain.scim.sorting import order_key
from ports.store import Store

#: The deepest position a root search pages to (``startIndex - 1 + count``).
MAX_ROOT_WINDOW = 10_000


class RootPage(msgspec.Struct, frozen=True):
    """One page of a root search: users and groups, in order, and the total of matches."""

    items: tuple[User | Group, ...]
    total: int
    start_index: int


async def search_all(
    store: Store, filter_text: str | None, start_index: int | None, count: int | None,
    *, sort_by: str | None = None, sort_order: str | None = None,
) -> RootPage:
    """One page of every resource matching the search. Raises ``InvalidFilter`` (the filter
    fits no resource type), ``InvalidValue`` (a sort no type has, a page too deep)."""
    queries: dict[str, ListQuery] = {}
    filter_error: InvalidValue | None = None
    sort: SortKey | None = None
    sortable: set[str] = set()
    for resource in (USER, GROUP):
        try:
            queries[resource.name] = list_query(filter_text, start_index, count, resource)
        except InvalidValue as exc:
            filter_error = exc
            continue
        try:
            type_sort = list_query(None, None, None, resource, sort_by=sort_by,
                                   sort_order=sort_order).sort
        except InvalidValue:
            continue
        sortable.add(resource.name)
        sort = sort or type_sort
    if not queries:
        assert filter_error is not None
        raise filter_error
    if sort_by is not None and sort_by.strip() and sort is None:
        # Checked on the users' schema again for its error message.
        list_query(None, None, None, USER, sort_by=sort_by, sort_order=sort_order)
    first = next(iter(queries.values()))
    start, size = first.start_index, first.count
    if start - 1 + size > MAX_ROOT_WINDOW:
        raise InvalidValue(f"a search from the root pages through its first {MAX_ROOT_WINDOW} "
                           "results; search /Users or /Groups for more")
    descending = sort.descending if sort is not None else False
    by_id = SortKey(path=AttrPath("id"), descending=descending)
    window = start - 1 + size
    parts: list[list[User | Group]] = []
    total = 0
    for name, query in queries.items():
        part_query = msgspec.structs.replace(
            query, start_index=1, count=window,
            sort=sort if sort is not None and name in sortable else by_id)
        if name == USER.name:
            users = await store.list_users(part_query)
            total += users.total
            parts.append(list(users.items))
        else:
            groups = await store.list_groups(part_query)
            total += groups.total
            parts.append(list(groups.items))
    # Each part is in this order already; sorting the concatenation merges them.
    merged = sorted((item for part in parts for item in part),
                    key=order_key(sort if sort is not None else by_id), reverse=descending)
    return RootPage(items=tuple(merged[start - 1 : window]), total=total, start_index=start)


SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


class SearchRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The body of a ``POST .../.search`` (RFC 7644 3.4.3): the query parameters of a GET,
    as JSON."""

    attributes: tuple[str, ...] = ()
    excluded_attributes: tuple[str, ...] = ()
    filter: str | None = None
    sort_by: str | None = None
    sort_order: str | None = None
    start_index: int | None = None
    count: int | None = None


_FIELDS = {
    "attributes": "attributes", "excludedattributes": "excluded_attributes",
    "filter": "filter", "sortby": "sort_by", "sortorder": "sort_order",
    "startindex": "start_index", "count": "count",
}


_WIRE_NAMES = {"filter": "filter", "sortBy": "sort_by", "sortOrder": "sort_order",
               "startIndex": "start_index", "count": "count"}


def _names(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip())
    raise InvalidSyntax(f"{what} must be an array of attribute names")


def read_search_request(body: object) -> SearchRequest:
    """The search a body asks for. Names are case-insensitive; ``schemas``, when given, must
    name the SearchRequest message. Raises ``InvalidSyntax`` for a malformed body."""
    if not isinstance(body, dict):
        raise InvalidSyntax("the body must be a SearchRequest object")
    fields: dict[str, object] = {}
    for key, value in body.items():
        lowered = str(key).lower()
        if lowered == "schemas":
            if not isinstance(value, list) or SEARCH_REQUEST not in value:
                raise InvalidSyntax(f"schemas must be [{SEARCH_REQUEST!r}]")
        elif lowered in _FIELDS:
            fields[_FIELDS[lowered]] = value
    wire = {field: key for key, field in _WIRE_NAMES.items()}
    for name in ("filter", "sort_by", "sort_order"):
        if fields.get(name) is not None and not isinstance(fields[name], str):
            raise InvalidSyntax(f"{wire[name]} must be a string")
    for name in ("start_index", "count"):
        number = fields.get(name)
        if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
            raise InvalidSyntax(f"{wire[name]} must be an integer")
    return SearchRequest(
        attributes=_names(fields.get("attributes"), "attributes"),
        excluded_attributes=_names(fields.get("excluded_attributes"), "excludedAttributes"),
        filter=_text_or_none(fields.get("filter")),
        sort_by=_text_or_none(fields.get("sort_by")),
        sort_order=_text_or_none(fields.get("sort_order")),
        start_index=_int_or_none(fields.get("start_index")),
        count=_int_or_none(fields.get("count")),
    )


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

"""The filter-agreement check: an adapter's SCIM filter results equal the memory adapter's.

The memory adapter evaluates filters in Python (``adapters.memory.filtering``) and is the
reference. An adapter that evaluates them itself (SQL ``WHERE`` clauses, a query language
of its own) is loaded with the same small data set, and hand-picked and generated filters
(hypothesis) must select the same ids, in the same order, with the same total, or be
rejected the same way. See :class:`FilterAgreement`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.memory import MemoryStore
from domain.entities import (
    Address,
    Email,
    EnterpriseUser,
    Group,
    Manager,
    Member,
    MultiValue,
    Name,
    User,
)
from domain.errors import InvalidValue
from domain.filter_parser import parse_filter
from domain.filters import AttrPath, ListQuery, SortKey
from ports.store import Store

JAN_2024 = 1_704_067_200  # 2024-01-01T00:00:00Z

#: The data set both stores hold: names that differ in case, accents, ``%`` and ``_`` (the
#: wildcards of SQL ``LIKE``), empty and absent values, several emails, memberships.
USERS = (
    User(
        id="u1", user_name="alice", display_name="Alice Liddell", external_id="EXT-1",
        name=Name(given_name="Alice", family_name="Liddell", middle_name="Pleasance"),
        emails=(
            Email(value="alice@example.com", type="work", primary=True),
            Email(value="ALICE@home.org", type="home"),
        ),
        created=JAN_2024, last_modified=JAN_2024,
        title="Tour Guide", user_type="Employee", locale="en-US", timezone="Europe/London",
        phone_numbers=(MultiValue("+1 555 0100", "work", True), MultiValue("555_0199", "mobile")),
        addresses=(Address(street_address="100 Universal City Plaza", locality="Hollywood",
                           region="CA", postal_code="91608", country="US", type="work",
                           primary=True),),
        enterprise=EnterpriseUser(employee_number="701984", department="Tour Operations",
                                  cost_center="4130", manager=Manager(value="u4")),
    ),
    User(
        id="u2", user_name="Bob_smith", active=False,
        emails=(Email(value="bob@example.com", type="home"),),
        title="", nick_name="Bobby", user_type="contractor", preferred_language="en",
        addresses=(Address(locality="hollywood", country="us", type="home"),
                   Address(formatted="1 Main St%", type="work")),
        photos=(MultiValue("https://photos.example/bob", "thumbnail"),),
        enterprise=EnterpriseUser(employee_number="EMP_2", department="tour operations",
                                  organization="Universal", division="Parks",
                                  manager=Manager(value="U4")),
        created=JAN_2024 + 152 * 86400, last_modified=JAN_2024 + 152 * 86400,
    ),
    User(
        id="u3", user_name="carol%x", display_name="", external_id="ext-1",
        phone_numbers=(MultiValue("+1 555 0100", "home"),),
        x509_certificates=(MultiValue("MIIDQzCCAqy", "signing"),),
        enterprise=EnterpriseUser(department=""),
        name=Name(formatted="Carol X"), created=JAN_2024 + 366 * 86400,
        last_modified=JAN_2024 + 366 * 86400,
    ),
    User(
        id="u4", user_name="Émile", display_name="ÉMILE",
        emails=(Email(value="emile@work.example"),),
        created=JAN_2024 - 86400, last_modified=JAN_2024 - 86400,
    ),
)

GROUPS = (
    Group(id="g1", display_name="Admins", external_id="A",
          members=(Member(value="u1"), Member(value="u2"))),
    Group(id="g2", display_name="staff", members=(Member(value="u3"),)),
    Group(id="g3", display_name="Empty"),
)

USER_FILTERS = [
    'userName eq "ALICE"',
    'userName eq "émile"',
    'userName co "_"',
    'userName co "%"',
    'userName gt "bob_smith"',
    'externalId eq "ext-1"',
    'not (externalId eq "EXT-1")',
    'displayName pr',
    'not (displayName pr)',
    'displayName eq null',
    'emails eq "alice@HOME.org"',
    'emails[type eq "work" and value co "home"]',
    'emails[type eq "home" and value co "home"]',
    'emails[not (type eq "home")]',
    'emails.primary eq false',
    'emails pr',
    'active ne true',
    'meta.created gt "2024-03-01T00:00:00Z"',
    'meta.created lt "2024-01-01T00:00:00.5Z"',
    'meta.lastModified le "2023-12-31T00:00:00"',
    'name.givenName eq "alice" and name.familyName pr',
    'name sw "carol"',
    'groups eq "g1"',
    'groups.display eq "STAFF"',
    'not (groups pr)',
    'userName eq "alice" or active eq false',
    'urn:ietf:params:scim:schemas:core:2.0:User:userName sw "a"',
    'title eq "tour guide"',
    'title pr',
    'userType eq "Contractor" or locale sw "en"',
    'nickName co "bob" and preferredLanguage eq "EN"',
    'timezone ew "london"',
    'name.middleName pr',
    'phoneNumbers eq "+1 555 0100"',
    'phoneNumbers[type eq "work" and value sw "+1"]',
    'phoneNumbers.value co "_"',
    'phoneNumbers.primary eq true',
    'addresses[type eq "work" and streetAddress co "universal"]',
    'addresses.locality eq "HOLLYWOOD"',
    'addresses.postalCode pr',
    'addresses.country eq "US" and not (addresses.type eq "home")',
    'addresses co "%"',
    'addresses.primary eq false',
    'photos.type eq "thumbnail"',
    'x509Certificates.type eq "SIGNING"',
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984"',
    'employeeNumber co "_"',
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "TOUR OPERATIONS"',
    'department pr',
    'not (department pr)',
    'costCenter eq "4130" or organization sw "uni" or division eq "parks"',
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "u4"',
    'manager.value pr',
    'manager[value eq "U4"]',
]

GROUP_FILTERS = [
    'displayName eq "admins"',
    'members eq "u1"',
    'members eq "U1"',
    'members.display eq "CAROL%X"',
    'not (members pr)',
    'members[value eq "u2"]',
    'externalId ne "A"',
]

#: Every attribute a sort may name (``sortBy``), as the use cases pass them to a store.
USER_SORTS = ["id", "externalid", "username", "displayname", "active", "name.formatted",
              "name.givenname", "name.familyname", "emails.value", "emails.type",
              "emails.primary", "groups.value", "groups.display", "meta.created",
              "meta.lastmodified"]
GROUP_SORTS = ["id", "externalid", "displayname", "members.value", "members.display",
               "members.type", "meta.created", "meta.lastmodified"]

# Generated filters: only well-typed comparisons (the use cases reject the others first).
_WORDS = ["alice", "ALICE", "Bob", "b", "x", "X", "%", "_", "é", "Émile", "u1", "g1", "U1",
          "home", "work", "example", "", "lid", "carol%x", "ext-1", "EXT-1", "a", "staff",
          "u4", "U4", "tour", "Tour Operations", "+1", "0100", "us", "hollywood", "701984",
          "en", "mobile"]
_STRING_ATTRS = ["userName", "displayName", "externalId", "id", "name.givenName",
                 "name.familyName", "name.formatted", "name", "emails", "emails.value",
                 "emails.type", "groups", "groups.value", "groups.display",
                 "name.middleName", "nickName", "title", "userType", "preferredLanguage",
                 "locale", "timezone", "phoneNumbers", "phoneNumbers.type", "addresses",
                 "addresses.streetAddress", "addresses.locality", "addresses.region",
                 "addresses.postalCode", "addresses.country", "addresses.type",
                 "photos.type", "x509Certificates.type", "employeeNumber", "department",
                 "costCenter", "organization", "division", "manager.value",
                 "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"]
_BOOL_ATTRS = ["active", "emails.primary", "phoneNumbers.primary", "addresses.primary"]
_DATES = ["2024-01-01T00:00:00Z", "2024-06-01T00:00:00+02:00", "2023-12-31T00:00:00",
          "2024-01-01T00:00:00.5Z", "2025-01-01T00:00:00Z"]
_STRING_OPS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


_string_compare = st.builds(
    lambda a, o, v: f"{a} {o} {_quote(v)}",
    st.sampled_from(_STRING_ATTRS), st.sampled_from(_STRING_OPS), st.sampled_from(_WORDS),
)
_bool_compare = st.builds(
    lambda a, o, v: f"{a} {o} {v}",
    st.sampled_from(_BOOL_ATTRS), st.sampled_from(["eq", "ne"]), st.sampled_from(["true", "false"]),
)
_date_compare = st.builds(
    lambda a, o, v: f"{a} {o} {_quote(v)}",
    st.sampled_from(["meta.created", "meta.lastModified"]),
    st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]), st.sampled_from(_DATES),
)
_present = st.builds(lambda a: f"{a} pr", st.sampled_from([*_STRING_ATTRS, *_BOOL_ATTRS]))
_null = st.builds(
    lambda a, o: f"{a} {o} null", st.sampled_from(_STRING_ATTRS), st.sampled_from(["eq", "ne"])
)
_email_inner = st.builds(
    lambda a, o, v: f"{a} {o} {_quote(v)}",
    st.sampled_from(["value", "type"]), st.sampled_from(_STRING_OPS), st.sampled_from(_WORDS),
)
_value_path = st.builds(
    lambda left, join, right: f"emails[{left} {join} {right}]",
    _email_inner, st.sampled_from(["and", "or"]), _email_inner,
)
_address_inner = st.builds(
    lambda a, o, v: f"{a} {o} {_quote(v)}",
    st.sampled_from(["type", "locality", "country", "formatted", "streetAddress"]),
    st.sampled_from(_STRING_OPS), st.sampled_from(_WORDS),
)
_address_path = st.builds(
    lambda left, join, right: f"addresses[{left} {join} {right}]",
    _address_inner, st.sampled_from(["and", "or"]), _address_inner,
)
_leaf = st.one_of(_string_compare, _bool_compare, _date_compare, _present, _null, _value_path,
                  _address_path)


def combined(leaf: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Filters of up to four leaves joined with ``not``, ``and`` and ``or``."""
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(lambda x: f"not ({x})", inner),
            st.builds(lambda x, y: f"({x}) and ({y})", inner, inner),
            st.builds(lambda x, y: f"({x}) or ({y})", inner, inner),
        ),
        max_leaves=4,
    )


#: Generated user filters (hypothesis).
user_filters = combined(_leaf)

_GROUP_STRING_ATTRS = ["displayName", "externalId", "id", "members", "members.value",
                       "members.display", "members.type"]
_group_leaf = st.one_of(
    st.builds(
        lambda a, o, v: f"{a} {o} {_quote(v)}",
        st.sampled_from(_GROUP_STRING_ATTRS), st.sampled_from(_STRING_OPS),
        st.sampled_from([*_WORDS, "Admins", "u2", "user", "Empty"]),
    ),
    st.builds(lambda a: f"{a} pr", st.sampled_from(_GROUP_STRING_ATTRS)),
    st.builds(
        lambda o, v: f"meta.created {o} {_quote(v)}",
        st.sampled_from(["eq", "ne", "gt", "lt"]), st.sampled_from(_DATES),
    ),
    st.builds(
        lambda a, o, v: f"members[{a} {o} {_quote(v)}]",
        st.sampled_from(["value", "display"]), st.sampled_from(_STRING_OPS),
        st.sampled_from(_WORDS),
    ),
)
#: Generated group filters (hypothesis).
group_filters = combined(_group_leaf)

#: What one store answered: the ids and total of the page, or the error it raised.
Outcome = tuple[list[str], int] | str


async def load(store: Store) -> None:
    """Put the data set into ``store``."""
    for user in USERS:
        await store.create_user(user)
    for group in GROUPS:
        await store.create_group(group)


async def outcome(store: Store, text: str, resource: str) -> Outcome:
    """The ids and total ``store`` lists for the filter, or ``"InvalidValue"``."""
    query = ListQuery(filter=parse_filter(text), count=1000)
    try:
        if resource == "users":
            users = await store.list_users(query)
            return [x.id for x in users.items], users.total
        groups = await store.list_groups(query)
        return [x.id for x in groups.items], groups.total
    except InvalidValue:
        return "InvalidValue"


# The stores are loaded once per test and only read, so sharing them between examples is fine.
_SHARED_FIXTURE = [HealthCheck.function_scoped_fixture]


class FilterAgreement:
    """Filters give the same results on an adapter as on the memory adapter, as pytest tests.

    Subclass it in a module whose class name starts with ``Test`` and override ``store``
    with an async fixture that yields a fresh, empty store and closes it afterwards, exactly
    as for :class:`adapters.testing.StoreContract` (the same fixture can serve both)::

        import pytest_asyncio
        from adapters.testing import FilterAgreement

        class TestMyStoreFilters(FilterAgreement):
            @pytest_asyncio.fixture
            async def store(self):
                s = await open_my_store()
                yield s
                await s.close()

    Each test loads :data:`USERS` and :data:`GROUPS` into the store and into a
    ``MemoryStore``, then lists with the same parsed filter on both: the hand-picked
    :data:`USER_FILTERS` and :data:`GROUP_FILTERS`, then 200 user and 100 group filters
    generated by hypothesis (:data:`user_filters`, :data:`group_filters`). Sorts too: every
    attribute of :data:`USER_SORTS` and :data:`GROUP_SORTS`, both ways, whole and paged.
    The tests are async and carry the ``asyncio`` mark, so they run under pytest-asyncio's
    strict mode as under its auto mode; ``@pytest_asyncio.fixture`` works in both.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    if TYPE_CHECKING:
        store: Any  # as in StoreContract: overrides of any shape type-check
    else:

        @pytest.fixture
        def store(self):
            """A fresh, empty store, closed after the test. Adapters override this fixture."""
            raise NotImplementedError(
                "override the `store` fixture to check an adapter's filters"
            )

    @pytest_asyncio.fixture
    async def stores(self, store: Store) -> AsyncIterator[tuple[MemoryStore, Store]]:
        """The reference and the adapter's store, both holding the data set."""
        reference = MemoryStore()
        await load(reference)
        await load(store)
        yield reference, store

    async def agree(
        self, stores: tuple[MemoryStore, Store], text: str, resource: str
    ) -> Outcome:
        """Assert that both stores answer ``text`` alike; return the reference's answer."""
        reference, store = stores
        expected = await outcome(reference, text, resource)
        assert await outcome(store, text, resource) == expected, text
        return expected

    @pytest.mark.parametrize("text", USER_FILTERS)
    async def test_user_filters_agree(
        self, stores: tuple[MemoryStore, Store], text: str
    ) -> None:
        assert await self.agree(stores, text, "users") != "InvalidValue"

    @pytest.mark.parametrize("text", GROUP_FILTERS)
    async def test_group_filters_agree(
        self, stores: tuple[MemoryStore, Store], text: str
    ) -> None:
        assert await self.agree(stores, text, "groups") != "InvalidValue"

    @settings(max_examples=200, deadline=None, suppress_health_check=_SHARED_FIXTURE)
    @given(text=user_filters)
    async def test_generated_user_filters_agree(
        self, stores: tuple[MemoryStore, Store], text: str
    ) -> None:
        await self._agree_if_parsed(stores, text, "users")

    @settings(max_examples=100, deadline=None, suppress_health_check=_SHARED_FIXTURE)
    @given(text=group_filters)
    async def test_generated_group_filters_agree(
        self, stores: tuple[MemoryStore, Store], text: str
    ) -> None:
        await self._agree_if_parsed(stores, text, "groups")

    @pytest.mark.parametrize("descending", [False, True])
    @pytest.mark.parametrize("attr", USER_SORTS)
    async def test_user_sorts_agree(
        self, stores: tuple[MemoryStore, Store], attr: str, descending: bool
    ) -> None:
        await self._sorts_agree(stores, "users", attr, descending)

    @pytest.mark.parametrize("descending", [False, True])
    @pytest.mark.parametrize("attr", GROUP_SORTS)
    async def test_group_sorts_agree(
        self, stores: tuple[MemoryStore, Store], attr: str, descending: bool
    ) -> None:
        await self._sorts_agree(stores, "groups", attr, descending)

    async def _sorts_agree(self, stores: tuple[MemoryStore, Store], resource: str, attr: str,
                           descending: bool) -> None:
        """The whole order, and a page of it under a filter, are the reference's."""
        reference, store = stores
        top, _, sub = attr.partition(".")
        sort = SortKey(path=AttrPath(top, sub or None), descending=descending)
        everything = ListQuery(sort=sort, count=1000)
        page = ListQuery(filter=parse_filter("id ne \"u3\" and id ne \"g2\""), sort=sort,
                         start_index=2, count=2)
        for query in (everything, page):
            if resource == "users":
                expected = await reference.list_users(query)
                actual = await store.list_users(query)
            else:
                expected = await reference.list_groups(query)  # type: ignore[assignment]
                actual = await store.list_groups(query)  # type: ignore[assignment]
            assert [x.id for x in actual.items] == [x.id for x in expected.items], attr
            assert actual.total == expected.total

    async def _agree_if_parsed(
        self, stores: tuple[MemoryStore, Store], text: str, resource: str
    ) -> None:
        try:
            parse_filter(text)
        except InvalidValue:
            return  # rejected by the parser before any store sees it
        await self.agree(stores, text, resource)

"""The identities part of the Store contract: users, groups and their memberships
(the ``UserStore`` and ``GroupStore`` ports)."""

from __future__ import annotations

import msgspec
import pytest

from adapters.testing.contract.fixtures import StoreFixtures, _eq, _group, _pair, _user, _with
from domain.entities import (
    Address,
    Email,
    EnterpriseUser,
    Group,
    GroupRef,
    Manager,
    Member,
    MultiValue,
    Name,
    User,
)
from domain.errors import Conflict, InvalidReference, NotFound, PreconditionFailed
from domain.filter_parser import parse_filter
from domain.filters import And, AttrPath, Compare, ListQuery, Or, SortKey
from ports.store import Store


def _by(attr: str, sub: str | None = None, descending: bool = False, start_index: int = 1,
        count: int = 100) -> ListQuery:
    return ListQuery(sort=SortKey(path=AttrPath(attr, sub), descending=descending),
                     start_index=start_index, count=count)


async def _user_ids(store: Store, query: ListQuery) -> list[str]:
    return [user.id for user in (await store.list_users(query)).items]


async def _group_ids(store: Store, query: ListQuery) -> list[str]:
    return [group.id for group in (await store.list_groups(query)).items]


class IdentityContract(StoreFixtures):
    """Users and groups: generated ids and versions, case-insensitive names, memberships
    seen from both sides, optimistic concurrency, paging and filters.

    Three tests reach into other parts: a user's password hash and its credentials' removal
    with the user (``CredentialStore``), and its tokens, which outlive it (``TokenStore``).
    """

    # Users

    async def test_create_user_generates_id_and_sets_version_1(self, store: Store) -> None:
        created = await store.create_user(_user("alice"))
        assert created.id
        assert created.version == 1
        assert created.user_name == "alice"

    async def test_create_user_generates_distinct_ids(self, store: Store) -> None:
        first = await store.create_user(_user("alice"))
        second = await store.create_user(_user("bob"))
        assert first.id != second.id

    async def test_create_user_keeps_a_given_id_and_timestamps(self, store: Store) -> None:
        created = await store.create_user(_user("alice", id="user-fixed-id"))
        assert created.id == "user-fixed-id"
        assert (created.created, created.last_modified) == (1_600_000_000, 1_600_000_000)

    async def test_get_user_returns_every_attribute_as_created(self, store: Store) -> None:
        user = _user(
            "alice",
            external_id="ext-1",
            display_name="Alice Liddell",
            name=Name(formatted="Alice Liddell", given_name="Alice", family_name="Liddell"),
            emails=(Email("alice@example.com", "work", True), Email("a@home.example")),
            active=False,
        )
        created = await store.create_user(user)
        assert await store.get_user(created.id) == created
        assert created.emails == user.emails and created.name == user.name
        assert created.active is False

    async def test_every_core_and_enterprise_attribute_is_stored_as_given(
        self, store: Store
    ) -> None:
        boss = await store.create_user(_user("boss", display_name="The Boss"))
        user = _user(
            "bjensen",
            name=Name(formatted="Ms. Barbara J Jensen III", given_name="Barbara",
                      family_name="Jensen", middle_name="Jane", honorific_prefix="Ms.",
                      honorific_suffix="III"),
            nick_name="Babs", profile_url="https://login.example.com/bjensen",
            title="Tour Guide", user_type="Employee", preferred_language="en-US",
            locale="en-US", timezone="America/Los_Angeles",
            phone_numbers=(MultiValue("555-555-5555", "work", True),
                           MultiValue("555-555-4444", "mobile", display="cell")),
            addresses=(Address(street_address="100 Universal City Plaza", locality="Hollywood",
                               region="CA", postal_code="91608", country="US",
                               formatted="100 Universal City Plaza\nHollywood, CA 91608 USA",
                               type="work", primary=True),
                       Address(locality="Anytown", type="home")),
            photos=(MultiValue("https://photos.example.com/profilephoto/72930000000Ccne/F",
                               "photo"),),
            x509_certificates=(MultiValue("MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAw"),),
            enterprise=EnterpriseUser(employee_number="701984", cost_center="4130",
                                      organization="Universal Studios", division="Theme Park",
                                      department="Tour Operations",
                                      manager=Manager(value=boss.id)),
        )
        created = await store.create_user(user)
        read = await store.get_user(created.id)
        assert read == created
        assert read.enterprise is not None and read.enterprise.manager is not None
        # The manager's displayName is the manager's own, filled on reads.
        assert read.enterprise.manager == Manager(boss.id, "The Boss")
        expected = _with(user, id=created.id, version=1, enterprise=read.enterprise)
        assert read == expected
        assert (await store.list_users(ListQuery(filter=_eq("id", created.id)))).items == (read,)

    async def test_manager_display_name_given_on_write_is_ignored_and_follows_the_manager(
        self, store: Store
    ) -> None:
        boss = await store.create_user(_user("boss", display_name="Boss"))
        created = await store.create_user(_user("bjensen", enterprise=EnterpriseUser(
            manager=Manager(value=boss.id, display_name="bogus"))))
        assert created.enterprise == EnterpriseUser(manager=Manager(boss.id, "Boss"))
        await store.replace_user(_with(boss, display_name="Big Boss"))
        read = await store.get_user(created.id)
        assert read.enterprise == EnterpriseUser(manager=Manager(boss.id, "Big Boss"))

    async def test_a_manager_that_is_no_user_is_kept_without_display_name(
        self, store: Store
    ) -> None:
        created = await store.create_user(_user("bjensen", enterprise=EnterpriseUser(
            department="R&D", manager=Manager(value="not-provisioned-yet"))))
        assert (await store.get_user(created.id)).enterprise == EnterpriseUser(
            department="R&D", manager=Manager("not-provisioned-yet"))

    async def test_replace_user_drops_extension_attributes_not_given(
        self, store: Store
    ) -> None:
        created = await store.create_user(_user(
            "bjensen", title="Guide", phone_numbers=(MultiValue("1"),),
            enterprise=EnterpriseUser(department="R&D")))
        replaced = await store.replace_user(User(id=created.id, user_name="bjensen"))
        assert (replaced.title, replaced.phone_numbers, replaced.enterprise) == (None, (), None)
        assert await store.get_user(created.id) == replaced

    async def test_create_user_ignores_groups_given_on_write(self, store: Store) -> None:
        created = await store.create_user(
            _user("alice", groups=(GroupRef(value="not-a-group", display="x"),))
        )
        assert created.groups == ()
        assert (await store.get_user(created.id)).groups == ()

    async def test_get_unknown_user_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.get_user("no-such-user")

    async def test_find_user_by_name_ignores_case(self, store: Store) -> None:
        created = await store.create_user(_user("Alice"))
        assert await store.find_user_by_name("aLICE") == created

    async def test_find_unknown_user_name_returns_none(self, store: Store) -> None:
        await store.create_user(_user("alice"))
        assert await store.find_user_by_name("bob") is None

    async def test_user_name_clash_differing_only_in_case_is_a_conflict(
        self, store: Store
    ) -> None:
        await store.create_user(_user("alice"))
        with pytest.raises(Conflict) as raised:
            await store.create_user(_user("ALICE"))
        assert raised.value.attribute == "userName"

    async def test_create_user_with_an_existing_id_is_a_conflict(self, store: Store) -> None:
        await store.create_user(_user("alice", id="same-id"))
        with pytest.raises(Conflict) as raised:
            await store.create_user(_user("bob", id="same-id"))
        assert raised.value.attribute == "id"
        assert (await store.get_user("same-id")).user_name == "alice"

    async def test_create_user_stores_the_password_hash(self, store: Store) -> None:
        created = await store.create_user(_user("alice"), password_hash="$argon2id$hash")
        credentials = await store.get_credentials(created.id)
        assert credentials.user_id == created.id
        assert credentials.password_hash == "$argon2id$hash"

    async def test_replace_user_increments_version_and_keeps_created(
        self, store: Store
    ) -> None:
        created = await store.create_user(_user("alice"))
        replacement = User(
            id=created.id, user_name="alice", display_name="Alice", created=5, last_modified=7
        )
        replaced = await store.replace_user(replacement)
        assert replaced.version == 2
        assert replaced.created == created.created
        assert replaced.last_modified == 7
        assert replaced.display_name == "Alice"
        assert await store.get_user(created.id) == replaced

    async def test_replace_user_drops_attributes_not_given(self, store: Store) -> None:
        created = await store.create_user(_user("alice", display_name="Alice", external_id="x"))
        replaced = await store.replace_user(User(id=created.id, user_name="alice"))
        assert replaced.display_name is None
        assert replaced.external_id is None

    async def test_replace_user_with_the_expected_version_succeeds(self, store: Store) -> None:
        created = await store.create_user(_user("alice"))
        replaced = await store.replace_user(
            _with(created, display_name="A"), expected_version=1
        )
        assert replaced.version == 2

    async def test_replace_user_with_a_stale_version_fails_and_changes_nothing(
        self, store: Store
    ) -> None:
        created = await store.create_user(_user("alice"))
        await store.replace_user(_with(created, display_name="first"))
        with pytest.raises(PreconditionFailed):
            await store.replace_user(
                _with(created, display_name="second"), expected_version=1
            )
        stored = await store.get_user(created.id)
        assert (stored.display_name, stored.version) == ("first", 2)

    async def test_replace_unknown_user_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.replace_user(User(id="no-such-user", user_name="ghost"))

    async def test_replace_user_to_a_taken_name_is_a_conflict(self, store: Store) -> None:
        await store.create_user(_user("alice"))
        bob = await store.create_user(_user("bob"))
        with pytest.raises(Conflict) as raised:
            await store.replace_user(_with(bob, user_name="Alice"))
        assert raised.value.attribute == "userName"
        assert (await store.get_user(bob.id)).user_name == "bob"

    async def test_replace_user_may_change_the_case_of_its_own_name(
        self, store: Store
    ) -> None:
        created = await store.create_user(_user("alice"))
        replaced = await store.replace_user(_with(created, user_name="ALICE"))
        assert replaced.user_name == "ALICE"
        assert await store.find_user_by_name("alice") == replaced

    async def test_renaming_a_user_frees_its_old_name(self, store: Store) -> None:
        created = await store.create_user(_user("alice"))
        await store.replace_user(_with(created, user_name="alicia"))
        assert await store.find_user_by_name("alice") is None
        assert (await store.create_user(_user("alice"))).user_name == "alice"

    async def test_delete_user_removes_it(self, store: Store) -> None:
        created = await store.create_user(_user("alice"))
        await store.delete_user(created.id)
        with pytest.raises(NotFound):
            await store.get_user(created.id)
        assert await store.find_user_by_name("alice") is None

    async def test_delete_unknown_user_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.delete_user("no-such-user")

    async def test_delete_user_with_a_stale_version_fails_and_keeps_it(
        self, store: Store
    ) -> None:
        created = await store.create_user(_user("alice"))
        await store.replace_user(created)
        with pytest.raises(PreconditionFailed):
            await store.delete_user(created.id, expected_version=1)
        assert (await store.get_user(created.id)).version == 2

    async def test_delete_user_with_the_expected_version_succeeds(self, store: Store) -> None:
        created = await store.create_user(_user("alice"))
        await store.delete_user(created.id, expected_version=1)
        with pytest.raises(NotFound):
            await store.get_user(created.id)

    async def test_delete_user_removes_its_memberships(self, store: Store) -> None:
        alice = await store.create_user(_user("alice"))
        bob = await store.create_user(_user("bob"))
        group = await store.create_group(_group("staff", alice.id, bob.id))
        await store.delete_user(alice.id)
        members = (await store.get_group(group.id)).members
        assert [member.value for member in members] == [bob.id]

    async def test_delete_user_does_not_revoke_its_tokens(self, store: Store, now: int) -> None:
        alice = await store.create_user(_user("alice"))
        access, refresh = await _pair(store, 1, now, sub=alice.id)
        await store.delete_user(alice.id)
        record = await store.get_access_token(access.token_hash, now)
        assert record is not None and record.active is True
        assert await store.get_refresh_token(refresh.token_hash, now) == refresh

    async def test_delete_user_removes_its_credentials(self, store: Store) -> None:
        created = await store.create_user(_user("alice", id="reused-id"), password_hash="h1")
        await store.set_totp(created.id, "JBSWY3DPEHPK3PXP", confirmed=True)
        await store.delete_user(created.id)
        with pytest.raises(NotFound):
            await store.get_credentials(created.id)
        again = await store.create_user(_user("alice", id="reused-id"))
        credentials = await store.get_credentials(again.id)
        assert credentials.password_hash is None
        assert credentials.totp_secret is None
        assert credentials.totp_confirmed is False

    async def test_list_users_orders_by_id_and_counts_all(self, store: Store) -> None:
        for user_id, name in (("u3", "carol"), ("u1", "alice"), ("u2", "bob")):
            await store.create_user(_user(name, id=user_id))
        page = await store.list_users(ListQuery())
        assert [user.id for user in page.items] == ["u1", "u2", "u3"]
        assert (page.total, page.start_index) == (3, 1)

    async def test_list_users_pages_with_a_1_based_start_index(self, store: Store) -> None:
        for n in range(5):
            await store.create_user(_user(f"user{n}", id=f"u{n}"))
        page = await store.list_users(ListQuery(start_index=2, count=2))
        assert [user.id for user in page.items] == ["u1", "u2"]
        assert (page.total, page.start_index) == (5, 2)

    async def test_list_users_past_the_end_is_empty_with_the_total(self, store: Store) -> None:
        await store.create_user(_user("alice"))
        page = await store.list_users(ListQuery(start_index=5, count=10))
        assert page.items == ()
        assert page.total == 1

    async def test_list_users_with_count_0_gives_only_the_total(self, store: Store) -> None:
        await store.create_user(_user("alice"))
        await store.create_user(_user("bob"))
        page = await store.list_users(ListQuery(count=0))
        assert page.items == ()
        assert page.total == 2

    async def test_list_users_pages_are_stable_and_disjoint(self, store: Store) -> None:
        for n in range(7):
            await store.create_user(_user(f"user{n}"))
        seen: list[str] = []
        for start in (1, 4, 7):
            page = await store.list_users(ListQuery(start_index=start, count=3))
            seen.extend(user.id for user in page.items)
        assert seen == sorted(seen)
        assert len(set(seen)) == 7

    async def test_list_users_filter_eq_on_user_name_ignores_case(self, store: Store) -> None:
        alice = await store.create_user(_user("Alice"))
        await store.create_user(_user("bob"))
        page = await store.list_users(ListQuery(filter=_eq("username", "aLiCe")))
        assert [user.id for user in page.items] == [alice.id]
        assert page.total == 1

    async def test_list_users_filter_or_of_two_eq(self, store: Store) -> None:
        for name, user_id in (("alice", "u1"), ("bob", "u2"), ("carol", "u3")):
            await store.create_user(_user(name, id=user_id))
        expr = Or(_eq("username", "carol"), _eq("username", "alice"))
        page = await store.list_users(ListQuery(filter=expr))
        assert [user.id for user in page.items] == ["u1", "u3"]
        assert page.total == 2

    async def test_list_users_filter_and_of_two_eq(self, store: Store) -> None:
        await store.create_user(_user("alice", id="u1", external_id="e1"))
        await store.create_user(_user("bob", id="u2", external_id="e1"))
        expr = And(_eq("externalid", "e1"), _eq("username", "BOB"))
        page = await store.list_users(ListQuery(filter=expr))
        assert [user.id for user in page.items] == ["u2"]

    async def test_list_users_filter_total_counts_matches_beyond_the_page(
        self, store: Store
    ) -> None:
        for n in range(4):
            await store.create_user(_user(f"user{n}", id=f"u{n}", external_id="team"))
        await store.create_user(_user("other", id="u9", external_id="solo"))
        page = await store.list_users(ListQuery(filter=_eq("externalid", "team"), count=1))
        assert [user.id for user in page.items] == ["u0"]
        assert page.total == 4

    # Groups

    async def test_create_group_generates_id_and_sets_version_1(self, store: Store) -> None:
        created = await store.create_group(_group("staff"))
        assert created.id
        assert created.version == 1
        assert await store.get_group(created.id) == created

    async def test_get_group_fills_member_display_with_user_name(self, store: Store) -> None:
        alice = await store.create_user(_user("alice"))
        bob = await store.create_user(_user("bob"))
        group = await store.create_group(_group("staff", alice.id, bob.id))
        members = (await store.get_group(group.id)).members
        assert {(m.value, m.display) for m in members} == {(alice.id, "alice"), (bob.id, "bob")}

    async def test_member_display_given_on_write_is_ignored(self, store: Store) -> None:
        alice = await store.create_user(_user("alice"))
        group = Group(display_name="staff", members=(Member(value=alice.id, display="bogus"),))
        created = await store.create_group(group)
        assert [m.display for m in (await store.get_group(created.id)).members] == ["alice"]

    async def test_member_display_follows_a_renamed_user(self, store: Store) -> None:
        alice = await store.create_user(_user("alice"))
        group = await store.create_group(_group("staff", alice.id))
        await store.replace_user(_with(alice, user_name="alicia"))
        members = (await store.get_group(group.id)).members
        assert [m.display for m in members] == ["alicia"]

    async def test_get_unknown_group_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.get_group("no-such-group")

    async def test_display_name_clash_differing_only_in_case_is_a_conflict(
        self, store: Store
    ) -> None:
        await store.create_group(_group("Staff"))
        with pytest.raises(Conflict) as raised:
            await store.create_group(_group("sTAFF"))
        assert raised.value.attribute == "displayName"

    async def test_create_group_with_an_existing_id_is_a_conflict(self, store: Store) -> None:
        await store.create_group(msgspec.structs.replace(_group("staff"), id="same-id"))
        with pytest.raises(Conflict) as raised:
            await store.create_group(msgspec.structs.replace(_group("admins"), id="same-id"))
        assert raised.value.attribute == "id"
        assert (await store.get_group("same-id")).display_name == "staff"

    async def test_create_group_with_an_unknown_member_is_an_invalid_reference(
        self, store: Store
    ) -> None:
        alice = await store.create_user(_user("alice"))
        with pytest.raises(InvalidReference):
            await store.create_group(_group("staff", alice.id, "no-such-user"))
        assert (await store.list_groups(ListQuery())).total == 0
        assert (await store.get_user(alice.id)).groups == ()

    async def test_get_user_fills_groups_from_memberships(self, store: Store) -> None:
        alice = await store.create_user(_user("alice"))
        staff = await store.create_group(_group("staff", alice.id))
        admins = await store.create_group(_group("admins", alice.id))
        await store.create_group(_group("others"))
        groups = (await store.get_user(alice.id)).groups
        assert {(g.value, g.display) for g in groups} == {
            (staff.id, "staff"),
            (admins.id, "admins"),
        }

    async def test_replace_group_replaces_members_and_increments_version(
        self, store: Store
    ) -> None:
        alice = await store.create_user(_user("alice"))
        bob = await store.create_user(_user("bob"))
        group = await store.create_group(_group("staff", alice.id))
        replacement = Group(id=group.id, display_name="Staff", members=(Member(value=bob.id),))
        replaced = await store.replace_group(replacement)
        assert replaced.version == 2
        assert replaced.created == group.created
        assert replaced.display_name == "Staff"
        assert [m.value for m in (await store.get_group(group.id)).members] == [bob.id]
        assert (await store.get_user(alice.id)).groups == ()
        assert [g.value for g in (await store.get_user(bob.id)).groups] == [group.id]

    async def test_user_groups_follow_a_renamed_group(self, store: Store) -> None:
        alice = await store.create_user(_user("alice"))
        group = await store.create_group(_group("staff", alice.id))
        await store.replace_group(
            Group(id=group.id, display_name="crew", members=(Member(value=alice.id),))
        )
        assert [g.display for g in (await store.get_user(alice.id)).groups] == ["crew"]

    async def test_replace_group_with_a_stale_version_fails(self, store: Store) -> None:
        group = await store.create_group(_group("staff"))
        await store.replace_group(group)
        with pytest.raises(PreconditionFailed):
            await store.replace_group(group, expected_version=1)
        assert (await store.get_group(group.id)).version == 2

    async def test_replace_group_with_an_unknown_member_changes_nothing(
        self, store: Store
    ) -> None:
        alice = await store.create_user(_user("alice"))
        group = await store.create_group(_group("staff", alice.id))
        with pytest.raises(InvalidReference):
            await store.replace_group(
                Group(id=group.id, display_name="staff", members=(Member(value="ghost"),))
            )
        stored = await store.get_group(group.id)
        assert [m.value for m in stored.members] == [alice.id]
        assert stored.version == 1

    async def test_replace_unknown_group_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.replace_group(Group(id="no-such-group", display_name="x"))

    async def test_replace_group_to_a_taken_name_is_a_conflict(self, store: Store) -> None:
        await store.create_group(_group("staff"))
        other = await store.create_group(_group("others"))
        with pytest.raises(Conflict) as raised:
            await store.replace_group(Group(id=other.id, display_name="STAFF"))
        assert raised.value.attribute == "displayName"

    async def test_delete_group_removes_it_and_its_memberships(self, store: Store) -> None:
        alice = await store.create_user(_user("alice"))
        group = await store.create_group(_group("staff", alice.id))
        await store.delete_group(group.id)
        with pytest.raises(NotFound):
            await store.get_group(group.id)
        assert (await store.get_user(alice.id)).groups == ()
        assert (await store.create_group(_group("STAFF"))).display_name == "STAFF"

    async def test_delete_group_with_a_stale_version_fails(self, store: Store) -> None:
        group = await store.create_group(_group("staff"))
        await store.replace_group(group)
        with pytest.raises(PreconditionFailed):
            await store.delete_group(group.id, expected_version=1)
        assert (await store.get_group(group.id)).version == 2

    async def test_delete_unknown_group_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.delete_group("no-such-group")

    async def test_list_groups_orders_by_id_and_pages(self, store: Store) -> None:
        for n in (3, 1, 2, 0):
            await store.create_group(Group(id=f"g{n}", display_name=f"group {n}"))
        page = await store.list_groups(ListQuery(start_index=2, count=2))
        assert [group.id for group in page.items] == ["g1", "g2"]
        assert page.total == 4

    async def test_list_groups_filter_eq_on_display_name_ignores_case(
        self, store: Store
    ) -> None:
        alice = await store.create_user(_user("alice"))
        staff = await store.create_group(_group("Staff", alice.id))
        await store.create_group(_group("others"))
        page = await store.list_groups(ListQuery(filter=_eq("displayname", "STAFF")))
        assert [group.id for group in page.items] == [staff.id]
        assert [m.display for m in page.items[0].members] == ["alice"]

    async def test_list_groups_with_count_0_gives_only_the_total(self, store: Store) -> None:
        await store.create_group(_group("staff"))
        page = await store.list_groups(ListQuery(count=0))
        assert (page.items, page.total) == ((), 1)

    # Sorting (ListQuery.sort, domain.filters.SortKey): orders worked out by hand from the
    # SortKey semantics; FilterAgreement also compares every sortable attribute with memory.

    async def test_user_name_sorts_case_insensitively_by_code_point(self, store: Store) -> None:
        for user_id, name in (("u-1", "bob"), ("u-2", "Alice"), ("u-3", "Émile"),
                              ("u-4", "carol")):
            await store.create_user(_user(name, id=user_id))
        assert await _user_ids(store, _by("username")) == ["u-2", "u-1", "u-4", "u-3"]
        assert await _user_ids(store, _by("username", descending=True)) == [
            "u-3", "u-4", "u-1", "u-2"]

    async def test_missing_and_empty_values_sort_last_then_reverse(self, store: Store) -> None:
        await store.create_user(_user("a", id="u-1", display_name="Zed"))
        await store.create_user(_user("b", id="u-2"))
        await store.create_user(_user("c", id="u-3", display_name=""))
        await store.create_user(_user("d", id="u-4", display_name="amy"))
        assert await _user_ids(store, _by("displayname")) == ["u-4", "u-1", "u-2", "u-3"]
        # Descending is the exact reverse, ties (by id) included.
        assert await _user_ids(store, _by("displayname", descending=True)) == [
            "u-3", "u-2", "u-1", "u-4"]

    async def test_case_exact_strings_sort_by_code_point(self, store: Store) -> None:
        await store.create_user(_user("a", id="u-1", external_id="b"))
        await store.create_user(_user("b", id="u-2", external_id="B"))
        await store.create_user(_user("c", id="u-3", external_id="a"))
        assert await _user_ids(store, _by("externalid")) == ["u-2", "u-3", "u-1"]

    async def test_name_parts_and_times(self, store: Store) -> None:
        await store.create_user(_user("a", id="u-1", name=Name(given_name="zoe"),
                                      created=30, last_modified=5))
        await store.create_user(_user("b", id="u-2", name=Name(given_name="Yann"),
                                      created=10, last_modified=5))
        await store.create_user(_user("c", id="u-3", created=20, last_modified=1))
        assert await _user_ids(store, _by("name", "givenname")) == ["u-2", "u-1", "u-3"]
        assert await _user_ids(store, _by("meta", "created")) == ["u-2", "u-3", "u-1"]
        assert await _user_ids(store, _by("meta", "lastmodified", descending=True)) == [
            "u-2", "u-1", "u-3"]

    async def test_emails_sort_by_the_primary_value_else_the_first(self, store: Store) -> None:
        await store.create_user(_user("a", id="u-1", emails=(
            Email("z@x", "work"), Email("b@x", "home", primary=True))))
        await store.create_user(_user("b", id="u-2", emails=(
            Email("c@x", "home"), Email("a@x", "work"))))
        await store.create_user(_user("c", id="u-3"))
        assert await _user_ids(store, _by("emails", "value")) == ["u-1", "u-2", "u-3"]
        assert await _user_ids(store, _by("emails", "type")) == ["u-1", "u-2", "u-3"]
        # false before true; no email at all is missing.
        assert await _user_ids(store, _by("emails", "primary")) == ["u-2", "u-1", "u-3"]

    async def test_memberships_sort_by_first_value(self, store: Store) -> None:
        for user_id, name in (("u-1", "zed"), ("u-2", "amy"), ("u-3", "bob")):
            await store.create_user(_user(name, id=user_id))
        await store.create_group(msgspec.structs.replace(_group("B", "u-1", "u-2"), id="g-2"))
        await store.create_group(msgspec.structs.replace(_group("a", "u-3", "u-2"), id="g-1"))
        await store.create_group(msgspec.structs.replace(_group("c"), id="g-3"))
        # Members as stored: g-1's first is u-3 (bob), g-2's is u-1 (zed); g-3 has none.
        assert await _group_ids(store, _by("members", "display")) == ["g-1", "g-2", "g-3"]
        assert await _group_ids(store, _by("members", "value")) == ["g-2", "g-1", "g-3"]
        assert await _group_ids(store, _by("displayname", descending=True)) == [
            "g-3", "g-2", "g-1"]
        # A user's groups come by group id: u-2's first group is g-1 ("a").
        assert await _user_ids(store, _by("groups", "display")) == ["u-2", "u-3", "u-1"]
        assert await _user_ids(store, _by("groups", "value")) == ["u-2", "u-3", "u-1"]

    async def test_ties_break_by_id_and_pages_follow_the_sort(self, store: Store) -> None:
        for user_id in ("u-3", "u-1", "u-4", "u-2"):
            await store.create_user(_user(f"name-{user_id}", id=user_id, created=7))
        assert await _user_ids(store, _by("meta", "created")) == ["u-1", "u-2", "u-3", "u-4"]
        page = await store.list_users(_by("meta", "created", descending=True,
                                          start_index=2, count=2))
        assert [u.id for u in page.items] == ["u-3", "u-2"] and page.total == 4

    async def test_sort_applies_after_the_filter(self, store: Store) -> None:
        for user_id, name, active in (("u-1", "bob", True), ("u-2", "al", True),
                                      ("u-3", "aaron", False)):
            await store.create_user(_user(name, id=user_id, active=active))
        query = ListQuery(filter=parse_filter("active eq true"),
                          sort=SortKey(path=AttrPath("username")))
        assert await _user_ids(store, query) == ["u-2", "u-1"]

    async def test_unassigned_active_is_kept_and_reads_as_missing(self, store: Store) -> None:
        created = await store.create_user(_user("ghost", id="u-1", active=None))
        await store.create_user(_user("on", id="u-2", active=True))
        await store.create_user(_user("off", id="u-3", active=False))
        assert created.active is None and (await store.get_user("u-1")).active is None
        present = await store.list_users(ListQuery(filter=parse_filter("active pr")))
        assert sorted(u.id for u in present.items) == ["u-2", "u-3"]
        # A missing boolean reads as false (the filter rules of domain.scim.evaluation).
        off = await store.list_users(ListQuery(filter=parse_filter("active eq false")))
        assert sorted(u.id for u in off.items) == ["u-1", "u-3"]
        assert await _user_ids(store, _by("active")) == ["u-3", "u-2", "u-1"]

    # Big groups

    async def _staff(self, store: Store, size: int) -> tuple[Group, list[User]]:
        users = [await store.create_user(_user(f"user-{i}")) for i in range(size)]
        group = await store.create_group(_group("staff", *(u.id for u in users[:-1])))
        return group, users

    async def test_get_group_without_members_has_none_and_the_rest(self, store: Store) -> None:
        group, _ = await self._staff(store, 3)
        bare = await store.get_group(group.id, members=False)
        assert bare == msgspec.structs.replace(group, members=())
        page = await store.list_groups(ListQuery(), members=False)
        assert page.items == (bare,)

    async def test_list_groups_without_members_still_filters_on_members(
        self, store: Store
    ) -> None:
        group, users = await self._staff(store, 3)
        await store.create_group(_group("others"))
        query = ListQuery(filter=Compare(AttrPath("members"), "eq", users[0].id))
        page = await store.list_groups(query, members=False)
        assert [(g.id, g.members) for g in page.items] == [(group.id, ())]

    async def test_add_members_appends_in_order_and_bumps_the_version(
        self, store: Store
    ) -> None:
        group, users = await self._staff(store, 3)
        newcomer = await store.create_user(_user("newcomer"))
        changed = await store.add_members(group.id, (users[2].id, newcomer.id),
                                          last_modified=1_700_000_000)
        assert (changed.version, changed.last_modified, changed.members) == (
            2, 1_700_000_000, ())
        assert (changed.display_name, changed.created) == (group.display_name, group.created)
        read = await store.get_group(group.id)
        assert [m.value for m in read.members] == [u.id for u in users] + [newcomer.id]
        assert read.version == 2
        assert (await store.get_user(newcomer.id)).groups == (
            GroupRef(value=group.id, display="staff"),)

    async def test_add_members_of_members_changes_nothing(self, store: Store) -> None:
        group, users = await self._staff(store, 3)
        same = await store.add_members(group.id, (users[0].id, users[0].id),
                                       last_modified=1_700_000_000)
        assert (same.version, same.last_modified) == (1, group.last_modified)
        assert await store.get_group(group.id) == group

    async def test_add_members_with_an_unknown_user_changes_nothing(
        self, store: Store
    ) -> None:
        group, users = await self._staff(store, 3)
        with pytest.raises(InvalidReference):
            await store.add_members(group.id, (users[2].id, "no-such-user"),
                                    last_modified=1_700_000_000)
        assert await store.get_group(group.id) == group

    async def test_remove_members_removes_only_those_and_bumps_the_version(
        self, store: Store
    ) -> None:
        group, users = await self._staff(store, 4)
        changed = await store.remove_members(group.id, (users[1].id, "not-a-member"),
                                             last_modified=1_700_000_000)
        assert (changed.version, changed.last_modified, changed.members) == (
            2, 1_700_000_000, ())
        read = await store.get_group(group.id)
        assert [m.value for m in read.members] == [users[0].id, users[2].id]
        assert (await store.get_user(users[1].id)).groups == ()
        unchanged = await store.remove_members(group.id, (users[3].id,), last_modified=5)
        assert unchanged.version == 2

    async def test_member_changes_check_the_expected_version(self, store: Store) -> None:
        group, users = await self._staff(store, 3)
        with pytest.raises(PreconditionFailed):
            await store.add_members(group.id, (users[2].id,), last_modified=5,
                                    expected_version=7)
        with pytest.raises(PreconditionFailed):
            await store.remove_members(group.id, (users[0].id,), last_modified=5,
                                       expected_version=7)
        assert await store.get_group(group.id) == group
        changed = await store.add_members(group.id, (users[2].id,), last_modified=5,
                                          expected_version=1)
        assert changed.version == 2

    async def test_member_changes_of_an_unknown_group_raise_not_found(
        self, store: Store
    ) -> None:
        user = await store.create_user(_user("alice"))
        with pytest.raises(NotFound):
            await store.add_members("no-such-group", (user.id,), last_modified=5)
        with pytest.raises(NotFound):
            await store.remove_members("no-such-group", (user.id,), last_modified=5)
        with pytest.raises(NotFound):
            await store.get_group("no-such-group", members=False)

    async def test_a_member_added_after_a_replace_comes_last(self, store: Store) -> None:
        group, users = await self._staff(store, 3)
        await store.replace_group(_with_members(group, users[1].id, users[0].id))
        await store.add_members(group.id, (users[2].id,), last_modified=5)
        read = await store.get_group(group.id)
        assert [m.value for m in read.members] == [users[1].id, users[0].id, users[2].id]


def _with_members(group: Group, *user_ids: str) -> Group:
    return msgspec.structs.replace(group, members=tuple(Member(value=i) for i in user_ids))

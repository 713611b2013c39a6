"""The identities part of the Store contract: users, groups and their memberships
(the ``UserStore`` and ``GroupStore`` ports)."""

from __future__ import annotations

import msgspec
import pytest

from adapters.testing.contract.fixtures import StoreFixtures, _eq, _group, _pair, _user, _with
from domain.entities import Email, Group, GroupRef, Member, Name, User
from domain.errors import Conflict, InvalidReference, NotFound, PreconditionFailed
from domain.filter_parser import parse_filter
from domain.filters import And, AttrPath, ListQuery, Or, SortKey
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

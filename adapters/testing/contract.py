"""The Store contract suite: one set of tests every ``Store`` adapter must pass.

See :class:`StoreContract` for how to run it against an adapter.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
import pytest

from adapters.testing.contract_transfer import TransferContract
from domain.entities import (
    AccessToken,
    AuthorizationCode,
    ConsumedCode,
    Email,
    Group,
    GroupRef,
    Member,
    Name,
    RefreshToken,
    Reused,
    Taken,
    Unknown,
    User,
)
from domain.errors import Conflict, InvalidReference, NotFound, PreconditionFailed
from domain.filters import And, AttrPath, Compare, ListQuery, Or
from domain.tokens import hash_token
from ports.store import Store

HOUR = 3600
DAY = 86400
CONCURRENCY = 50


def _user(user_name: str, **fields: object) -> User:
    user = User(user_name=user_name, created=1_600_000_000, last_modified=1_600_000_000)
    return _with(user, **fields)


def _with(user: User, **changes: object) -> User:
    """``user`` with some attributes changed."""
    return msgspec.structs.replace(user, **changes)


def _group(display_name: str, *member_ids: str) -> Group:
    return Group(
        display_name=display_name,
        members=tuple(Member(value=member_id) for member_id in member_ids),
        created=1_600_000_000,
        last_modified=1_600_000_000,
    )


def _eq(attr: str, value: str) -> Compare:
    return Compare(AttrPath(attr), "eq", value)


def _code(name: str, exp: int, *, grant_id: str = "grant-code") -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=hash_token(name),
        client_id="client-a",
        redirect_uri="https://client.example/cb",
        scope="openid profile",
        exp=exp,
        grant_id=grant_id,
        user_id="user-1",
        nonce="n-0S6",
        pkce_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        pkce_method="S256",
        auth_time=exp - 600,
        mfa_verified=True,
    )


def _access(
    name: str,
    now: int,
    *,
    ttl: int = HOUR,
    grant_id: str | None = None,
    sub: str | None = None,
) -> AccessToken:
    return AccessToken(
        token_hash=hash_token(name),
        token_display=name[:7] + "...",
        active=True,
        scope="openid read",
        client_id="client-a",
        exp=now + ttl,
        iat=now,
        sub=sub,
        token_binding=None,
        mfa_verified=False,
        grant_id=grant_id,
        auth_time=now - 10 if sub else None,
    )


def _refresh(
    name: str,
    access: AccessToken,
    now: int,
    *,
    ttl: int = DAY,
    grant_id: str = "grant-1",
) -> RefreshToken:
    return RefreshToken(
        token_hash=hash_token(name),
        access_token_hash=access.token_hash,
        exp=now + ttl,
        iat=now,
        grant_id=grant_id,
        client_id=access.client_id,
        scope=access.scope,
        sub=access.sub,
        mfa_verified=access.mfa_verified,
        auth_time=access.auth_time,
    )


async def _pair(
    store: Store, n: int, now: int, *, grant_id: str = "grant-1", sub: str | None = "user-1"
) -> tuple[AccessToken, RefreshToken]:
    access = _access(f"tk_{grant_id}_{n}", now, grant_id=grant_id, sub=sub)
    refresh = _refresh(f"rt_{grant_id}_{n}", access, now, grant_id=grant_id)
    await store.save_tokens(access, refresh, now)
    return access, refresh


class StoreContract(TransferContract):
    """The behaviour every :class:`ports.store.Store` adapter must have, as pytest tests.

    To test an adapter, subclass this class in a test module whose class name starts with
    ``Test`` and override the ``store`` fixture so that it yields a fresh, empty store
    and closes it afterwards::

        import pytest_asyncio
        from adapters.testing import StoreContract

        class TestMyStore(StoreContract):
            @pytest_asyncio.fixture
            async def store(self):
                s = await open_my_store()
                yield s
                await s.close()

    Every test gets its own store and needs nothing else from the adapter: the suite talks
    only through the port, so an adapter passes it by behaving as the port's docstrings
    say. Times come from the ``now`` fixture (a fixed Unix time); adapters must decide
    expiry from the ``now`` they are given, never from a clock of their own.

    The tests are async and need ``pytest-asyncio`` (``pip install auth-service[testing]``).
    They carry its ``asyncio`` mark and the suite's own fixtures are plain or
    ``pytest_asyncio`` fixtures, so it runs under pytest-asyncio's strict mode (its default)
    as well as under auto mode. The override must be a ``@pytest_asyncio.fixture``, which
    works in both modes; a ``@pytest.fixture`` on an ``async def`` works only in auto mode,
    and strict mode reports it as "requested an async fixture 'store', with no plugin or
    hook that handled it".

    Tests named ``test_concurrent_*`` start 50 callers at once with ``asyncio.gather`` and
    check that single-use operations have exactly one winner. An adapter that cannot be
    driven concurrently from one event loop (a single-connection test double, say) may opt
    out by saying why, and the tests are then reported as skipped with that reason::

        class TestMyStore(StoreContract):
            concurrency_skip_reason = "one connection: callers are serialised anyway"

    Individual tests can be skipped the same way pytest allows for any inherited test:
    redefine the method in the subclass and decorate it with ``pytest.mark.skip(reason=...)``.

    The semantics pinned down here are those of the port's docstrings (``ports/store.py``):
    expiry at ``exp <= now``, what ``purge_expired`` counts where, what ``counts`` counts,
    how ``hit`` windows align, what case-insensitive means.
    """

    concurrency_skip_reason: ClassVar[str | None] = None

    # Marks every inherited test, so the suite also runs under pytest-asyncio's strict mode.
    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    if TYPE_CHECKING:
        # Any: an override of any shape (an async generator, with fixtures of its own as
        # parameters) type-checks under mypy --strict; the tests receive a Store.
        store: Any
    else:

        @pytest.fixture
        def store(self):
            """A fresh, empty store, closed after the test. Adapters override this fixture.

            Plain (not async) here, so that a subclass that forgets to override it gets
            this message in any pytest-asyncio mode.
            """
            raise NotImplementedError("override the `store` fixture to test an adapter")

    @pytest.fixture
    def now(self) -> int:
        """The time every test passes to the store, in Unix seconds."""
        return 1_700_000_000

    def _require_concurrency(self) -> None:
        if self.concurrency_skip_reason is not None:
            pytest.skip(self.concurrency_skip_reason)

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

    # Credentials

    async def test_credentials_of_an_unknown_user_raise_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.get_credentials("no-such-user")

    async def test_a_new_user_has_no_credentials(self, store: Store) -> None:
        created = await store.create_user(_user("alice"))
        credentials = await store.get_credentials(created.id)
        assert credentials.user_id == created.id
        assert (credentials.password_hash, credentials.totp_secret) == (None, None)
        assert credentials.totp_confirmed is False

    async def test_set_password_hash_then_clear_it(self, store: Store) -> None:
        created = await store.create_user(_user("alice"))
        await store.set_password_hash(created.id, "$argon2id$new")
        assert (await store.get_credentials(created.id)).password_hash == "$argon2id$new"
        await store.set_password_hash(created.id, None)
        assert (await store.get_credentials(created.id)).password_hash is None

    async def test_set_password_hash_of_an_unknown_user_raises_not_found(
        self, store: Store
    ) -> None:
        with pytest.raises(NotFound):
            await store.set_password_hash("no-such-user", "$argon2id$x")

    async def test_set_totp_then_confirm_it(self, store: Store) -> None:
        created = await store.create_user(_user("alice"), password_hash="$argon2id$pw")
        await store.set_totp(created.id, "JBSWY3DPEHPK3PXP", confirmed=False)
        pending = await store.get_credentials(created.id)
        assert (pending.totp_secret, pending.totp_confirmed) == ("JBSWY3DPEHPK3PXP", False)
        await store.set_totp(created.id, "JBSWY3DPEHPK3PXP", confirmed=True)
        confirmed = await store.get_credentials(created.id)
        assert confirmed.totp_confirmed is True
        assert confirmed.password_hash == "$argon2id$pw"

    async def test_set_totp_none_clears_it(self, store: Store) -> None:
        created = await store.create_user(_user("alice"))
        await store.set_totp(created.id, "JBSWY3DPEHPK3PXP", confirmed=True)
        await store.set_totp(created.id, None, confirmed=False)
        credentials = await store.get_credentials(created.id)
        assert (credentials.totp_secret, credentials.totp_confirmed) == (None, False)

    async def test_set_totp_of_an_unknown_user_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.set_totp("no-such-user", "JBSWY3DPEHPK3PXP", confirmed=False)

    # Authorization codes

    async def test_take_code_returns_the_saved_code(self, store: Store, now: int) -> None:
        code = _code("ac_one", now + 600)
        await store.save_code(code, now)
        assert await store.take_code(code.code_hash, now, remember_until=now + 600) == code

    async def test_take_unknown_code_returns_none(self, store: Store, now: int) -> None:
        assert await store.take_code(hash_token("ac_none"), now, remember_until=now + 60) is None

    async def test_an_expired_code_is_never_returned(self, store: Store, now: int) -> None:
        code = _code("ac_old", now + 600)
        await store.save_code(code, now)
        taken = await store.take_code(code.code_hash, now + 600, remember_until=now + 1200)
        assert taken is None

    async def test_second_take_of_a_code_returns_its_tombstone(
        self, store: Store, now: int
    ) -> None:
        code = _code("ac_twice", now + 600, grant_id="grant-x")
        await store.save_code(code, now)
        await store.take_code(code.code_hash, now, remember_until=now + 600)
        again = await store.take_code(code.code_hash, now + 1, remember_until=now + 600)
        assert again == ConsumedCode(code.code_hash, "grant-x", "client-a")

    async def test_code_tombstone_is_kept_until_remember_until_only(
        self, store: Store, now: int
    ) -> None:
        code = _code("ac_tomb", now + 60)
        await store.save_code(code, now)
        await store.take_code(code.code_hash, now, remember_until=now + 900)
        later = await store.take_code(code.code_hash, now + 899, remember_until=now + 900)
        assert isinstance(later, ConsumedCode)
        assert await store.take_code(code.code_hash, now + 900, remember_until=now + 900) is None

    async def test_concurrent_takes_of_a_code_have_exactly_one_winner(
        self, store: Store, now: int
    ) -> None:
        self._require_concurrency()
        code = _code("ac_race", now + 600)
        await store.save_code(code, now)
        results = await asyncio.gather(
            *(
                store.take_code(code.code_hash, now, remember_until=now + 600)
                for _ in range(CONCURRENCY)
            )
        )
        assert [r for r in results if isinstance(r, AuthorizationCode)] == [code]
        # Every loser came after the winner: it must see a replay, so the grant gets revoked.
        losers = [r for r in results if not isinstance(r, AuthorizationCode)]
        assert losers == [ConsumedCode(code.code_hash, code.grant_id, code.client_id)] * (
            CONCURRENCY - 1
        )

    # Access tokens

    async def test_get_access_token_returns_the_saved_record(
        self, store: Store, now: int
    ) -> None:
        access = _access("tk_one", now, grant_id="grant-1", sub="user-1")
        await store.save_tokens(access, None, now)
        assert await store.get_access_token(access.token_hash, now) == access

    async def test_get_unknown_access_token_returns_none(self, store: Store, now: int) -> None:
        assert await store.get_access_token(hash_token("tk_none"), now) is None

    async def test_an_expired_access_token_is_never_returned(
        self, store: Store, now: int
    ) -> None:
        access = _access("tk_old", now, ttl=60)
        await store.save_tokens(access, None, now)
        assert await store.get_access_token(access.token_hash, now + 59) is not None
        assert await store.get_access_token(access.token_hash, now + 60) is None

    async def test_revoke_access_token_keeps_the_record_inactive_with_its_expiry(
        self, store: Store, now: int
    ) -> None:
        access = _access("tk_rev", now)
        await store.save_tokens(access, None, now)
        assert await store.revoke_access_token(access.token_hash, now) is True
        revoked = await store.get_access_token(access.token_hash, now + 1)
        assert revoked is not None
        assert revoked.active is False
        assert revoked.exp == access.exp

    async def test_revoke_unknown_access_token_returns_false(
        self, store: Store, now: int
    ) -> None:
        assert await store.revoke_access_token(hash_token("tk_none"), now) is False

    async def test_revoke_expired_access_token_returns_false(
        self, store: Store, now: int
    ) -> None:
        access = _access("tk_exp", now, ttl=60)
        await store.save_tokens(access, None, now)
        assert await store.revoke_access_token(access.token_hash, now + 60) is False

    async def test_revoking_does_not_extend_an_access_token_lifetime(
        self, store: Store, now: int
    ) -> None:
        access = _access("tk_life", now, ttl=60)
        await store.save_tokens(access, None, now)
        await store.revoke_access_token(access.token_hash, now + 30)
        assert await store.get_access_token(access.token_hash, now + 60) is None

    async def test_revoke_grant_revokes_every_token_of_the_grant(
        self, store: Store, now: int
    ) -> None:
        first_access, first_refresh = await _pair(store, 1, now, grant_id="grant-1")
        second_access, second_refresh = await _pair(store, 2, now, grant_id="grant-1")
        other_access, other_refresh = await _pair(store, 1, now, grant_id="grant-2")
        assert await store.revoke_grant("grant-1", now) == 4
        for access in (first_access, second_access):
            record = await store.get_access_token(access.token_hash, now)
            assert record is not None and record.active is False
        for refresh in (first_refresh, second_refresh):
            assert await store.get_refresh_token(refresh.token_hash, now) is None
        other = await store.get_access_token(other_access.token_hash, now)
        assert other is not None and other.active is True
        assert await store.get_refresh_token(other_refresh.token_hash, now) == other_refresh

    async def test_revoke_grant_is_idempotent(self, store: Store, now: int) -> None:
        await _pair(store, 1, now, grant_id="grant-1")
        await store.revoke_grant("grant-1", now)
        assert await store.revoke_grant("grant-1", now) == 0
        assert await store.revoke_grant("no-such-grant", now) == 0

    async def test_revoke_grant_keeps_lifetimes(self, store: Store, now: int) -> None:
        access, _ = await _pair(store, 1, now, grant_id="grant-1")
        await store.revoke_grant("grant-1", now)
        assert await store.get_access_token(access.token_hash, access.exp) is None

    async def test_rotation_and_subject_revocation_keep_lifetimes(
        self, store: Store, now: int
    ) -> None:
        rotated_access, rotated = await _pair(store, 1, now, grant_id="grant-1", sub="user-1")
        await store.take_refresh_token(rotated.token_hash, now + 10)
        subject_access = _access("tk_subject_life", now, sub="user-1")
        await store.save_tokens(subject_access, None, now)
        await store.revoke_subject("user-1", now + 10)
        for access in (rotated_access, subject_access):
            record = await store.get_access_token(access.token_hash, access.exp - 1)
            assert record is not None and record.active is False
            assert record.exp == access.exp
            assert await store.get_access_token(access.token_hash, access.exp) is None

    async def test_each_token_of_a_pair_lives_until_its_own_exp(
        self, store: Store, now: int
    ) -> None:
        access = _access("tk_brief", now, ttl=60, grant_id="grant-1", sub="user-1")
        refresh = _refresh("rt_lasting", access, now, ttl=DAY)
        await store.save_tokens(access, refresh, now)
        assert await store.get_access_token(access.token_hash, now + 60) is None
        assert await store.get_refresh_token(refresh.token_hash, now + 60) == refresh
        assert await store.take_refresh_token(refresh.token_hash, now + 60) == Taken(refresh)

    async def test_revoke_subject_revokes_only_that_subjects_tokens(
        self, store: Store, now: int
    ) -> None:
        alice_access, alice_refresh = await _pair(store, 1, now, grant_id="g-a", sub="alice")
        alice_other = _access("tk_alice_cc", now, sub="alice")
        await store.save_tokens(alice_other, None, now)
        bob_access, bob_refresh = await _pair(store, 1, now, grant_id="g-b", sub="bob")
        assert await store.revoke_subject("alice", now) == 3
        for access in (alice_access, alice_other):
            record = await store.get_access_token(access.token_hash, now)
            assert record is not None and record.active is False
        assert await store.get_refresh_token(alice_refresh.token_hash, now) is None
        bob = await store.get_access_token(bob_access.token_hash, now)
        assert bob is not None and bob.active is True
        assert await store.get_refresh_token(bob_refresh.token_hash, now) == bob_refresh

    async def test_revoke_subject_drops_that_users_pending_codes(
        self, store: Store, now: int
    ) -> None:
        alice = msgspec.structs.replace(_code("ac_alice", now + 600, grant_id="g-a"),
                                        user_id="alice")
        alice_taken = msgspec.structs.replace(_code("ac_alice_used", now + 600, grant_id="g-u"),
                                              user_id="alice")
        bob = msgspec.structs.replace(_code("ac_bob", now + 600, grant_id="g-b"), user_id="bob")
        for code in (alice, alice_taken, bob):
            await store.save_code(code, now)
        await store.take_code(alice_taken.code_hash, now, remember_until=now + 600)
        assert await store.revoke_subject("alice", now + 1) == 1
        assert await store.take_code(alice.code_hash, now + 1, remember_until=now + 600) is None
        # A replay of the code taken before is still recognised, so it still revokes its grant.
        replayed = await store.take_code(alice_taken.code_hash, now + 1, remember_until=now + 600)
        assert replayed == ConsumedCode(alice_taken.code_hash, "g-u", "client-a")
        assert await store.take_code(bob.code_hash, now + 1, remember_until=now + 600) == bob
        # A code issued after the revocation (the user was reactivated) is not affected.
        again = msgspec.structs.replace(_code("ac_alice_new", now + 700, grant_id="g-n"),
                                        user_id="alice")
        await store.save_code(again, now + 2)
        assert await store.take_code(again.code_hash, now + 2, remember_until=now + 700) == again

    async def test_a_token_without_grant_or_subject_survives_revocations(
        self, store: Store, now: int
    ) -> None:
        service = _access("tk_service", now)
        await store.save_tokens(service, None, now)
        await _pair(store, 1, now, grant_id="grant-1", sub="user-1")
        await store.revoke_grant("grant-1", now)
        await store.revoke_subject("user-1", now)
        record = await store.get_access_token(service.token_hash, now)
        assert record is not None and record.active is True

    # Refresh tokens

    async def test_get_refresh_token_returns_the_saved_record(
        self, store: Store, now: int
    ) -> None:
        _, refresh = await _pair(store, 1, now)
        assert await store.get_refresh_token(refresh.token_hash, now) == refresh
        assert await store.get_refresh_token(refresh.token_hash, now) == refresh

    async def test_an_expired_refresh_token_is_never_returned(
        self, store: Store, now: int
    ) -> None:
        _, refresh = await _pair(store, 1, now)
        assert await store.get_refresh_token(refresh.token_hash, refresh.exp) is None
        assert isinstance(await store.take_refresh_token(refresh.token_hash, refresh.exp), Unknown)

    async def test_take_refresh_token_returns_it_and_revokes_its_access_token(
        self, store: Store, now: int
    ) -> None:
        access, refresh = await _pair(store, 1, now)
        assert await store.take_refresh_token(refresh.token_hash, now) == Taken(refresh)
        assert await store.get_refresh_token(refresh.token_hash, now) is None
        old = await store.get_access_token(access.token_hash, now)
        assert old is not None and old.active is False

    async def test_take_unknown_refresh_token_returns_unknown(
        self, store: Store, now: int
    ) -> None:
        assert isinstance(await store.take_refresh_token(hash_token("rt_none"), now), Unknown)

    async def test_second_take_of_a_refresh_token_is_reuse_and_revokes_the_family(
        self, store: Store, now: int
    ) -> None:
        _, refresh = await _pair(store, 1, now, grant_id="grant-1")
        await store.take_refresh_token(refresh.token_hash, now)
        new_access, new_refresh = await _pair(store, 2, now + 1, grant_id="grant-1")
        result = await store.take_refresh_token(refresh.token_hash, now + 2)
        assert result == Reused("grant-1")
        record = await store.get_access_token(new_access.token_hash, now + 2)
        assert record is not None and record.active is False
        assert await store.get_refresh_token(new_refresh.token_hash, now + 2) is None
        assert isinstance(await store.take_refresh_token(new_refresh.token_hash, now + 2), Unknown)

    async def test_reuse_leaves_other_grants_alone(self, store: Store, now: int) -> None:
        _, refresh = await _pair(store, 1, now, grant_id="grant-1")
        other_access, other_refresh = await _pair(store, 1, now, grant_id="grant-2")
        await store.take_refresh_token(refresh.token_hash, now)
        await store.take_refresh_token(refresh.token_hash, now)
        other = await store.get_access_token(other_access.token_hash, now)
        assert other is not None and other.active is True
        assert await store.get_refresh_token(other_refresh.token_hash, now) == other_refresh

    async def test_reuse_marker_expires_with_the_refresh_token(
        self, store: Store, now: int
    ) -> None:
        _, refresh = await _pair(store, 1, now)
        await store.take_refresh_token(refresh.token_hash, now)
        before = await store.take_refresh_token(refresh.token_hash, refresh.exp - 1)
        assert isinstance(before, Reused)
        assert isinstance(await store.take_refresh_token(refresh.token_hash, refresh.exp), Unknown)

    async def test_a_revoked_refresh_token_cannot_be_taken(self, store: Store, now: int) -> None:
        _, refresh = await _pair(store, 1, now, grant_id="grant-1")
        await store.revoke_grant("grant-1", now)
        assert isinstance(await store.take_refresh_token(refresh.token_hash, now), Unknown)

    async def test_concurrent_takes_of_a_refresh_token_have_exactly_one_winner(
        self, store: Store, now: int
    ) -> None:
        self._require_concurrency()
        _, refresh = await _pair(store, 1, now)
        results = await asyncio.gather(
            *(store.take_refresh_token(refresh.token_hash, now) for _ in range(CONCURRENCY))
        )
        assert [r for r in results if isinstance(r, Taken)] == [Taken(refresh)]
        losers = [r for r in results if not isinstance(r, Taken)]
        assert losers == [Reused(refresh.grant_id)] * (CONCURRENCY - 1)

    # Ephemeral state

    async def test_claim_once_has_one_winner_until_it_expires(
        self, store: Store, now: int
    ) -> None:
        assert await store.claim_once("totp:u1:123456", now + 90, now) is True
        assert await store.claim_once("totp:u1:123456", now + 90, now + 89) is False
        assert await store.claim_once("totp:u1:123456", now + 200, now + 90) is True

    async def test_claim_once_keys_are_independent(self, store: Store, now: int) -> None:
        assert await store.claim_once("lock:a", now + 60, now) is True
        assert await store.claim_once("lock:b", now + 60, now) is True

    async def test_concurrent_claims_have_exactly_one_winner(
        self, store: Store, now: int
    ) -> None:
        self._require_concurrency()
        results = await asyncio.gather(
            *(store.claim_once("lock:race", now + 60, now) for _ in range(CONCURRENCY))
        )
        assert results.count(True) == 1

    async def test_hit_counts_within_a_window(self, store: Store, now: int) -> None:
        start = now - now % 60
        assert await store.hit("login:alice", 60, start) == 1
        assert await store.hit("login:alice", 60, start + 30) == 2
        assert await store.hit("login:alice", 60, start + 59, amount=3) == 5

    async def test_hit_starts_again_in_the_next_window(self, store: Store, now: int) -> None:
        start = now - now % 60
        await store.hit("login:alice", 60, start, amount=4)
        assert await store.hit("login:alice", 60, start + 60) == 1

    async def test_hit_with_amount_0_only_reads(self, store: Store, now: int) -> None:
        start = now - now % 60
        assert await store.hit("login:alice", 60, start, amount=0) == 0
        await store.hit("login:alice", 60, start, amount=2)
        assert await store.hit("login:alice", 60, start + 1, amount=0) == 2
        assert await store.hit("login:alice", 60, start + 2, amount=0) == 2
        assert await store.hit("login:alice", 60, start + 60, amount=0) == 0

    async def test_hit_with_a_negative_amount_gives_hits_back(
        self, store: Store, now: int
    ) -> None:
        start = now - now % 60
        await store.hit("login:alice", 60, start, amount=3)
        assert await store.hit("login:alice", 60, start + 1, amount=-1) == 2
        assert await store.hit("login:alice", 60, start + 2, amount=0) == 2

    async def test_hit_keys_are_independent(self, store: Store, now: int) -> None:
        await store.hit("login:alice", 60, now, amount=5)
        assert await store.hit("login:bob", 60, now) == 1

    # Administration

    async def test_purge_removes_only_expired_data_and_counts_it(
        self, store: Store, now: int
    ) -> None:
        short_code, long_code = _code("ac_short", now + 60), _code("ac_long", now + 600)
        taken_code = _code("ac_taken", now + 60)
        for code in (short_code, long_code, taken_code):
            await store.save_code(code, now)
        await store.take_code(taken_code.code_hash, now, remember_until=now + 100)
        short_access = _access("tk_short", now, ttl=60)
        await store.save_tokens(short_access, None, now)
        short_pair = _access("tk_pair", now, ttl=60, grant_id="grant-1", sub="user-1")
        short_refresh = _refresh("rt_short", short_pair, now, ttl=100)
        await store.save_tokens(short_pair, short_refresh, now)
        long_access, long_refresh = await _pair(store, 1, now, grant_id="grant-2")
        rotated_access = _access("tk_rotated", now, ttl=100, grant_id="grant-3")
        rotated = _refresh("rt_rotated", rotated_access, now, ttl=100, grant_id="grant-3")
        await store.save_tokens(rotated_access, rotated, now)
        await store.take_refresh_token(rotated.token_hash, now)
        await store.claim_once("lock:short", now + 60, now)
        await store.claim_once("lock:long", now + 600, now)
        await store.hit("counter", 60, now - now % 60)

        purged = await store.purge_expired(now + 100)

        assert (purged.codes, purged.access_tokens, purged.refresh_tokens) == (2, 3, 1)
        assert (purged.reuse_markers, purged.other) == (1, 2)
        taken = await store.take_code(long_code.code_hash, now + 100, remember_until=now + 700)
        assert taken == long_code
        assert await store.get_access_token(long_access.token_hash, now + 100) == long_access
        assert await store.get_refresh_token(long_refresh.token_hash, now + 100) == long_refresh
        assert await store.claim_once("lock:long", now + 600, now + 100) is False

    async def test_purge_in_small_batches_removes_everything_expired(
        self, store: Store, now: int
    ) -> None:
        for n in range(7):
            await store.save_tokens(_access(f"tk_batch_{n}", now, ttl=10), None, now)
        purged = await store.purge_expired(now + 10, batch_size=2)
        assert purged.access_tokens == 7
        assert (await store.purge_expired(now + 10, batch_size=2)).total == 0

    async def test_purge_of_an_empty_store_removes_nothing(self, store: Store, now: int) -> None:
        assert (await store.purge_expired(now)).total == 0

    async def test_purge_keeps_tombstones_and_reuse_markers_while_live(
        self, store: Store, now: int
    ) -> None:
        code = _code("ac_kept", now + 60)
        await store.save_code(code, now)
        await store.take_code(code.code_hash, now, remember_until=now + 900)
        _, refresh = await _pair(store, 1, now)
        await store.take_refresh_token(refresh.token_hash, now)
        await store.purge_expired(now + 60)
        tombstone = await store.take_code(code.code_hash, now + 60, remember_until=now + 900)
        assert isinstance(tombstone, ConsumedCode)
        assert isinstance(await store.take_refresh_token(refresh.token_hash, now + 60), Reused)

    async def test_counts_report_live_records(self, store: Store, now: int) -> None:
        alice = await store.create_user(_user("alice"))
        await store.create_user(_user("bob"))
        await store.create_group(_group("staff", alice.id))
        await store.save_code(_code("ac_live", now + 600), now)
        await store.save_code(_code("ac_dead", now + 10), now)
        await _pair(store, 1, now)
        await store.save_tokens(_access("tk_dead", now, ttl=10), None, now)
        counts = await store.counts(now + 10)
        assert (counts.users, counts.groups, counts.codes) == (2, 1, 1)
        assert (counts.access_tokens, counts.refresh_tokens) == (1, 1)

    async def test_counts_include_revoked_tokens_but_no_tombstones_or_markers(
        self, store: Store, now: int
    ) -> None:
        revoked = _access("tk_counted", now)
        await store.save_tokens(revoked, None, now)
        await store.revoke_access_token(revoked.token_hash, now)
        _, rotated = await _pair(store, 1, now)
        await store.take_refresh_token(rotated.token_hash, now)
        code = _code("ac_counted", now + 600)
        await store.save_code(code, now)
        await store.take_code(code.code_hash, now, remember_until=now + 600)
        counts = await store.counts(now)
        assert (counts.access_tokens, counts.refresh_tokens, counts.codes) == (2, 0, 0)

    async def test_health_reports_every_component_up(self, store: Store) -> None:
        health = await store.health()
        assert health
        assert all(health.values())


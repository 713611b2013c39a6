"""A group of 100,000 members on PostgreSQL: adding or removing one member is one statement,
and a read without members reads none of them, whatever the group's size.

Statements are counted with a SQLAlchemy ``before_cursor_execute`` listener on the store's
engine (BEGIN/COMMIT are not cursor statements; member changes run in autocommit anyway).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy import event

from adapters.sql import SqlStore, open_sql_store
from domain import identities
from domain.entities import Group, User
from domain.errors import InvalidReference, PreconditionFailed
from tests.doubles import FakeClock
from tests.services.postgres_server import empty_migrated_database

# One database for the module (loading it takes a few seconds), so one event loop too.
pytestmark = [pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]

MEMBERS = 100_000
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def big() -> AsyncIterator[tuple[SqlStore, Group]]:
    """A store holding MEMBERS + 1 users and a group of the first MEMBERS of them, loaded
    by set-based SQL (creating them one by one would take minutes)."""
    url = await empty_migrated_database()
    store = await open_sql_store(url, migrate=False)
    group = await store.create_group(Group(display_name="everyone", created=1, last_modified=1))
    async with store._engine.begin() as conn:
        await conn.execute(sa.text(
            "INSERT INTO users (id, user_name, active, emails, phone_numbers, addresses, "
            "photos, x509_certificates, created, last_modified, version) "
            "SELECT 'user-' || lpad(n::text, 6, '0'), 'user-' || n, true, '[]', '[]', '[]', "
            "'[]', '[]', 1, 1, 1 FROM generate_series(0, :n) AS n"), {"n": MEMBERS})
        await conn.execute(sa.text(
            "INSERT INTO group_members (group_id, user_id, position, member_type) "
            "SELECT :g, 'user-' || lpad(n::text, 6, '0'), n, 'User' "
            "FROM generate_series(0, :last) AS n"), {"g": group.id, "last": MEMBERS - 1})
        await conn.execute(sa.text("ANALYZE group_members, users"))
    yield store, group
    await store.close()


def _statements(store: SqlStore) -> tuple[list[str], Any]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(store._engine.sync_engine, "before_cursor_execute", record)
    return seen, record


def _stop(store: SqlStore, record: Any) -> None:
    event.remove(store._engine.sync_engine, "before_cursor_execute", record)


OUTSIDER = f"user-{MEMBERS:06d}"


async def test_adding_and_removing_one_member_is_one_statement_each(
    big: tuple[SqlStore, Group],
) -> None:
    store, group = big
    before = await store.get_group(group.id, members=False)
    seen, record = _statements(store)
    try:
        added = await store.add_members(group.id, (OUTSIDER,), last_modified=50)
        assert len(seen) == 1, seen
        removed = await store.remove_members(group.id, (OUTSIDER,), last_modified=60)
        assert len(seen) == 2, seen
    finally:
        _stop(store, record)
    assert (added.version, removed.version) == (before.version + 1, before.version + 2)
    assert removed.members == ()
    count = await store._first(sa.text(
        "SELECT count(*) FROM group_members WHERE group_id = :g"), {"g": group.id})
    assert count is not None and count[0] == MEMBERS


async def test_patch_of_one_member_through_the_use_case_is_one_statement(
    big: tuple[SqlStore, Group],
) -> None:
    store, group = big
    seen, record = _statements(store)
    try:
        for body in (
            # Entra ID's add, then Okta's remove by filter, then Entra ID's remove.
            [{"op": "Add", "path": "members", "value": [{"value": OUTSIDER}]}],
            [{"op": "remove", "path": f'members[value eq "{OUTSIDER}"]'}],
            [{"op": "Add", "path": "members", "value": [{"value": OUTSIDER}]}],
            [{"op": "Remove", "path": "members", "value": [{"value": OUTSIDER}]}],
        ):
            seen.clear()
            started = time.perf_counter()
            patched = await identities.patch_group(
                store, FakeClock(), group.id, {"schemas": [PATCH_OP], "Operations": body},
                members=False)
            elapsed = time.perf_counter() - started
            assert len(seen) == 1, seen
            assert patched.members == ()
            # Generous bound: a read-modify-write of 100,000 members takes seconds.
            assert elapsed < 1.0
    finally:
        _stop(store, record)


async def test_a_group_read_without_members_is_one_statement(
    big: tuple[SqlStore, Group],
) -> None:
    store, group = big
    seen, record = _statements(store)
    try:
        bare = await identities.get_group(store, group.id, members=False)
        listed = await identities.list_groups(store, 'displayName eq "everyone"', None, None,
                                              members=False)
    finally:
        _stop(store, record)
    assert bare.members == () and listed.items[0].members == ()
    assert len(seen) == 3  # the group; the list's count and page
    assert not any("group_members" in statement for statement in seen)


async def test_member_pages_come_from_the_users_filter(big: tuple[SqlStore, Group]) -> None:
    store, group = big
    page = await identities.list_users(store, f'groups.value eq "{group.id}"', 99_991, 50)
    assert page.total == MEMBERS
    assert [u.id for u in page.items] == [f"user-{n:06d}" for n in range(99_990, MEMBERS)]


async def test_a_stale_version_or_an_unknown_user_changes_nothing(
    big: tuple[SqlStore, Group],
) -> None:
    store, group = big
    before = await store.get_group(group.id, members=False)
    with pytest.raises(PreconditionFailed):
        await store.add_members(group.id, (OUTSIDER,), last_modified=70,
                                expected_version=before.version - 1)
    with pytest.raises(InvalidReference):
        await store.add_members(group.id, ("no-such-user",), last_modified=70)
    assert await store.get_group(group.id, members=False) == before


async def test_concurrent_adds_of_different_users_both_land(
    big: tuple[SqlStore, Group],
) -> None:
    import asyncio

    store, group = big
    extra = [await store.create_user(User(user_name=f"extra-{i}")) for i in range(10)]
    before = await store.get_group(group.id, members=False)
    await asyncio.gather(*(
        store.add_members(group.id, (user.id,), last_modified=80) for user in extra))
    after = await store.get_group(group.id, members=False)
    assert after.version == before.version + len(extra)
    await store.remove_members(group.id, tuple(u.id for u in extra), last_modified=90)

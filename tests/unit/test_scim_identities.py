"""Identity use cases (domain.identities) over the memory store, with fakes for the other ports."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.memory.store import MemoryStore
from domain import identities
from domain.entities import AccessToken, User
from domain.errors import Conflict, InvalidReference, InvalidValue, NotFound, PreconditionFailed
from domain.filter_parser import InvalidFilter
from domain.tokens import hash_token
from tests.doubles import FakeClock, RecordingEvents
from tests.unit.session_doubles import no_sessions

NOW = 1_700_000_000
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class FakeHasher:
    async def hash(self, password: str) -> str:
        return "hashed:" + password

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return password_hash == "hashed:" + password


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def events() -> RecordingEvents:
    return RecordingEvents()


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


async def new_user(store: MemoryStore, clock: FakeClock, name: str = "bjensen",
                   **extra: Any) -> User:
    return await identities.create_user(store, clock, FakeHasher(), {"userName": name, **extra})


async def save_token(store: MemoryStore, value: str, sub: str | None) -> str:
    record = AccessToken(token_hash=hash_token(value), token_display=value[:7], active=True,
                         scope="openid", client_id="c", exp=NOW + 3600, iat=NOW, sub=sub)
    await store.save_tokens(record, None, NOW)
    return hash_token(value)


async def is_active(store: MemoryStore, token_hash: str) -> bool:
    record = await store.get_access_token(token_hash, NOW)
    return record is not None and record.is_active(NOW)


async def test_create_sets_times_and_hashes_password(store: MemoryStore, clock: FakeClock) -> None:
    user = await new_user(store, clock, password="pa55word-long")
    assert (user.created, user.last_modified, user.version) == (NOW, NOW, 1)
    credentials = await store.get_credentials(user.id)
    assert credentials.password_hash == "hashed:pa55word-long"
    assert "pa55word" not in repr(user)


async def test_create_rejects_bad_bodies(store: MemoryStore, clock: FakeClock) -> None:
    for body in ({}, {"userName": ""}, {"userName": 3}, {"userName": "a", "active": "yes"},
                 {"userName": "a", "emails": [{"value": "x", "primary": True},
                                              {"value": "y", "primary": True}]}, []):
        with pytest.raises(InvalidValue):
            await identities.create_user(store, clock, FakeHasher(), body)


async def test_duplicate_user_name_is_a_conflict(store: MemoryStore, clock: FakeClock) -> None:
    await new_user(store, clock, "BJensen")
    with pytest.raises(Conflict):
        await new_user(store, clock, "bjensen")


async def test_list_validates_the_filter(store: MemoryStore) -> None:
    with pytest.raises(InvalidFilter):
        await identities.list_users(store, 'nosuch eq "x"', None, None)
    with pytest.raises(InvalidFilter):
        await identities.list_users(store, "userName eq", None, None)
    with pytest.raises(InvalidFilter):
        await identities.list_groups(store, 'userName eq "x"', None, None)


async def test_list_window(store: MemoryStore, clock: FakeClock) -> None:
    for index in range(5):
        await new_user(store, clock, f"user{index}")
    page = await identities.list_users(store, None, -3, 2)
    assert (page.start_index, len(page.items), page.total) == (1, 2, 5)
    page = await identities.list_users(store, None, 4, -1)
    assert (len(page.items), page.total) == (0, 5)
    query = identities.list_query(None, None, 10_000, identities.USER)
    assert query.count == identities.MAX_RESULTS
    page = await identities.list_users(store, 'userName sw "USER"', 1, None)
    assert page.total == 5


async def test_patch_deactivation_revokes_only_that_users_tokens(
    store: MemoryStore, clock: FakeClock, events: RecordingEvents
) -> None:
    user = await new_user(store, clock)
    other = await new_user(store, clock, "other")
    mine = await save_token(store, "tk_mine", user.id)
    theirs = await save_token(store, "tk_theirs", other.id)
    patched = await identities.patch_user(store, clock, FakeHasher(), events, user.id,
                                          ops({"op": "Replace", "path": "active",
                                               "value": "False"}), sessions=no_sessions)
    assert patched.active is False
    assert not await is_active(store, mine)
    assert await is_active(store, theirs)
    assert events.events[-1][0] == "user_deactivated"


async def test_reactivation_does_not_revoke(store: MemoryStore, clock: FakeClock,
                                            events: RecordingEvents) -> None:
    user = await new_user(store, clock, active=False)
    token = await save_token(store, "tk_x", user.id)
    await identities.patch_user(store, clock, FakeHasher(), events, user.id,
                                ops({"op": "replace", "value": {"active": True}}),
                                sessions=no_sessions)
    assert await is_active(store, token)


async def test_put_deactivation_revokes(store: MemoryStore, clock: FakeClock,
                                        events: RecordingEvents) -> None:
    user = await new_user(store, clock)
    token = await save_token(store, "tk_put", user.id)
    await identities.replace_user(store, clock, FakeHasher(), events, user.id,
                                  {"userName": "bjensen", "active": False}, sessions=no_sessions)
    assert not await is_active(store, token)


async def test_delete_revokes_and_removes(store: MemoryStore, clock: FakeClock,
                                          events: RecordingEvents) -> None:
    user = await new_user(store, clock)
    token = await save_token(store, "tk_del", user.id)
    await identities.delete_user(store, clock, events, user.id, sessions=no_sessions)
    assert not await is_active(store, token)
    with pytest.raises(NotFound):
        await identities.get_user(store, user.id)


async def test_patch_password_hashes_without_bumping_version(
    store: MemoryStore, clock: FakeClock, events: RecordingEvents
) -> None:
    user = await new_user(store, clock)
    patched = await identities.patch_user(store, clock, FakeHasher(), events, user.id,
                                          ops({"op": "replace", "path": "password",
                                               "value": "n3w-password"}), sessions=no_sessions)
    assert patched.version == 1
    assert (await store.get_credentials(user.id)).password_hash == "hashed:n3w-password"


async def test_put_without_password_keeps_it(store: MemoryStore, clock: FakeClock,
                                             events: RecordingEvents) -> None:
    user = await new_user(store, clock, password="first-password")
    clock.value += 10
    replaced = await identities.replace_user(store, clock, FakeHasher(), events, user.id,
                                             {"userName": "bjensen", "displayName": "B"},
                                             sessions=no_sessions)
    assert (await store.get_credentials(user.id)).password_hash == "hashed:first-password"
    assert (replaced.created, replaced.last_modified, replaced.version) == (NOW, NOW + 10, 2)


async def test_noop_patch_keeps_version(store: MemoryStore, clock: FakeClock,
                                        events: RecordingEvents) -> None:
    user = await new_user(store, clock, displayName="B")
    patched = await identities.patch_user(store, clock, FakeHasher(), events, user.id,
                                          ops({"op": "replace", "path": "displayName",
                                               "value": "B"}), sessions=no_sessions)
    assert patched.version == 1


async def test_patch_with_stale_expected_version_fails_without_retry(
    store: MemoryStore, clock: FakeClock, events: RecordingEvents
) -> None:
    user = await new_user(store, clock)
    with pytest.raises(PreconditionFailed):
        await identities.patch_user(store, clock, FakeHasher(), events, user.id,
                                    ops({"op": "add", "path": "displayName", "value": "x"}),
                                    expected_version=7, sessions=no_sessions)
    assert (await store.get_user(user.id)).display_name is None


class RacingStore(MemoryStore):
    """A store where another writer changes the user between a read and the next write."""

    races = 1

    async def replace_user(self, user: User, *, expected_version: int | None = None) -> User:
        if self.races > 0:
            self.races -= 1
            current = await self.get_user(user.id)
            await super().replace_user(
                User(id=current.id, user_name=current.user_name, external_id="from-other"))
        return await super().replace_user(user, expected_version=expected_version)


async def test_patch_retries_when_it_loses_a_race(clock: FakeClock,
                                                  events: RecordingEvents) -> None:
    store = RacingStore()
    user = await new_user(store, clock)  # type: ignore[arg-type]
    patched = await identities.patch_user(store, clock, FakeHasher(), events, user.id,
                                          ops({"op": "add", "path": "displayName",
                                               "value": "mine"}), sessions=no_sessions)
    # Both writers' changes survive: the patch was re-applied on the newer version.
    assert (patched.display_name, patched.external_id, patched.version) == ("mine",
                                                                            "from-other", 3)


async def test_patch_gives_up_after_bounded_retries(clock: FakeClock,
                                                    events: RecordingEvents) -> None:
    store = RacingStore()
    store.races = identities.PATCH_ATTEMPTS
    user = await new_user(store, clock)  # type: ignore[arg-type]
    with pytest.raises(PreconditionFailed):
        await identities.patch_user(store, clock, FakeHasher(), events, user.id,
                                    ops({"op": "add", "path": "displayName", "value": "x"}),
                                    sessions=no_sessions)


async def test_groups_lifecycle(store: MemoryStore, clock: FakeClock) -> None:
    alice = await new_user(store, clock, "alice")
    bob = await new_user(store, clock, "bob")
    group = await identities.create_group(store, clock, {
        "displayName": "Admins", "members": [{"value": alice.id}]})
    group = await identities.patch_group(store, clock, group.id, ops(
        {"op": "Add", "path": "members", "value": [{"value": bob.id}]},
        {"op": "Remove", "path": f'members[value eq "{alice.id}"]'}))
    assert [m.value for m in group.members] == [bob.id]
    assert (await store.get_user(bob.id)).groups[0].display == "Admins"
    with pytest.raises(InvalidReference):
        await identities.patch_group(store, clock, group.id, ops(
            {"op": "add", "path": "members", "value": [{"value": "nobody"}]}))
    with pytest.raises(InvalidValue):
        await identities.create_group(store, clock, {
            "displayName": "Nested", "members": [{"value": group.id, "type": "Group"}]})
    same = await identities.patch_group(store, clock, group.id, ops(
        {"op": "remove", "path": 'members[value eq "not-a-member"]'}))
    assert same.version == group.version
    await identities.delete_group(store, group.id)
    assert (await store.get_user(bob.id)).groups == ()


async def test_group_conflict(store: MemoryStore, clock: FakeClock) -> None:
    await identities.create_group(store, clock, {"displayName": "Admins"})
    with pytest.raises(Conflict):
        await identities.create_group(store, clock, {"displayName": "ADMINS"})

"""SCIM PATCH on a group of 64,000 members (Entra ID and Okta push groups that large) is
linear: the work per member is a small constant whatever the operation, and the store is
called a fixed number of times. A patch that only adds or only removes members does not
even read the member list: its work is proportional to the members it names.

Work is counted, not timed: every Python function call (generator steps included) made
while the patch runs, in this thread and in worker threads, through ``sys.setprofile``.
A quadratic path (each member compared with each removed one) needs billions of calls at
this size; the counter stops it as soon as it passes the budget, so the test fails fast
instead of hanging.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest

from adapters.memory.store import MemoryStore
from domain import identities
from domain.entities import Group, Member, User
from tests.doubles import FakeClock

MEMBERS = 64_000
#: Python calls per member of the group that a patch may cost (today: 4 to 13).
CALLS_PER_MEMBER = 40
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class OverBudget(Exception):
    pass


@contextmanager
def call_budget(limit: int) -> Iterator[list[int]]:
    """Count Python calls in every thread; raise ``OverBudget`` past ``limit``."""
    count = [0]

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            count[0] += 1
            if count[0] > limit:
                raise OverBudget(f"more than {limit} calls")

    threading.setprofile(profile)  # type: ignore[arg-type]
    sys.setprofile(profile)  # type: ignore[arg-type]
    try:
        yield count
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]


class CountingStore(MemoryStore):
    """A memory store that counts the group calls a use case makes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def get_group(self, group_id: str, *, members: bool = True) -> Group:
        self.calls.append("get_group" if members else "get_group without members")
        return await super().get_group(group_id, members=members)

    async def add_members(self, group_id: str, user_ids: tuple[str, ...], *,
                          last_modified: int, expected_version: int | None = None) -> Group:
        self.calls.append("add_members")
        return await super().add_members(group_id, user_ids, last_modified=last_modified,
                                         expected_version=expected_version)

    async def remove_members(self, group_id: str, user_ids: tuple[str, ...], *,
                             last_modified: int, expected_version: int | None = None) -> Group:
        self.calls.append("remove_members")
        return await super().remove_members(group_id, user_ids, last_modified=last_modified,
                                            expected_version=expected_version)

    async def replace_group(self, group: Group, *, expected_version: int | None = None
                            ) -> Group:
        self.calls.append("replace_group")
        return await super().replace_group(group, expected_version=expected_version)


IDS = [f"user-{index:06d}" for index in range(MEMBERS + 1000)]


@pytest.fixture(scope="module")
def users() -> CountingStore:
    """65,000 users, made once: patches change only the group each test creates."""
    store = CountingStore()

    async def create() -> None:
        for user_id in IDS:
            await store.create_user(User(id=user_id, user_name=user_id))

    asyncio.run(create())
    return store


async def _big_group(store: CountingStore) -> Group:
    group = await store.create_group(Group(
        display_name="everyone", members=tuple(Member(value=i) for i in IDS[:MEMBERS])))
    store.calls.clear()
    return group


def _operations(ids: list[str] = IDS) -> dict[str, list[dict[str, Any]]]:
    outsider = ids[MEMBERS]
    return {
        "add one": [{"op": "add", "path": "members", "value": [{"value": outsider}]}],
        "add 1000": [{"op": "add", "path": "members",
                      "value": [{"value": i} for i in ids[MEMBERS:]]}],
        "remove one (Entra)": [{"op": "remove", "path": "members",
                                "value": [{"value": ids[7]}]}],
        "remove 1000 (Entra)": [{"op": "remove", "path": "members",
                                 "value": [{"value": i} for i in ids[:1000]]}],
        "remove by filter": [{"op": "remove", "path": f'members[value eq "{ids[7]}"]'}],
        "remove all but one by filter": [{"op": "remove",
                                          "path": f'members[value ne "{ids[7]}"]'}],
        "replace all": [{"op": "replace", "path": "members",
                         "value": [{"value": i} for i in ids[1:MEMBERS + 1]]}],
        "rename": [{"op": "replace", "path": "displayName", "value": "all staff"}],
    }


@pytest.mark.parametrize("name", list(_operations()))
async def test_patching_a_64000_member_group_is_linear(
    users: CountingStore, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    offloaded = _record_offloading(monkeypatch)
    group = await _big_group(users)
    try:
        with call_budget(CALLS_PER_MEMBER * MEMBERS) as calls:
            patched = await identities.patch_group(
                users, FakeClock(), group.id,
                {"schemas": [PATCH_OP], "Operations": _operations()[name]})
        assert calls[0] > MEMBERS  # the counter saw the work, in the worker thread too
        if name in MEMBER_CHANGES:
            assert users.calls == [MEMBER_CHANGES[name], "get_group"]
            assert offloaded == []
        else:
            assert users.calls == ["get_group", "replace_group"]
            assert offloaded == ["_patched_group"]  # not on the event loop
        assert patched.version == group.version + 1
        expected = {
            "add one": MEMBERS + 1, "add 1000": MEMBERS + 1000,
            "remove one (Entra)": MEMBERS - 1, "remove 1000 (Entra)": MEMBERS - 1000,
            "remove by filter": MEMBERS - 1, "remove all but one by filter": 1,
            "replace all": MEMBERS, "rename": MEMBERS,
        }[name]
        assert len(patched.members) == expected
        assert len((await users.get_group(group.id)).members) == expected
    finally:
        await users.delete_group(group.id)


MEMBER_CHANGES = {
    "add one": "add_members", "add 1000": "add_members",
    "remove one (Entra)": "remove_members", "remove 1000 (Entra)": "remove_members",
    "remove by filter": "remove_members",
}


@pytest.mark.parametrize("name", list(MEMBER_CHANGES))
async def test_a_member_change_without_members_in_the_answer_reads_no_member(
    users: CountingStore, name: str
) -> None:
    group = await _big_group(users)
    named = len(_operations()[name][0].get("value") or [None])
    try:
        # Budget: a constant per member named (at most 1000), nothing per member of the group.
        with call_budget(200 + 60 * named) as calls:
            patched = await identities.patch_group(
                users, FakeClock(), group.id,
                {"schemas": [PATCH_OP], "Operations": _operations()[name]}, members=False)
        assert calls[0] < MEMBERS
        assert users.calls == [MEMBER_CHANGES[name]]
        assert patched.members == () and patched.version == group.version + 1
        first = IDS[1000] if name == "remove 1000 (Entra)" else IDS[0]
        assert (await users.get_group(group.id)).members[0].value == first
    finally:
        await users.delete_group(group.id)


def _record_offloading(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions the use case hands to worker threads."""
    offloaded: list[str] = []
    to_thread = asyncio.to_thread

    async def recording(function: Any, /, *args: Any, **kwargs: Any) -> Any:
        offloaded.append(function.__name__)
        return await to_thread(function, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", recording)
    return offloaded


async def test_a_small_group_is_patched_on_the_event_loop(
    users: CountingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = await users.create_group(Group(display_name="few",
                                           members=(Member(value=IDS[0]),)))
    offloaded = _record_offloading(monkeypatch)
    patched = await identities.patch_group(users, FakeClock(), group.id, {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": IDS[1]}]}]})
    assert [m.value for m in patched.members] == [IDS[0], IDS[1]]
    assert offloaded == []

"""``python -m bench.group_patch [MEMBERS]``: SCIM PATCH on a large group, and the event loop.

Builds a memory store with MEMBERS (default 64,000) users in one group, then applies the
member patches Entra ID and Okta send through ``domain.identities.patch_group``, while a
ticker coroutine measures the longest time the event loop went without running it (the
stall every other request on this worker would have seen). Prints one Markdown table.
"""

from __future__ import annotations

import asyncio
import sys
import time

from adapters.memory.store import MemoryStore
from domain import identities
from domain.entities import Group, Member, User
from ports.clock import SystemClock

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def _stall_during(work: asyncio.Future[object]) -> float:
    """The longest gap between two turns of the event loop while ``work`` runs (seconds)."""
    longest = 0.0
    last = time.perf_counter()
    while not work.done():
        await asyncio.sleep(0)
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
    return longest


async def main(members: int) -> None:
    store = MemoryStore()
    ids = [f"user-{index:06d}" for index in range(members + 1000)]
    for user_id in ids:
        await store.create_user(User(id=user_id, user_name=user_id))
    cases = {
        "add 1 member": [{"op": "add", "path": "members", "value": [{"value": ids[members]}]}],
        "remove 1 member (value list)": [
            {"op": "remove", "path": "members", "value": [{"value": ids[members]}]}],
        "add 1,000 members": [{"op": "add", "path": "members",
                               "value": [{"value": i} for i in ids[members:]]}],
        "remove 1 member (filter)": [
            {"op": "remove", "path": f'members[value eq "{ids[0]}"]'}],
        "remove all but 1 (filter ne)": [
            {"op": "remove", "path": f'members[value ne "{ids[1]}"]'}],
    }
    print(f"| PATCH on a group of {members:,} members | wall ms | longest loop stall ms |")
    print("|---|---:|---:|")
    for name, operations in cases.items():
        group = await store.create_group(Group(
            display_name=name, members=tuple(Member(value=i) for i in ids[:members])))
        started = time.perf_counter()
        work = asyncio.ensure_future(identities.patch_group(
            store, SystemClock(), group.id, {"schemas": [PATCH_OP], "Operations": operations}))
        stall = await _stall_during(work)
        await work
        wall = time.perf_counter() - started
        print(f"| {name} | {wall * 1000:.0f} | {stall * 1000:.0f} |")
        await store.delete_group(group.id)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 64_000))

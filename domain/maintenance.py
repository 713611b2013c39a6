"""Maintenance use cases: purging expired data.

Expired records already behave as absent (the store contract), so purging is about space,
not correctness; it may therefore run late, or on one instance only.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from domain.entities import PurgeCounts
from ports.clock import Clock
from ports.events import Events
from ports.store import EphemeralStore, StoreAdmin

#: The ``claim_once`` key that lets one instance of several purge per interval.
PURGE_LOCK_KEY = "janitor:lock"


class PurgeStore(StoreAdmin, EphemeralStore, Protocol):
    """What purging needs from the store."""


async def purge_expired(
    store: StoreAdmin, clock: Clock, events: Events, *, batch_size: int = 1000
) -> PurgeCounts:
    """Remove expired records now and report the counts as a ``purge_completed`` event:
    one field per field of ``PurgeCounts`` (a part added to the port is reported by
    itself), and ``total``.

    Raises ``StoreUnavailable`` when the store fails; nothing is reported then.
    """
    counts = await store.purge_expired(clock.now(), batch_size)
    events.emit("purge_completed", **msgspec.structs.asdict(counts), total=counts.total)
    return counts


async def purge_if_due(
    store: PurgeStore, clock: Clock, events: Events, *, interval_seconds: int,
    batch_size: int = 1000,
) -> PurgeCounts | None:
    """Purge unless another instance sharing the store has purged in this interval.

    The lock is a ``claim_once`` that lives for one interval and is never released, so
    instances that wake up within the same interval skip, and a crashed holder blocks
    nobody for longer than that. Returns None when skipped.
    """
    now = clock.now()
    if not await store.claim_once(PURGE_LOCK_KEY, now + interval_seconds, now):
        return None
    return await purge_expired(store, clock, events, batch_size=batch_size)

"""The janitor: a background task that purges expired data every ``PURGE_INTERVAL_SECONDS``.

The interval is jittered by +-20% so that instances started together do not purge
together, and ``domain.maintenance.purge_if_due`` takes a store-wide lock so that only one
instance of several sharing a store purges per interval. The task starts with the
application's lifespan and is cancelled when it ends. ``auth-service purge`` runs one purge
from cron instead (:func:`purge_now`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

from domain.entities import PurgeCounts
from domain.errors import StoreUnavailable
from domain.maintenance import PurgeStore, purge_expired, purge_if_due
from entrypoints.settings import Settings
from ports.clock import Clock
from ports.events import Events
from ports.store import TOKEN_STATE_PARTS

log = logging.getLogger("auth_service.janitor")

JITTER = 0.2


class Janitor:
    """Purges every ``interval_seconds`` (+-20%), one instance at a time."""

    def __init__(
        self,
        store: PurgeStore,
        clock: Clock,
        events: Events,
        *,
        interval_seconds: int,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self.interval_seconds = interval_seconds
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._sleep = sleep

    def next_delay(self) -> float:
        """Seconds until the next attempt: the interval, give or take 20%."""
        return self.interval_seconds * self._rng.uniform(1 - JITTER, 1 + JITTER)

    async def run_once(self) -> PurgeCounts | None:
        """One attempt. Never raises (but for cancellation): a failed purge waits its turn."""
        try:
            counts = await purge_if_due(
                self._store, self._clock, self._events, interval_seconds=self.interval_seconds
            )
        except StoreUnavailable:
            self._events.emit("purge_failed", reason="store_unavailable")
            return None
        except Exception:
            log.exception("purge failed")
            self._events.emit("purge_failed", reason="error")
            return None
        if counts is None:
            self._events.emit("purge_skipped", reason="another_instance")
        return counts

    async def run(self) -> None:
        """Sleep, purge, repeat, until cancelled. The first purge comes one delay after start."""
        while True:
            await self._sleep(self.next_delay())
            await self.run_once()


@asynccontextmanager
async def janitor_running(janitor: Janitor) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``janitor`` in the background for the duration of the block, then cancel it."""
    task = asyncio.create_task(janitor.run(), name="auth-service-janitor")
    try:
        yield task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def purge_now(settings: Settings) -> PurgeCounts:
    """Open the configured store, purge once (no lock), close. For ``auth-service purge``.

    Raises :class:`entrypoints.backends.OutOfReach` when the store keeps its token state
    in the serving process's memory: this process could only purge an empty copy.
    """
    from entrypoints.backends import command_store
    from entrypoints.container import build_container

    container = build_container(settings)
    async with command_store(settings, command="purge", needs=TOKEN_STATE_PARTS) as store:
        return await purge_expired(store, container.clock(), container.events())

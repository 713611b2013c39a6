"""Deliveries made in background tasks, for the adapters that send things on their own
time (back-channel logouts, mail): the request that asked returns at once.

:class:`Deliveries` holds each task until it is done (so that it is not garbage-collected
and can be awaited), runs at most ``max_concurrent`` deliveries at a time (each takes a
:meth:`~Deliveries.slot`), refuses new ones beyond ``max_pending`` held, and drains within
a bound at shutdown. What a delivery does and how its outcome is reported is the adapter's:
``abandoned(item, problem)`` is called for one refused or cancelled here, ``crashed(item,
exc)`` for one whose coroutine raised (a bug: deliveries report their own outcomes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Deliveries(Generic[T]):
    def __init__(
        self, *, max_concurrent: int, max_pending: int,
        abandoned: Callable[[T, str], None], crashed: Callable[[T, BaseException], None],
    ) -> None:
        self.max_concurrent = max_concurrent
        self.max_pending = max_pending
        self._abandoned = abandoned
        self._crashed = crashed
        # Made on the loop that delivers (a semaphore belongs to one event loop).
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._tasks: dict[asyncio.Task[None], T] = {}

    @property
    def pending(self) -> int:
        """Deliveries started and not finished."""
        return len(self._tasks)

    def start(self, item: T, deliver: Callable[[T], Awaitable[None]]) -> None:
        """Run ``deliver(item)`` in a task of its own (on the running loop), or report it
        abandoned at once when ``max_pending`` are held already."""
        if len(self._tasks) >= self.max_pending:
            self._abandoned(item, f"more than {self.max_pending} deliveries pending")
            return

        async def run() -> None:
            await deliver(item)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks[task] = item
        task.add_done_callback(self._finished)

    def slot(self) -> asyncio.Semaphore:
        """The semaphore a delivery holds while it talks to the other side."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.max_concurrent))
        return self._slots[1]

    async def drain(self, timeout_seconds: float | None = None) -> int:
        """Wait for the deliveries under way (shutdown, tests), at most ``timeout_seconds``
        (None: until they are all done); cancel those still pending then, reporting each as
        abandoned. Returns how many were cancelled."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_seconds is None else loop.time() + timeout_seconds
        while self._tasks:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            await asyncio.wait(tuple(self._tasks), timeout=remaining)
        left = tuple(self._tasks)
        for task in left:
            task.cancel()
        if left:
            await asyncio.gather(*left, return_exceptions=True)
        return len(left)

    def _finished(self, task: asyncio.Task[None]) -> None:
        item = self._tasks.pop(task, None)
        if item is None:
            return
        if task.cancelled():
            self._abandoned(item, "still pending when the server stopped")
        elif (exc := task.exception()) is not None:
            self._crashed(item, exc)

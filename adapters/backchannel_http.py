"""Back-channel logout delivery with httpx, as ``ports.logout.LogoutSender``.

Each notice is POSTed (``application/x-www-form-urlencoded``, ``logout_token=...``) in a
task of its own, so the request that ended the session never waits for a client. A
delivery is checked against the server's :class:`~domain.outbound.OutboundPolicy` (https,
or http loopback with ``OUTBOUND_ALLOW_LOOPBACK=1``; redirects are not followed: section
2.5 of the specification expects the answer from the URI itself), bounded by
``timeout_seconds`` per attempt, and retried after ``retry_delays`` on a network error or
a 5xx answer; a 4xx answer is final (the client refused this token). Every outcome is a
security event: ``backchannel_logout_delivered`` or ``backchannel_logout_failed``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence

import httpx

from domain.outbound import OutboundPolicy
from ports.events import Events
from ports.logout import LogoutNotice


class HttpLogoutSender:
    def __init__(
        self, policy: OutboundPolicy, events: Events, *, timeout_seconds: float = 5.0,
        retry_delays: tuple[float, ...] = (1.0, 5.0),
    ) -> None:
        self.policy = policy
        self.events = events
        self.timeout_seconds = timeout_seconds
        self.retry_delays = retry_delays
        self._tls = ssl.create_default_context()
        # Held so that running deliveries are not garbage-collected, and can be awaited.
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, notices: Sequence[LogoutNotice]) -> None:
        for notice in notices:
            task = asyncio.get_running_loop().create_task(self._deliver(notice))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the deliveries under way (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)

    async def _deliver(self, notice: LogoutNotice) -> None:
        refusal = self.policy.refusal(notice.uri)
        if refusal is not None:
            self._failed(notice, 0, f"the URI is not allowed: {refusal}")
            return
        attempts = len(self.retry_delays) + 1
        problem = ""
        async with httpx.AsyncClient(verify=self._tls, follow_redirects=False, trust_env=False,
                                     timeout=self.timeout_seconds) as client:
            for attempt in range(1, attempts + 1):
                try:
                    response = await client.post(
                        notice.uri, data={"logout_token": notice.logout_token},
                        headers={"Cache-Control": "no-store"})
                except (httpx.HTTPError, httpx.InvalidURL) as exc:
                    problem = f"the request failed ({type(exc).__name__})"
                else:
                    if response.is_success:
                        self.events.emit("backchannel_logout_delivered",
                                         client_id=notice.client_id, sid=notice.sid,
                                         user_id=notice.user_id, attempts=attempt,
                                         status=response.status_code)
                        return
                    problem = f"the client answered {response.status_code}"
                    if response.status_code < 500:
                        self._failed(notice, attempt, problem)
                        return
                if attempt < attempts:
                    await asyncio.sleep(self.retry_delays[attempt - 1])
        self._failed(notice, attempts, problem)

    def _failed(self, notice: LogoutNotice, attempts: int, problem: str) -> None:
        self.events.emit("backchannel_logout_failed", client_id=notice.client_id,
                         sid=notice.sid, user_id=notice.user_id, attempts=attempts,
                         problem=problem)

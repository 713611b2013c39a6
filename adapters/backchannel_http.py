"""Back-channel logout delivery with httpx, as ``ports.logout.LogoutSender``.

Each notice is POSTed (``application/x-www-form-urlencoded``, ``logout_token=...``) in a
task of its own, so the request that ended the session never waits for a client. A
delivery:

- is checked against the server's :class:`~domain.outbound.OutboundPolicy` when it is
  made, not only when the client was registered (https, or http loopback with
  ``OUTBOUND_ALLOW_LOOPBACK=1``; the setting may have changed since, and a static client's
  URI is checked here for the first time). Redirects are not followed: section 2.5 of the
  specification expects the answer from the URI itself;
- has ``timeout_seconds`` for each attempt as a whole (connect, send, the status line),
  not per read, so a client that answers a byte at a time cannot hold it longer; the body
  of the answer is never read (a client cannot make the server buffer anything);
- is retried after each of ``retry_delays`` on a network error, a timeout or a 5xx
  answer; a 3xx or 4xx answer is final (the client refused this token; section 2.8);
- runs at most ``max_concurrent`` at a time; beyond ``max_pending`` queued ones (a mass
  deprovisioning against a client that hangs), new notices are dropped at once rather
  than held in memory without bound.

Every outcome is a security event: ``backchannel_logout_delivered`` (``attempts``,
``status``) or ``backchannel_logout_failed`` with a ``reason`` from a fixed set
(:data:`FAILURE_REASONS`, the ``outcome`` label of ``auth_backchannel_logout_total``) and a
``problem`` in words. Neither carries the token.

On shutdown, :meth:`HttpLogoutSender.drain` waits a bounded time for deliveries under way,
then cancels the rest, each of which is reported as failed (``abandoned``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence

import httpx

from adapters.background import Deliveries
from domain.outbound import OutboundPolicy
from ports.events import Events
from ports.logout import LogoutNotice

log = logging.getLogger("auth_service.backchannel")

#: ``reason`` of a ``backchannel_logout_failed`` event: ``refused`` (the URI breaks the
#: outbound policy), ``rejected`` (the client answered 3xx/4xx), ``unavailable`` (network
#: errors or 5xx until the retries ran out), ``timeout`` (the last attempt timed out),
#: ``abandoned`` (dropped: too many pending, or still pending at shutdown).
FAILURE_REASONS = ("refused", "rejected", "unavailable", "timeout", "abandoned")


class HttpLogoutSender:
    def __init__(
        self, policy: OutboundPolicy, events: Events, *, timeout_seconds: float = 5.0,
        retry_delays: tuple[float, ...] = (1.0, 5.0), max_concurrent: int = 32,
        max_pending: int = 10_000,
    ) -> None:
        self.policy = policy
        self.events = events
        self.timeout_seconds = timeout_seconds
        self.retry_delays = retry_delays
        self._tls = ssl.create_default_context()
        self._deliveries: Deliveries[LogoutNotice] = Deliveries(
            max_concurrent=max_concurrent, max_pending=max_pending,
            abandoned=lambda notice, problem: self._failed(notice, 0, "abandoned", problem),
            crashed=self._crashed)

    @property
    def pending(self) -> int:
        """Deliveries started and not finished."""
        return self._deliveries.pending

    def send(self, notices: Sequence[LogoutNotice]) -> None:
        for notice in notices:
            self._deliveries.start(notice, self._deliver)

    async def drain(self, timeout_seconds: float | None = None) -> int:
        """Wait for the deliveries under way (shutdown, tests), at most ``timeout_seconds``
        (None: until they are all done); cancel those still pending then, reporting each as
        ``abandoned``. Returns how many were cancelled."""
        return await self._deliveries.drain(timeout_seconds)

    def _crashed(self, notice: LogoutNotice, exc: BaseException) -> None:
        # _deliver reports every outcome itself; this is a bug, not a client's answer.
        log.error("back-channel logout delivery crashed", exc_info=exc)
        self._failed(notice, 0, "unavailable", "the delivery failed unexpectedly")

    async def _deliver(self, notice: LogoutNotice) -> None:
        refusal = self.policy.refusal(notice.uri)
        if refusal is not None:
            self._failed(notice, 0, "refused", f"the URI is not allowed: {refusal}")
            return
        async with self._deliveries.slot():
            await self._attempts(notice)

    async def _attempts(self, notice: LogoutNotice) -> None:
        attempts = len(self.retry_delays) + 1
        reason, problem = "unavailable", ""
        async with httpx.AsyncClient(verify=self._tls, follow_redirects=False, trust_env=False,
                                     timeout=self.timeout_seconds) as client:
            for attempt in range(1, attempts + 1):
                try:
                    async with asyncio.timeout(self.timeout_seconds):
                        status = await self._post(client, notice)
                except TimeoutError:
                    reason = "timeout"
                    problem = f"no answer within {self.timeout_seconds:g} seconds"
                except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
                    reason, problem = "unavailable", f"the request failed ({type(exc).__name__})"
                else:
                    if 200 <= status < 300:
                        self.events.emit("backchannel_logout_delivered",
                                         client_id=notice.client_id, sid=notice.sid,
                                         user_id=notice.user_id, attempts=attempt,
                                         status=status)
                        return
                    if status < 500:
                        self._failed(notice, attempt, "rejected",
                                     f"the client answered {status}", status=status)
                        return
                    reason, problem = "unavailable", f"the client answered {status}"
                if attempt < attempts:
                    await asyncio.sleep(self.retry_delays[attempt - 1])
        self._failed(notice, attempts, reason, problem)

    async def _post(self, client: httpx.AsyncClient, notice: LogoutNotice) -> int:
        # Streamed and closed unread: only the status matters (section 2.8), and a body
        # the client chose to send must cost nothing.
        async with client.stream(
            "POST", notice.uri, data={"logout_token": notice.logout_token},
            headers={"Cache-Control": "no-store"},
        ) as response:
            return response.status_code

    def _failed(self, notice: LogoutNotice, attempts: int, reason: str, problem: str,
                status: int | None = None) -> None:
        self.events.emit("backchannel_logout_failed", client_id=notice.client_id,
                         sid=notice.sid, user_id=notice.user_id, attempts=attempts,
                         reason=reason, problem=problem, status=status)

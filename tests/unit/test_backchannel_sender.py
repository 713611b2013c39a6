"""HttpLogoutSender against a real HTTP listener on 127.0.0.1 (tests/logout_listener.py):
what is POSTed, retries, timeouts, the URL policy, shutdown, and the events and metric
every outcome produces (through the service's own TelemetryEvents)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from adapters.backchannel_http import HttpLogoutSender
from domain.outbound import OutboundPolicy
from entrypoints.metrics import Metrics
from entrypoints.telemetry import TelemetryEvents
from ports.events import FieldValue
from ports.logout import LogoutNotice
from tests.doubles import RecordingEvents
from tests.logout_listener import LogoutListener, logout_listener

LOOPBACK = OutboundPolicy(allow_loopback=True)
TOKEN = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"


class Observed:
    """The events a sender emits, recorded and also fed to the real telemetry adapter."""

    def __init__(self) -> None:
        self.metrics = Metrics("hybrid")
        self.recorded = RecordingEvents()
        self._telemetry = TelemetryEvents(self.metrics)

    def emit(self, name: str, **fields: FieldValue) -> None:
        self.recorded.emit(name, **fields)
        self._telemetry.emit(name, **fields)

    def count(self, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "auth_backchannel_logout_total", {"outcome": outcome})
        return value or 0.0

    def only(self, name: str) -> dict[str, FieldValue]:
        found = self.recorded.named(name)
        assert len(found) == 1, self.recorded.events
        return found[0]


@pytest.fixture
def listener() -> Iterator[LogoutListener]:
    with logout_listener() as running:
        yield running


@pytest.fixture
def events() -> Observed:
    return Observed()


def notice(uri: str, client_id: str = "app") -> LogoutNotice:
    return LogoutNotice(client_id=client_id, uri=uri, logout_token=TOKEN, sid="sid_1",
                        user_id="user-1")


def sender(events: Observed, **options: object) -> HttpLogoutSender:
    settings: dict[str, object] = {"timeout_seconds": 2.0, "retry_delays": (0.01, 0.01)}
    settings.update(options)
    return HttpLogoutSender(LOOPBACK, events, **settings)  # type: ignore[arg-type]


async def test_a_notice_is_posted_as_a_form_and_reported_delivered(
    listener: LogoutListener, events: Observed
) -> None:
    s = sender(events)
    s.send([notice(listener.url())])
    await s.drain()

    [received] = listener.at("/logout")
    assert received.content_type == "application/x-www-form-urlencoded"
    assert received.form == {"logout_token": [TOKEN]}
    delivered = events.only("backchannel_logout_delivered")
    assert delivered == {"client_id": "app", "sid": "sid_1", "user_id": "user-1",
                         "attempts": 1, "status": 200}
    assert events.recorded.named("backchannel_logout_failed") == []
    assert events.count("delivered") == 1
    assert all(TOKEN not in str(fields) for _, fields in events.recorded.events)


async def test_send_returns_before_the_client_answers(
    listener: LogoutListener, events: Observed
) -> None:
    listener.delay = 0.5
    s = sender(events)
    started = time.monotonic()
    s.send([notice(listener.url())])
    assert time.monotonic() - started < 0.1
    assert s.pending == 1
    await s.drain()
    assert s.pending == 0
    assert events.count("delivered") == 1


async def test_5xx_answers_are_retried_until_delivered(
    listener: LogoutListener, events: Observed
) -> None:
    listener.answers["/flaky"] = [503, 500, 200]
    s = sender(events)
    s.send([notice(listener.url("/flaky"))])
    await s.drain()

    assert len(listener.at("/flaky")) == 3
    assert events.only("backchannel_logout_delivered")["attempts"] == 3
    assert events.count("delivered") == 1
    assert events.count("unavailable") == 0


async def test_retries_are_bounded(listener: LogoutListener, events: Observed) -> None:
    listener.answers["/down"] = [502]
    s = sender(events, retry_delays=(0.01, 0.01, 0.01))
    s.send([notice(listener.url("/down"))])
    await s.drain()

    assert len(listener.at("/down")) == 4
    failed = events.only("backchannel_logout_failed")
    assert failed["reason"] == "unavailable" and failed["attempts"] == 4
    assert failed["problem"] == "the client answered 502"
    assert events.count("unavailable") == 1


@pytest.mark.parametrize("status", [400, 401, 404, 302])
async def test_a_4xx_or_redirect_is_final(
    listener: LogoutListener, events: Observed, status: int
) -> None:
    listener.answers["/refuse"] = [status, 200]
    s = sender(events)
    s.send([notice(listener.url("/refuse"))])
    await s.drain()

    assert len(listener.at("/refuse")) == 1
    failed = events.only("backchannel_logout_failed")
    assert failed["reason"] == "rejected" and failed["status"] == status
    assert failed["attempts"] == 1
    assert events.count("rejected") == 1


async def test_a_client_that_does_not_answer_times_out(
    listener: LogoutListener, events: Observed
) -> None:
    listener.delay = 2.0
    s = sender(events, timeout_seconds=0.2, retry_delays=(0.01,))
    started = time.monotonic()
    s.send([notice(listener.url())])
    await s.drain()

    assert time.monotonic() - started < 1.5  # two attempts of 0.2 s, not two of 2 s
    assert len(listener.at("/logout")) == 2
    failed = events.only("backchannel_logout_failed")
    assert failed["reason"] == "timeout" and failed["attempts"] == 2
    assert events.count("timeout") == 1


async def test_a_refused_connection_is_retried_then_reported(events: Observed) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = sender(events)
    s.send([notice(f"http://127.0.0.1:{port}/logout")])
    await s.drain()

    failed = events.only("backchannel_logout_failed")
    assert failed["reason"] == "unavailable" and failed["attempts"] == 3
    assert str(failed["problem"]).startswith("the request failed")


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:1/logout",       # loopback, but OUTBOUND_ALLOW_LOOPBACK is off
    "https://10.0.0.7/logout",         # a private address
    "https://169.254.169.254/latest",  # cloud metadata
    "ftp://rp.example/logout",
])
async def test_a_uri_the_policy_refuses_is_never_called(
    listener: LogoutListener, events: Observed, uri: str
) -> None:
    s = HttpLogoutSender(OutboundPolicy(allow_loopback=False), events)
    s.send([notice(uri), notice(listener.url())])
    await s.drain()

    assert listener.received == []
    failed = events.recorded.named("backchannel_logout_failed")
    assert [f["reason"] for f in failed] == ["refused", "refused"]
    assert failed[0]["attempts"] == 0
    assert events.count("refused") == 2


async def test_each_notice_is_delivered_on_its_own(
    listener: LogoutListener, events: Observed
) -> None:
    listener.answers["/bad"] = [400]
    s = sender(events)
    s.send([notice(listener.url("/bad"), "a"), notice(listener.url(), "b")])
    await s.drain()

    assert events.only("backchannel_logout_delivered")["client_id"] == "b"
    assert events.only("backchannel_logout_failed")["client_id"] == "a"


async def test_drain_is_bounded_and_reports_what_it_abandons(
    listener: LogoutListener, events: Observed
) -> None:
    listener.delay = 3.0
    s = sender(events, timeout_seconds=5.0)
    s.send([notice(listener.url())])
    await asyncio.sleep(0.05)
    started = time.monotonic()
    abandoned = await s.drain(0.2)

    assert abandoned == 1 and s.pending == 0
    assert time.monotonic() - started < 1.0
    failed = events.only("backchannel_logout_failed")
    assert failed["reason"] == "abandoned"
    assert events.count("abandoned") == 1


async def test_beyond_max_pending_notices_are_dropped_at_once(
    listener: LogoutListener, events: Observed
) -> None:
    listener.delay = 0.3
    s = sender(events, max_pending=1)
    s.send([notice(listener.url(), "first"), notice(listener.url(), "second")])
    failed = events.only("backchannel_logout_failed")
    assert failed["client_id"] == "second" and failed["reason"] == "abandoned"
    await s.drain()
    assert events.only("backchannel_logout_delivered")["client_id"] == "first"


async def test_concurrent_deliveries_are_bounded(
    listener: LogoutListener, events: Observed
) -> None:
    listener.delay = 0.3
    s = sender(events, max_concurrent=1)
    started = time.monotonic()
    s.send([notice(listener.url(), "a"), notice(listener.url(), "b")])
    await s.drain()

    assert time.monotonic() - started >= 0.6  # one after the other
    assert events.count("delivered") == 2

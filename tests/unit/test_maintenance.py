"""Purging expired data: the use cases, the lock between instances, and the janitor task."""

from __future__ import annotations

import asyncio
import random

import msgspec
import pytest

from adapters.memory.store import MemoryStore
from domain.entities import AccessToken, AccountToken, AuthorizationCode, PurgeCounts
from domain.errors import StoreUnavailable
from domain.maintenance import PURGE_LOCK_KEY, purge_expired, purge_if_due
from entrypoints.janitor import Janitor, janitor_running
from tests.doubles import FakeClock, RecordingEvents

T0 = 1_700_000_000


def _token(n: int, exp: int) -> AccessToken:
    return AccessToken(token_hash=f"{n:064x}", token_display="tk_abcd...", active=True,
                       scope="read", client_id="svc", exp=exp, iat=T0)


async def _seed(store: MemoryStore) -> None:
    await store.save_tokens(_token(1, T0 + 10), None, T0)
    await store.save_tokens(_token(2, T0 + 10), None, T0)
    await store.save_tokens(_token(3, T0 + 1000), None, T0)
    await store.save_code(
        AuthorizationCode(code_hash="c" * 64, client_id="svc", redirect_uri="https://a.test/cb",
                          scope="openid", exp=T0 + 5, grant_id="g1"),
        T0,
    )


async def test_purge_removes_expired_records_and_reports_counts() -> None:
    store, clock, events = MemoryStore(), FakeClock(T0 + 100), RecordingEvents()
    await _seed(store)

    counts = await purge_expired(store, clock, events)

    assert counts.access_tokens == 2 and counts.codes == 1
    assert await store.get_access_token(f"{3:064x}", clock.now()) is not None
    [reported] = events.named("purge_completed")
    assert reported["access_tokens"] == 2 and reported["codes"] == 1
    assert reported["total"] == counts.total == 3


async def test_the_report_names_every_kind_of_purged_record() -> None:
    store, clock, events = MemoryStore(), FakeClock(T0 + 100), RecordingEvents()
    await store.save_account_token(AccountToken(
        token_hash="a" * 64, kind="password_reset", user_id="u-1", email="a@example.com",
        created_at=T0, exp=T0 + 10), T0)

    counts = await purge_expired(store, clock, events)

    [reported] = events.named("purge_completed")
    kinds = {field.name for field in msgspec.structs.fields(PurgeCounts)}
    assert set(reported) == kinds | {"total"}
    assert reported["account_tokens"] == counts.account_tokens == 1


async def test_a_second_instance_skips_within_the_interval_and_purges_after() -> None:
    store, clock = MemoryStore(), FakeClock()
    first, second = RecordingEvents(), RecordingEvents()

    assert await purge_if_due(store, clock, first, interval_seconds=300) is not None
    clock.value += 299
    assert await purge_if_due(store, clock, second, interval_seconds=300) is None
    assert second.named("purge_completed") == []
    clock.value += 1
    assert await purge_if_due(store, clock, second, interval_seconds=300) is not None


async def test_lock_is_taken_in_the_shared_store() -> None:
    store, clock = MemoryStore(), FakeClock()
    await purge_if_due(store, clock, RecordingEvents(), interval_seconds=60)
    assert not await store.claim_once(PURGE_LOCK_KEY, T0 + 60, T0)


class FailingStore(MemoryStore):
    async def purge_expired(self, now: int, batch_size: int = 1000) -> PurgeCounts:
        raise StoreUnavailable("down")


async def test_janitor_survives_an_unavailable_store_and_reports_it() -> None:
    events = RecordingEvents()
    janitor = Janitor(FailingStore(), FakeClock(), events, interval_seconds=60)

    assert await janitor.run_once() is None
    assert events.named("purge_failed") == [{"reason": "store_unavailable"}]


async def test_janitor_reports_a_skip_when_another_instance_holds_the_lock() -> None:
    store, clock, events = MemoryStore(), FakeClock(), RecordingEvents()
    await store.claim_once(PURGE_LOCK_KEY, T0 + 60, T0)
    janitor = Janitor(store, clock, events, interval_seconds=60)

    assert await janitor.run_once() is None
    assert events.named("purge_skipped") and not events.named("purge_completed")


def test_delays_are_jittered_by_twenty_percent() -> None:
    janitor = Janitor(MemoryStore(), FakeClock(), RecordingEvents(), interval_seconds=100,
                      rng=random.Random(7))
    delays = [janitor.next_delay() for _ in range(500)]
    assert all(80 <= d <= 120 for d in delays)
    assert max(delays) - min(delays) > 30  # spread, not a constant


async def test_janitor_loop_purges_after_each_delay_and_stops_when_cancelled() -> None:
    slept: list[float] = []
    clock, events = FakeClock(), RecordingEvents()
    third_delay = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.value += 20  # past the lock, which lives one interval
        if len(slept) == 4:  # three purges are done
            third_delay.set()
        await asyncio.sleep(0)

    janitor = Janitor(MemoryStore(), clock, events, interval_seconds=10, sleep=fake_sleep)
    async with janitor_running(janitor) as task:
        await asyncio.wait_for(third_delay.wait(), 5)
    assert task.cancelled()
    assert len(events.named("purge_completed")) >= 3
    assert len(slept) >= 3 and all(8 <= s <= 12 for s in slept)


async def test_janitor_keeps_running_after_an_unexpected_error() -> None:
    class Broken(MemoryStore):
        async def purge_expired(self, now: int, batch_size: int = 1000) -> PurgeCounts:
            raise RuntimeError("bug")

    events = RecordingEvents()
    janitor = Janitor(Broken(), FakeClock(), events, interval_seconds=10)
    assert await janitor.run_once() is None
    assert events.named("purge_failed") == [{"reason": "error"}]


@pytest.mark.parametrize("interval", [1, 3600])
async def test_lock_lives_exactly_one_interval(interval: int) -> None:
    store, clock = MemoryStore(), FakeClock()
    await purge_if_due(store, clock, RecordingEvents(), interval_seconds=interval)
    assert not await store.claim_once(PURGE_LOCK_KEY, T0 + interval + interval - 1,
                                      T0 + interval - 1)
    assert await store.claim_once(PURGE_LOCK_KEY, T0 + 2 * interval, T0 + interval)


def test_purge_command_explains_when_state_lives_in_the_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from entrypoints.cli import main

    for name in ("STORE_BACKEND", "REDIS_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["purge"]) == 0
    assert "nothing to purge" in capsys.readouterr().out

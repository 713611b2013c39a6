"""The copy, export and import use cases, over memory stores (no I/O)."""

from __future__ import annotations

from typing import Any, cast

import msgspec
import pytest

from adapters.memory import MemoryStore
from domain.errors import InvalidValue, StoreUnavailable
from domain.transfer import (
    COPY_STEPS,
    FORMAT,
    FORMAT_VERSION,
    TransferFailed,
    copy_store,
    export_store,
    import_store,
)
from ports.store import Store
from tests.doubles import T0, FakeClock
from tests.transfer_sample import EXPECTED, USERS, check_target, seed, snapshot


async def _seeded() -> MemoryStore:
    store = MemoryStore()
    await seed(store, T0)
    return store


async def test_copy_moves_every_part_and_a_rerun_writes_nothing() -> None:
    source, target = await _seeded(), MemoryStore()
    report = await copy_store(source, target, FakeClock(), batch_size=2)
    assert [part.name for part in report.parts] == [step.name for step in COPY_STEPS]
    assert {part.name: part.read for part in report.parts} == EXPECTED
    assert {part.name: part.written for part in report.parts} == EXPECTED
    assert await snapshot(target, T0) == await snapshot(source, T0)
    again = await copy_store(source, target, FakeClock(), batch_size=2)
    assert again.written == 0 and again.part("users").unchanged == USERS
    await check_target(target, T0)


async def test_copy_reports_progress_per_batch_with_the_totals_the_store_counts() -> None:
    calls: list[tuple[str, int, int | None]] = []
    await copy_store(await _seeded(), MemoryStore(), FakeClock(), batch_size=3,
                     progress=lambda part, done, total: calls.append((part, done, total)))
    assert [c for c in calls if c[0] == "users"] == [("users", 3, 7), ("users", 6, 7),
                                                    ("users", 7, 7)]
    assert ("consumed_codes", 1, None) in calls  # counts() does not count tombstones
    assert ("access_tokens", 5, 5) in calls


async def test_copy_skips_what_expired_by_the_time_its_batch_is_read() -> None:
    clock = FakeClock(T0 + 3600)  # every access token of the seed has expired by then
    report = await copy_store(await _seeded(), MemoryStore(), clock)
    assert report.part("access_tokens").read == 0
    assert report.part("users").read == USERS


class FailingReads:
    """A source whose ``export_groups`` fails."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name == "export_groups":
            async def fail(*args: Any) -> Any:
                raise StoreUnavailable("the database is unavailable or failed")
            return fail
        return getattr(self._store, name)


async def test_a_failing_source_names_the_part_and_keeps_the_counts_so_far() -> None:
    source = cast(Store, FailingReads(await _seeded()))
    target = MemoryStore()
    with pytest.raises(TransferFailed) as failed:
        await copy_store(source, target, FakeClock())
    assert failed.value.part == "groups"
    assert failed.value.report.part("users").written == USERS
    assert str(failed.value).startswith("groups: the database is unavailable or failed")


async def test_export_writes_a_header_one_line_per_record_and_the_counts() -> None:
    lines = [line async for line in export_store(await _seeded(), FakeClock(), batch_size=2)]
    header = msgspec.json.decode(lines[0])
    assert header == {"format": FORMAT, "version": FORMAT_VERSION, "exported_at": T0,
                      "parts": [step.name for step in COPY_STEPS]}
    assert msgspec.json.decode(lines[-1]) == {"end": True, "counts": EXPECTED}
    assert len(lines) == 2 + sum(EXPECTED.values())
    assert msgspec.json.decode(lines[1])["part"] == "users"


async def test_import_of_an_export_recreates_the_store() -> None:
    source, target = await _seeded(), MemoryStore()
    lines = [line.decode() async for line in export_store(source, FakeClock())]
    report = await import_store(target, lines, FakeClock(), batch_size=4)
    assert {part.name: part.written for part in report.parts} == EXPECTED
    assert await snapshot(target, T0) == await snapshot(source, T0)


def _file(*records: dict[str, object], end: dict[str, int] | None = None) -> list[bytes]:
    header = {"format": FORMAT, "version": FORMAT_VERSION, "exported_at": T0, "parts": []}
    lines = [msgspec.json.encode(header), *(msgspec.json.encode(r) for r in records)]
    if end is not None:
        lines.append(msgspec.json.encode({"end": True, "counts": end}))
    return lines


CLAIM = {"part": "claims", "record": {"key": "k", "exp": T0 + 60}}


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        ([], "the file is empty"),
        ([b"not json"], "line 1: not the header"),
        ([msgspec.json.encode({"format": FORMAT, "version": 99, "exported_at": 0,
                               "parts": []})], "line 1: format 'auth-service-store' version 99"),
        (_file({"part": "spaceships", "record": {}}, end={}), "line 2: unknown part"),
        (_file({"part": "claims", "record": {"key": 1}}, end={}), "line 2: not a record"),
        (_file({"part": "claims"}, end={}), "line 2: no record"),
        (_file(CLAIM), "without its last line (truncated?)"),
        (_file(CLAIM, end={"claims": 2}), "counts {'claims': 2}, but it holds {'claims': 1}"),
        ([*_file(CLAIM, end={"claims": 1}), msgspec.json.encode(CLAIM)], "data after the last"),
    ],
)
async def test_import_refuses_a_file_that_is_not_a_complete_export(
    lines: list[bytes], says: str
) -> None:
    with pytest.raises(InvalidValue) as refused:
        await import_store(MemoryStore(), lines, FakeClock())
    assert says in str(refused.value)


async def test_import_accepts_a_complete_file_of_one_part() -> None:
    target = MemoryStore()
    report = await import_store(target, _file(CLAIM, end={"claims": 1}), FakeClock())
    assert report.part("claims").written == 1
    assert await target.claim_once("k", T0 + 100, T0) is False

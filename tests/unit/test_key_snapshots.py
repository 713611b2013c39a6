"""``KeySnapshots``: exactly once over a pass, whatever order and repeats ``SCAN`` gives."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.hybrid.redis_transfer import KeySnapshots
from domain.errors import InvalidValue

HEAD = "p:t:"


class FakeKeySpace:
    """Keys and values; ``scan`` yields every key in a shuffled order, some twice (as
    ``SCAN`` may while the key space is resized), and counts the full scans."""

    def __init__(self, names: list[str]) -> None:
        self.values = {name: name.upper() for name in names}
        self.scans = 0

    async def scan(self) -> AsyncIterator[bytes]:
        self.scans += 1
        names = sorted(self.values, key=lambda name: name[::-1])
        for i, name in enumerate(names):
            yield (HEAD + name).encode()
            if i % 3 == 0:
                yield (HEAD + name).encode()

    async def read(self, names: list[str]) -> list[str | None]:
        return [self.values.get(name) for name in names]


async def _pass(pager: KeySnapshots, keys: FakeKeySpace, limit: int,
                cursor: str | None = None, batches: int | None = None
                ) -> tuple[list[str], str | None]:
    records: list[str] = []
    done = 0
    while batches is None or done < batches:
        batch = await pager.page(HEAD, keys.scan, str, cursor, limit, keys.read)
        assert len(batch.records) <= limit
        records.extend(batch.records)
        done += 1
        cursor = batch.cursor
        if cursor is None:
            break
    return records, cursor


@pytest.mark.parametrize("limit", [1, 3, 7, 50])
async def test_a_pass_returns_each_record_once_in_order_with_one_scan(limit: int) -> None:
    keys = FakeKeySpace([f"{i:03x}" for i in range(40)])
    records, _ = await _pass(KeySnapshots(), keys, limit)
    assert records == sorted(name.upper() for name in keys.values)
    assert keys.scans == 1


async def test_records_gone_mid_pass_are_left_out_and_new_ones_wait_for_the_next() -> None:
    keys = FakeKeySpace([f"k{i:02}" for i in range(20)])
    pager = KeySnapshots()
    first, cursor = await _pass(pager, keys, 5, batches=1)
    del keys.values["k10"]
    keys.values["k05a"] = "NEW"
    rest, _ = await _pass(pager, keys, 5, cursor)
    expected = [f"K{i:02}" for i in range(20) if i != 10]
    assert first + rest == expected


async def test_a_cursor_from_elsewhere_scans_again_and_resumes_after_its_name() -> None:
    keys = FakeKeySpace([f"k{i:02}" for i in range(20)])
    first, cursor = await _pass(KeySnapshots(), keys, 6, batches=2)
    rest, _ = await _pass(KeySnapshots(), keys, 6, cursor)
    assert first + rest == [f"K{i:02}" for i in range(20)]
    assert keys.scans == 2


async def test_the_snapshot_is_dropped_when_its_pass_ends_and_old_passes_make_room() -> None:
    keys = FakeKeySpace(["a", "b", "c"])
    pager = KeySnapshots(keep=2)
    await _pass(pager, keys, 10)
    assert keys.scans == 1
    _, first = await _pass(pager, keys, 1, batches=1)
    await _pass(pager, keys, 1, batches=1)
    await _pass(pager, keys, 1, batches=1)  # the first pass is dropped now
    rest, _ = await _pass(pager, keys, 1, first)
    assert rest == ["B", "C"]
    assert keys.scans == 5


async def test_a_foreign_cursor_is_refused() -> None:
    keys = FakeKeySpace(["a"])
    with pytest.raises(InvalidValue):
        await KeySnapshots().page(HEAD, keys.scan, str, "no-colon", 10, keys.read)

"""``python -m bench.purge DATABASE_URL DONE_PATH``: one ``purge_expired`` through the port.

Used by bench/run.py to purge a ``sql`` database while wrk loads the service (as another
instance's periodic purge would). Waits for the file ``BENCH_PURGE_WAIT`` when set, so
that the purge starts once the load is running; writes ``{"seconds", "counts"}`` as JSON.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import msgspec

from adapters.sql import open_sql_store


async def purge(database_url: str, done: Path) -> None:
    store = await open_sql_store(database_url, pool_size=2)
    try:
        wait = os.environ.get("BENCH_PURGE_WAIT")
        # Another process creates the file: there is no in-process event to wait on.
        while wait and not await asyncio.to_thread(Path(wait).exists):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        started = time.perf_counter()
        counts = await store.purge_expired(int(time.time()))
        elapsed = time.perf_counter() - started
    finally:
        await store.close()
    report = msgspec.json.encode({"seconds": elapsed, "counts": counts})
    await asyncio.to_thread(done.write_bytes, report)


if __name__ == "__main__":
    asyncio.run(purge(sys.argv[1], Path(sys.argv[2])))

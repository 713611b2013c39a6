"""Memory per stored access token in the ``hybrid`` store (no Redis), through the port.

``python -m bench.memory --tokens N --method tracemalloc|rss`` saves N tokens shaped like
client_credentials issuance with ``Store.save_tokens`` and prints one JSON line:
``{"method", "tokens", "bytes_total", "bytes_per_token"}``. ``tracemalloc`` counts the
Python allocations that stay alive; ``rss`` is the growth of the resident set, which also
includes allocator slack. Run each method in a fresh process (``bench/run.py`` does).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc

import msgspec

from adapters.hybrid import open_hybrid_store
from bench.seeded_app import seed_tokens


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    import resource

    return pages * resource.getpagesize()


async def measure(tokens: int, method: str) -> dict[str, object]:
    """Bytes kept alive per token saved into a fresh hybrid store."""
    store = await open_hybrid_store(None)
    now = int(time.time())
    # Warm up: import-time allocations and the first dict growth are not per-token costs.
    await seed_tokens(store, now, 1, start=tokens + 1)
    gc.collect()
    if method == "tracemalloc":
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    else:
        before = _rss_bytes()
    await seed_tokens(store, now, tokens)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if method == "tracemalloc" else _rss_bytes()
    total = after - before
    await store.close()
    return {
        "method": method,
        "tokens": tokens,
        "bytes_total": total,
        "bytes_per_token": round(total / tokens, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--method", choices=("tracemalloc", "rss"), default="rss")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.tokens, args.method))
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

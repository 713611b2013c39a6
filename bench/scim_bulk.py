"""A SCIM Bulk of 1,000 user creates (RFC 7644 section 3.7), as a figure.

- In ``bench/run.py`` (section ``main``, every backend): :func:`measure_bulk` posts
  ``--bulk-rounds`` bulks of :data:`OPERATIONS` creates to the served service and records
  creates per second, which the table sets beside the backend's ceiling (requests per
  second of a bare route): the ratio says how a create inside a bulk compares with the
  cheapest request the framework can answer. p50/p99/max are those of a whole bulk.
- Alone, in process (no sockets, no wrk): ``python -m bench.scim_bulk [--rounds 3]
  [--database-url postgresql://...]`` runs the same bulks through the ASGI application on
  a memory store, or on sql with a database URL, and prints one Markdown table.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
from typing import Any

import httpx

OPERATIONS = 1000
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def bulk_body(prefix: str, operations: int = OPERATIONS) -> dict[str, Any]:
    """A BulkRequest of ``operations`` creates of users named ``prefix-<n>``, the shape
    the bench's single creates have (name and one email)."""
    return {"schemas": [BULK_REQUEST], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": f"u{index}", "data": {
            "schemas": [USER_SCHEMA], "userName": f"{prefix}-{index}",
            "name": {"givenName": "Bulk", "familyName": f"User {index}"},
            "emails": [{"value": f"{prefix}-{index}@example.com", "primary": True}],
        }} for index in range(operations)]}


def run_rounds(client: httpx.Client, rounds: int) -> list[float]:
    """Post ``rounds`` bulks (fresh names each); the wall seconds of each. Raises when a
    bulk or one of its operations fails: a figure with errors is no figure."""
    walls: list[float] = []
    for _ in range(rounds):
        body = bulk_body("bulk-" + secrets.token_hex(4))
        started = time.perf_counter()
        response = client.post("/scim/v2/Bulk", json=body)
        walls.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"Bulk answered {response.status_code}: {response.text[:200]}")
        statuses = {op["status"] for op in response.json()["Operations"]}
        if statuses != {"201"}:
            raise RuntimeError(f"Bulk operations answered {sorted(statuses)}")
    return walls


def summary(walls: list[float]) -> dict[str, float]:
    return {"creates_per_s": OPERATIONS * len(walls) / sum(walls),
            "p50_ms": statistics.median(walls) * 1000, "max_ms": max(walls) * 1000}


def main() -> None:
    from litestar.testing import TestClient

    from adapters.memory.store import MemoryStore
    from domain.entities import AccessToken
    from domain.tokens import hash_token, token_display
    from entrypoints.app import create_app
    from entrypoints.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    env = {"EXTERNAL_BASE_URL": "http://localhost:8080"}
    if args.database_url:
        app = create_app(load_settings({**env, "STORE_BACKEND": "sql",
                                        "DATABASE_URL": args.database_url}))
        backend = "sql"
    else:
        app = create_app(load_settings(env), store=MemoryStore())
        backend = "memory"
    with TestClient(app, base_url="http://localhost:8080", timeout=120) as client:
        value = "tk_" + secrets.token_urlsafe(32)
        now = int(time.time())
        record = AccessToken(token_hash=hash_token(value), token_display=token_display(value),
                             active=True, scope="scim:write", client_id="bench", exp=now + 3600,
                             iat=now, sub=None)

        async def save() -> None:
            await app.state.services.store.save_tokens(record, None, now)

        client.blocking_portal.call(save)
        client.headers["Authorization"] = f"Bearer {value}"
        run_rounds(client, 1)  # warm-up
        figures = summary(run_rounds(client, args.rounds))
    print(f"| backend | Bulk of {OPERATIONS} creates: creates/s | p50 ms per bulk | max ms |")
    print("|---|---:|---:|---:|")
    print(f"| {backend} (in process) | {figures['creates_per_s']:.0f} | "
          f"{figures['p50_ms']:.0f} | {figures['max_ms']:.0f} |")


if __name__ == "__main__":
    main()

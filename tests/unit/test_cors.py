"""The CORS pieces: which paths, the response headers, and the preflight's origin snapshot."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from adapters.memory.clients import MemoryClients
from domain.client_directory import ClientDirectory
from domain.clients import AUTH_NONE, Client, ClientRegistry
from domain.errors import StoreUnavailable
from domain.records import Batch
from entrypoints.http.cors import Preflight, cors_methods, response_headers
from tests.doubles import FakeClock

STATIC = Client(client_id="spa", name="SPA", auth_methods=frozenset({AUTH_NONE}),
                allowed_cors_origins=("https://static.example",))


class CountingClients(MemoryClients):
    def __init__(self) -> None:
        super().__init__()
        self.scans = 0
        self.down = False

    async def list_clients(self, cursor: str | None, limit: int) -> Batch[Client]:
        self.scans += cursor is None
        if self.down:
            raise StoreUnavailable("the store is down")
        return await super().list_clients(cursor, limit)


class Metrics:
    errors = 0

    def store_error(self) -> None:
        self.errors += 1


def _preflight() -> tuple[Preflight, CountingClients, FakeClock, Metrics]:
    store = CountingClients()
    clock = FakeClock()
    services: Any = SimpleNamespace(clients=ClientDirectory(ClientRegistry([STATIC]), store),
                                    clock=clock)
    metrics = Metrics()
    return Preflight(lambda: services, metrics), store, clock, metrics  # type: ignore[arg-type]


def _stored(client_id: str, origin: str) -> Client:
    return Client(client_id=client_id, name=client_id, auth_methods=frozenset({AUTH_NONE}),
                  allowed_cors_origins=(origin,))


def test_only_the_three_browser_endpoints_have_cors() -> None:
    assert cors_methods("/oauth/token") == b"POST"
    assert cors_methods("/oauth/revoke") == b"POST"
    assert cors_methods("/oauth/userinfo") == b"GET, POST"
    assert cors_methods("//oauth//token/") == b"POST"
    for path in ("/oauth/introspect", "/oauth/authorize", "/admin/clients", "/scim/v2/Users",
                 "/health"):
        assert cors_methods(path) is None


def test_the_response_allows_only_an_origin_the_client_lists() -> None:
    allowed = dict(response_headers("https://static.example", STATIC))
    assert allowed[b"access-control-allow-origin"] == b"https://static.example"
    assert allowed[b"vary"] == b"Origin"
    assert response_headers("https://other.example", STATIC) == ((b"vary", b"Origin"),)
    assert response_headers("https://static.example", None) == ((b"vary", b"Origin"),)


async def test_static_origins_need_no_store() -> None:
    preflight, store, _, _ = _preflight()
    assert await preflight.origin_allowed("https://static.example")
    assert store.scans == 0


async def test_stored_origins_are_read_on_a_miss_at_most_every_five_seconds() -> None:
    preflight, store, clock, _ = _preflight()
    await store.create_client(_stored("a", "https://a.example"))
    assert await preflight.origin_allowed("https://a.example")
    assert store.scans == 1
    assert not await preflight.origin_allowed("https://b.example")
    await store.create_client(_stored("b", "https://b.example"))
    assert not await preflight.origin_allowed("https://b.example")  # within 5 s: no scan
    assert store.scans == 1
    clock.advance(5)
    assert await preflight.origin_allowed("https://b.example")
    assert store.scans == 2
    assert await preflight.origin_allowed("https://a.example")  # a hit: no scan
    assert store.scans == 2


async def test_a_deleted_clients_origin_goes_when_the_snapshot_ages() -> None:
    preflight, store, clock, _ = _preflight()
    await store.create_client(_stored("a", "https://a.example"))
    assert await preflight.origin_allowed("https://a.example")
    await store.delete_client("a")
    clock.advance(59)
    assert await preflight.origin_allowed("https://a.example")
    clock.advance(1)
    assert not await preflight.origin_allowed("https://a.example")


async def test_a_store_outage_refuses_unknown_origins_and_keeps_the_last_snapshot() -> None:
    preflight, store, clock, metrics = _preflight()
    await store.create_client(_stored("a", "https://a.example"))
    assert await preflight.origin_allowed("https://a.example")
    store.down = True
    clock.advance(10)
    assert not await preflight.origin_allowed("https://new.example")
    assert metrics.errors == 1 and store.scans == 2
    assert not await preflight.origin_allowed("https://other.example")
    assert store.scans == 2  # no store call per preflight while it is down
    assert await preflight.origin_allowed("https://a.example")
    assert await preflight.origin_allowed("https://static.example")
    store.down = False
    clock.advance(5)
    await store.create_client(_stored("n", "https://new.example"))
    assert await preflight.origin_allowed("https://new.example")

"""Introspection of a token whose client no longer exists (a deleted or revoked
registration): inactive at once; a static client's token costs no client-store read."""

from __future__ import annotations

from typing import Any

from adapters.memory.store import MemoryStore
from domain.client_directory import ClientDirectory
from domain.clients import ClientRegistry
from domain.oauth import OAuthPorts, introspect, issue_client_credentials
from tests.unit.oauth_doubles import SERVICE, World


class CountingStore(MemoryStore):
    """A memory store that counts client lookups."""

    def __init__(self) -> None:
        super().__init__()
        self.client_reads = 0

    async def get_client(self, client_id: str) -> Any:
        self.client_reads += 1
        return await super().get_client(client_id)


def _ports(world: World, directory: ClientDirectory) -> OAuthPorts:
    return OAuthPorts(
        store=world.store, clock=world.clock, token_generator=world.ports.token_generator,
        events=world.events, signer=world.signer, policy=world.policy, clients=directory)


async def test_a_stored_clients_token_is_inactive_once_the_client_is_deleted() -> None:
    store = CountingStore()
    world = World(store=store)
    await store.create_client(SERVICE)
    ports = _ports(world, ClientDirectory(ClientRegistry(), store))
    issued = await issue_client_credentials(ports, SERVICE, "read")
    assert (await introspect(ports, SERVICE, issued.access_token, None)).active is True
    assert await store.delete_client(SERVICE.client_id)
    assert (await introspect(ports, SERVICE, issued.access_token, None)).active is False


async def test_a_static_clients_token_is_checked_without_reading_the_store() -> None:
    store = CountingStore()
    world = World(store=store)
    ports = _ports(world, ClientDirectory(ClientRegistry([SERVICE]), store))
    issued = await issue_client_credentials(ports, SERVICE, "read")
    assert (await introspect(ports, SERVICE, issued.access_token, None)).active is True
    assert store.client_reads == 0

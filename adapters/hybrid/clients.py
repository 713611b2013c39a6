"""``HybridClients``: the ``ClientStore`` port (and ``ClientTransfer``) for ``hybrid``.

Without Redis, clients and initial access tokens live in this process's memory (the memory
adapter's :class:`~adapters.memory.clients.MemoryClients`): one instance, which decides
everything itself.

With Redis (one server or a cluster), Redis alone holds them (``redis_clients.py``) and
every call goes to it, so a registration, a change or a deletion on one instance is seen
by every other at once; a compare-and-set replace, a create and a use of an initial access
token are each one Lua script. Nothing of the part is kept in this process's memory, not
even as a fallback: during an outage every call, reads included, raises
``StoreUnavailable`` (fail closed). A client served from a stale copy could still
authenticate after it was deleted or its secret rotated away elsewhere, and a registration
made on one instance alone would be unknown to the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from adapters.hybrid.connection import _SKIP, HybridConnection
from adapters.hybrid.redis_clients import RedisClients
from domain.clients import Client, InitialAccessToken
from domain.errors import StoreUnavailable
from domain.records import Batch

_T = TypeVar("_T")


class HybridClients(HybridConnection):
    """:class:`ports.store.ClientStore` and ``ClientTransfer`` for
    :class:`~adapters.hybrid.HybridStore`; see the module docstring."""

    __slots__ = ()

    async def _on_redis(self, op: Callable[[RedisClients], Awaitable[_T]]) -> _T:
        """``op``'s result on the configured Redis (callers check ``_shares`` first).
        Raises ``StoreUnavailable`` while it cannot be used: the part never falls back to
        this process's memory."""

        result = await self._ask(None, lambda redis: op(self._client_part(redis)))
        if result is _SKIP:
            raise StoreUnavailable("the shared client registry is unreachable")
        return result

    # ClientStore

    async def create_client(self, client: Client) -> Client:
        """See :meth:`ports.store.ClientStore.create_client`."""
        if not self._shares:
            return await self.clients.create_client(client)
        return await self._on_redis(lambda r: r.create_client(client))

    async def get_client(self, client_id: str) -> Client | None:
        """See :meth:`ports.store.ClientStore.get_client`. One Redis command."""
        if not self._shares:
            return await self.clients.get_client(client_id)
        return await self._on_redis(lambda r: r.get_client(client_id))

    async def find_client_by_resource(self, resource_uri: str) -> Client | None:
        """See :meth:`ports.store.ClientStore.find_client_by_resource`. One script."""
        if not self._shares:
            return await self.clients.find_client_by_resource(resource_uri)
        return await self._on_redis(lambda r: r.find_client_by_resource(resource_uri))

    async def list_clients(self, cursor: str | None, limit: int) -> Batch[Client]:
        """See :meth:`ports.store.ClientStore.list_clients`."""
        if not self._shares:
            return await self.clients.list_clients(cursor, limit)
        return await self._on_redis(lambda r: r.list_clients(cursor, limit))

    async def replace_client(self, client: Client, *, expected_version: int) -> Client:
        """See :meth:`ports.store.ClientStore.replace_client`."""
        if not self._shares:
            return await self.clients.replace_client(client, expected_version=expected_version)
        return await self._on_redis(
            lambda r: r.replace_client(client, expected_version=expected_version)
        )

    async def delete_client(self, client_id: str) -> bool:
        """See :meth:`ports.store.ClientStore.delete_client`."""
        if not self._shares:
            return await self.clients.delete_client(client_id)
        return await self._on_redis(lambda r: r.delete_client(client_id))

    async def save_initial_access_token(self, token: InitialAccessToken, now: int) -> None:
        """See :meth:`ports.store.ClientStore.save_initial_access_token`. With Redis, a
        token with an expiry is a key with a TTL."""
        if not self._shares:
            await self.clients.save_initial_access_token(token, now)
            return
        await self._on_redis(lambda r: r.save_initial_access_token(token, now))

    async def use_initial_access_token(self, digest: str, now: int) -> bool:
        """See :meth:`ports.store.ClientStore.use_initial_access_token`."""
        if not self._shares:
            return await self.clients.use_initial_access_token(digest, now)
        return await self._on_redis(lambda r: r.use_initial_access_token(digest, now))

    # ClientTransfer

    async def export_clients(self, cursor: str | None, limit: int, now: int) -> Batch[Client]:
        """See :meth:`ports.store.ClientTransfer.export_clients`."""
        return await self.list_clients(cursor, limit)

    async def import_clients(self, records: tuple[Client, ...], now: int) -> int:
        """See :meth:`ports.store.ClientTransfer.import_clients`. With Redis, one script."""
        if not self._shares:
            return await self.clients.import_clients(records, now)
        return await self._on_redis(lambda r: r.import_clients(records))

    async def export_initial_access_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[InitialAccessToken]:
        """See :meth:`ports.store.ClientTransfer.export_initial_access_tokens`."""
        if not self._shares:
            return await self.clients.export_initial_access_tokens(cursor, limit, now)
        return await self._on_redis(
            lambda r: r.export_initial_access_tokens(cursor, limit, now)
        )

    async def import_initial_access_tokens(
        self, records: tuple[InitialAccessToken, ...], now: int
    ) -> int:
        """See :meth:`ports.store.ClientTransfer.import_initial_access_tokens`. With Redis,
        one script."""
        if not self._shares:
            return await self.clients.import_initial_access_tokens(records, now)
        return await self._on_redis(
            lambda r: r.import_initial_access_tokens(records, now)
        )


"""``MemoryClients``: the ``ClientStore`` port (and its transfer pair) in process memory.

No method awaits between reading and writing, so on one event loop each is atomic: of two
``replace_client`` calls holding the same version exactly one wins, of two creates with one
``resource_uri`` exactly one wins, and an initial access token is never spent more times
than it had uses.
"""

from __future__ import annotations

import bisect

import msgspec

from domain.clients import Client, InitialAccessToken
from domain.errors import Conflict, NotFound, PreconditionFailed
from domain.records import Batch


class MemoryClients:
    """:class:`ports.store.ClientStore` and ``ClientTransfer`` over two dicts."""

    __slots__ = ("_clients", "_ids", "_initial", "_resources")

    def __init__(self) -> None:
        self._clients: dict[str, Client] = {}
        #: The client ids in ascending order, for keyset paging.
        self._ids: list[str] = []
        self._initial: dict[str, InitialAccessToken] = {}
        #: ``resource_uri`` -> ``client_id``, kept by every write of a client.
        self._resources: dict[str, str] = {}

    @property
    def client_count(self) -> int:
        return len(self._clients)

    # ClientStore

    async def create_client(self, client: Client) -> Client:
        """See :meth:`ports.store.ClientStore.create_client`."""
        if client.client_id in self._clients:
            raise Conflict(f"client {client.client_id!r} already exists", "client_id")
        self._check_resource(client)
        stored = msgspec.structs.replace(client, version=1)
        self._put(stored)
        return stored

    async def get_client(self, client_id: str) -> Client | None:
        """See :meth:`ports.store.ClientStore.get_client`."""
        return self._clients.get(client_id)

    async def find_client_by_resource(self, resource_uri: str) -> Client | None:
        """See :meth:`ports.store.ClientStore.find_client_by_resource`."""
        client_id = self._resources.get(resource_uri)
        return None if client_id is None else self._clients.get(client_id)

    async def list_clients(self, cursor: str | None, limit: int) -> Batch[Client]:
        """See :meth:`ports.store.ClientStore.list_clients`."""
        start = 0 if cursor is None else bisect.bisect_right(self._ids, cursor)
        ids = self._ids[start:start + limit]
        more = start + limit < len(self._ids)
        return Batch(tuple(self._clients[i] for i in ids), ids[-1] if ids and more else None)

    async def replace_client(self, client: Client, *, expected_version: int) -> Client:
        """See :meth:`ports.store.ClientStore.replace_client`."""
        held = self._clients.get(client.client_id)
        if held is None:
            raise NotFound(f"no client {client.client_id!r}")
        if held.version != expected_version:
            raise PreconditionFailed(
                f"client {client.client_id!r} is at version {held.version}, "
                f"not {expected_version}"
            )
        self._check_resource(client)
        stored = msgspec.structs.replace(client, version=expected_version + 1)
        self._put(stored)
        return stored

    async def delete_client(self, client_id: str) -> bool:
        """See :meth:`ports.store.ClientStore.delete_client`."""
        held = self._clients.pop(client_id, None)
        if held is None:
            return False
        if held.resource_uri is not None:
            del self._resources[held.resource_uri]
        del self._ids[bisect.bisect_left(self._ids, client_id)]
        return True

    async def save_initial_access_token(self, token: InitialAccessToken, now: int) -> None:
        """See :meth:`ports.store.ClientStore.save_initial_access_token`."""
        self._initial[token.digest] = token

    async def use_initial_access_token(self, digest: str, now: int) -> bool:
        """See :meth:`ports.store.ClientStore.use_initial_access_token`."""
        token = self._initial.get(digest)
        if token is None or not token.live(now):
            return False
        if token.uses_left == 1:
            del self._initial[digest]
        else:
            self._initial[digest] = msgspec.structs.replace(token, uses_left=token.uses_left - 1)
        return True

    def purge_initial_access_tokens(self, now: int) -> int:
        """Drop the tokens that can no longer be used; how many were dropped."""
        dead = [d for d, t in self._initial.items() if not t.live(now)]
        for digest in dead:
            del self._initial[digest]
        return len(dead)

    # ClientTransfer

    async def export_clients(self, cursor: str | None, limit: int, now: int) -> Batch[Client]:
        """See :meth:`ports.store.ClientTransfer.export_clients`."""
        return await self.list_clients(cursor, limit)

    async def import_clients(self, records: tuple[Client, ...], now: int) -> int:
        """See :meth:`ports.store.ClientTransfer.import_clients`."""
        # The batch is checked whole first (on a copy of the index), so that a clash
        # writes none of it.
        resources = dict(self._resources)
        for client in records:
            held = self._clients.get(client.client_id)
            if held is not None and held.resource_uri is not None \
                    and resources.get(held.resource_uri) == client.client_id:
                del resources[held.resource_uri]
            if client.resource_uri is not None:
                owner = resources.setdefault(client.resource_uri, client.client_id)
                if owner != client.client_id:
                    raise Conflict(f"resource_uri {client.resource_uri!r} is held by "
                                   f"client {owner!r}", "resource_uri")
        changed = 0
        for client in records:
            if self._clients.get(client.client_id) != client:
                self._put(client)
                changed += 1
        return changed

    async def export_initial_access_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[InitialAccessToken]:
        """See :meth:`ports.store.ClientTransfer.export_initial_access_tokens`."""
        live = sorted(d for d, t in self._initial.items() if t.live(now))
        start = 0 if cursor is None else bisect.bisect_right(live, cursor)
        digests = live[start:start + limit]
        more = start + limit < len(live)
        return Batch(tuple(self._initial[d] for d in digests),
                     digests[-1] if digests and more else None)

    async def import_initial_access_tokens(
        self, records: tuple[InitialAccessToken, ...], now: int
    ) -> int:
        """See :meth:`ports.store.ClientTransfer.import_initial_access_tokens`."""
        changed = 0
        for token in records:
            if not token.live(now):
                continue
            held = self._initial.get(token.digest)
            if held is not None and held.live(now) and held.uses_left <= token.uses_left:
                continue
            self._initial[token.digest] = token
            changed += 1
        return changed

    def _check_resource(self, client: Client) -> None:
        uri = client.resource_uri
        owner = None if uri is None else self._resources.get(uri)
        if owner is not None and owner != client.client_id:
            raise Conflict(f"resource_uri {uri!r} is held by client {owner!r}", "resource_uri")

    def _put(self, client: Client) -> None:
        """Write ``client`` and move its ``resource_uri`` in the index (checked before)."""
        held = self._clients.get(client.client_id)
        if held is None:
            bisect.insort(self._ids, client.client_id)
        elif held.resource_uri is not None and held.resource_uri != client.resource_uri:
            del self._resources[held.resource_uri]
        if client.resource_uri is not None:
            self._resources[client.resource_uri] = client.client_id
        self._clients[client.client_id] = client

"""Finding a client: the static ones first, then the Store's client part.

Static clients (``CLIENTS_FILE``, ``CLIENT_CREDENTIALS``) win over a stored client with
the same id, and are found without a store round trip (the token endpoint's hot path for
the clients most deployments have). A stored client is read from the store on every use,
with no cache, so a registration, a change or a deletion made on one instance holds on
every other at once.
"""

from __future__ import annotations

from collections.abc import Awaitable

from domain.clients import AUTH_NONE, Client, ClientRegistry, authenticate_public, check_secret
from ports.store import ClientStore


class ClientDirectory:
    """Every client this server knows: :attr:`static` and those in ``store``."""

    __slots__ = ("static", "store")

    def __init__(self, static: ClientRegistry, store: ClientStore) -> None:
        self.static = static
        self.store = store

    def static_client(self, client_id: str) -> Client | None:
        return self.static.get(client_id)

    async def find(self, client_id: str) -> Client | None:
        """The client with this id, static first; None when there is none."""
        client = self.static.get(client_id)
        if client is not None:
            return client
        return await self.store.get_client(client_id)

    def authenticate(
        self, client_id: str, secret: str | None, method: str, now: int
    ) -> Client | Awaitable[Client | None] | None:
        """The client, when ``method`` is one it may use and ``secret`` proves it; else None.

        A static client is answered at once (no await on the hot path); any other id
        returns an awaitable that asks the store. Failures cost the same digest and
        comparison whichever way they go (:func:`~domain.clients.check_secret`).
        """
        if client_id in self.static:
            return self.static.authenticate(client_id, secret, method, now)
        return self._authenticate_stored(client_id, secret, method, now)

    async def _authenticate_stored(
        self, client_id: str, secret: str | None, method: str, now: int
    ) -> Client | None:
        client = await self.store.get_client(client_id)
        if method == AUTH_NONE:
            return authenticate_public(client, secret)
        return check_secret(client, secret or "", method, now)

"""``MemoryStore``: the whole ``Store`` port in process memory.

The store for unit tests and development, and the reference the contract suite is checked
against first. It is two separable halves, :class:`MemoryIdentities` and
:class:`MemoryTokenState`, so that ``hybrid`` can reuse the identity half next to its own
token state.
"""

from __future__ import annotations

import msgspec

from adapters.memory.account_tokens import MemoryAccountTokens
from adapters.memory.clients import MemoryClients
from adapters.memory.consents import MemoryConsents
from adapters.memory.delegation import (
    AccountTokensInMemory,
    ClientsInMemory,
    ConsentsInMemory,
    DeviceInMemory,
    IdentitiesInMemory,
    SessionsInMemory,
    TokenStateInMemory,
)
from adapters.memory.device import MemoryDevice
from adapters.memory.identities import MemoryIdentities
from adapters.memory.sessions import MemorySessions
from adapters.memory.token_state import MemoryTokenState
from adapters.memory.transfer import MemoryTransfer
from domain.entities import PurgeCounts, StoreCounts


class MemoryStore(
    IdentitiesInMemory, TokenStateInMemory, ClientsInMemory, SessionsInMemory, ConsentsInMemory,
    DeviceInMemory, AccountTokensInMemory, MemoryTransfer,
):
    """Implements :class:`ports.store.Store` with dicts; nothing survives the process.

    ``identities`` and ``tokens`` may be passed in to share them (a test that inspects one
    half, or an adapter composing them); by default each store gets fresh, empty halves.
    """

    __slots__ = ("account_tokens", "clients", "consents", "device", "identities", "sessions",
                 "tokens")

    def __init__(
        self,
        identities: MemoryIdentities | None = None,
        tokens: MemoryTokenState | None = None,
        clients: MemoryClients | None = None,
        sessions: MemorySessions | None = None,
        consents: MemoryConsents | None = None,
        device: MemoryDevice | None = None,
        account_tokens: MemoryAccountTokens | None = None,
    ) -> None:
        self.identities = identities if identities is not None else MemoryIdentities()
        self.tokens = tokens if tokens is not None else MemoryTokenState()
        self.clients = clients if clients is not None else MemoryClients()
        self.sessions = sessions if sessions is not None else MemorySessions()
        self.consents = consents if consents is not None else MemoryConsents()
        self.device = device if device is not None else MemoryDevice()
        self.account_tokens = (account_tokens if account_tokens is not None
                               else MemoryAccountTokens())

    # StoreAdmin

    async def health(self) -> dict[str, bool]:
        """Always ``{"store": True}``: process memory cannot be unreachable."""
        return {"store": True}

    async def counts(self, now: int) -> StoreCounts:
        """See :meth:`ports.store.StoreAdmin.counts`."""
        return StoreCounts(
            users=self.identities.user_count,
            groups=self.identities.group_count,
            access_tokens=self.tokens.count_access_tokens(now),
            refresh_tokens=self.tokens.count_refresh_tokens(now),
            codes=self.tokens.count_codes(now),
            clients=self.clients.client_count,
            sessions=self.sessions.count(now),
            consents=self.consents.count,
            device_authorizations=self.device.count(now),
            account_tokens=self.account_tokens.count(now),
        )

    async def purge_expired(self, now: int, batch_size: int = 1000) -> PurgeCounts:
        """See :meth:`ports.store.StoreAdmin.purge_expired`."""
        counts = await self.tokens.purge_expired(now, batch_size)
        dead = self.clients.purge_initial_access_tokens(now)
        return msgspec.structs.replace(
            counts, initial_access_tokens=dead, sessions=self.sessions.purge(now),
            consent_grants=self.consents.purge(now), device_authorizations=self.device.purge(now),
            account_tokens=self.account_tokens.purge(now))

    async def close(self) -> None:
        """Nothing to release."""

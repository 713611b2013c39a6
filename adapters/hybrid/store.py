"""``HybridStore``: identities in memory; token state in memory and, when configured, Redis.

With Redis, Redis is the source of truth for token state: every read of it goes to Redis
(one round trip, no cache), so a token revoked on one instance reads as inactive on every
other at once. Every write also lands in this process's memory, which serves reads while
Redis is unreachable. Decisions that are only safe on the shared view -- taking a code,
rotating a refresh token, a single-use claim, a rate-limit count -- are refused during an
outage (``StoreUnavailable``, a 503), never made by one instance alone. Other writes made
during an outage are queued and replayed into Redis, in order, before Redis is used again,
so tokens issued meanwhile stay valid and revocations reach every instance; the queue is
bounded for ordinary writes (past the bound they are refused), never for revocations.
Stored clients and initial access tokens, browser sessions and consents, device
authorizations and account tokens (password-reset and email-verification links), with
Redis, live in Redis only: no memory copy, so during an outage they are refused too, reads
included (``clients.py``, ``sessions.py``, ``consents.py``, ``device.py``,
``account_tokens.py``).

Each part of the port the adapter implements itself is a mixin in the module of its name
(``clients``, ``codes``, ``tokens``, ``ephemeral``, ``sessions``, ``consents``, ``device``,
``account_tokens``, ``transfer``, ``admin``), all over one
:class:`~adapters.hybrid.connection.HybridConnection`, which holds this process's memory and
the shared state and translates every redis-py error, once. Identities and credentials are
the memory adapter's, forwarded by :class:`~adapters.memory.delegation.IdentitiesInMemory`.
"""

from __future__ import annotations

from adapters.hybrid.account_tokens import HybridAccountTokens
from adapters.hybrid.admin import HybridAdmin
from adapters.hybrid.clients import HybridClients
from adapters.hybrid.codes import HybridCodes
from adapters.hybrid.connection import DEFAULT_BACKLOG, Connector
from adapters.hybrid.consents import HybridConsents
from adapters.hybrid.device import HybridDevice
from adapters.hybrid.ephemeral import HybridEphemeral
from adapters.hybrid.sessions import HybridSessions
from adapters.hybrid.tokens import HybridTokens
from adapters.hybrid.transfer import HybridTransfer
from adapters.memory.delegation import IdentitiesInMemory

__all__ = ["DEFAULT_BACKLOG", "Connector", "HybridStore"]


class HybridStore(
    IdentitiesInMemory, HybridClients, HybridCodes, HybridTokens, HybridEphemeral,
    HybridSessions, HybridConsents, HybridDevice, HybridAccountTokens, HybridTransfer,
    HybridAdmin,
):
    """Implements :class:`ports.store.Store`; see the module docstring. Build it with
    :func:`adapters.hybrid.open_hybrid_store`; the arguments are
    :class:`~adapters.hybrid.connection.HybridConnection`'s."""

    __slots__ = ()

"""The ``memory`` adapter: the whole Store port in process memory (tests, development).

One module per part of the port, as in ``sql``: ``identities`` (users, groups),
``credentials``, ``codes``, ``tokens``, ``ephemeral``, ``admin`` (counts, purge) and
``transfer``. The parts are mixins over the shared dicts and indexes of ``state``, composed
into two halves, ``MemoryIdentities`` (identities with credentials) and ``MemoryTokenState``
(``token_state``: codes, tokens, ephemeral state); ``store`` composes ``MemoryStore`` from
the halves (forwarded by ``delegation``), and ``hybrid`` reuses them.
"""

from adapters.memory.identities import MemoryIdentities
from adapters.memory.store import MemoryStore
from adapters.memory.token_state import MemoryTokenState

__all__ = ["MemoryIdentities", "MemoryStore", "MemoryTokenState"]

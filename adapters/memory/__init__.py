"""The ``memory`` adapter: the whole Store port in process memory (tests, development).

``MemoryIdentities`` and ``MemoryTokenState`` are its two halves; ``hybrid`` reuses the
first.
"""

from adapters.memory.identities import MemoryIdentities
from adapters.memory.store import MemoryStore
from adapters.memory.token_state import MemoryTokenState

__all__ = ["MemoryIdentities", "MemoryStore", "MemoryTokenState"]

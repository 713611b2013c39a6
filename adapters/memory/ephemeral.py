"""``MemoryEphemeral``: the ``EphemeralStore`` port in process memory.

``claim_once`` never awaits between reading and writing, so on one event loop it is atomic.
"""

from __future__ import annotations

from adapters.memory.state import TokenState, _Counter


class MemoryEphemeral(TokenState):
    """:class:`ports.store.EphemeralStore` over one
    :class:`~adapters.memory.state.TokenState`."""

    __slots__ = ()

    async def claim_once(self, key: str, exp: int, now: int) -> bool:
        """See :meth:`ports.store.EphemeralStore.claim_once`."""
        held_until = self._claims.get(key)
        if held_until is not None and held_until > now:
            return False
        self._claims[key] = exp
        return True

    async def hit(self, key: str, window_seconds: int, now: int, amount: int = 1) -> int:
        """See :meth:`ports.store.EphemeralStore.hit`."""
        window = now // window_seconds
        counter = self._counters.get(key)
        value = counter.value if counter is not None and counter.window == window else 0
        if amount:
            value += amount
            self._counters[key] = _Counter(
                exp=(window + 1) * window_seconds, window=window, value=value
            )
        return value

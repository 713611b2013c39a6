"""``MemoryCodes``: the ``CodeStore`` port in process memory.

``take_code`` never awaits between reading and writing, so on one event loop it is atomic.
"""

from __future__ import annotations

from adapters.memory.state import TokenState, _add, _Tombstone
from domain.entities import AuthorizationCode, ConsumedCode


class MemoryCodes(TokenState):
    """:class:`ports.store.CodeStore` over one :class:`~adapters.memory.state.TokenState`."""

    __slots__ = ()

    async def save_code(self, code: AuthorizationCode, now: int) -> None:
        """See :meth:`ports.store.CodeStore.save_code`."""
        self._forget_code(code.code_hash)
        self._codes[code.code_hash] = code
        if code.user_id is not None:
            _add(self._codes_by_sub, code.user_id, code.code_hash)

    async def take_code(
        self, code_hash: str, now: int, *, remember_until: int
    ) -> AuthorizationCode | ConsumedCode | None:
        """See :meth:`ports.store.CodeStore.take_code`."""
        code = self._codes.get(code_hash)
        if code is not None and code.exp > now:
            self._forget_code(code_hash)
            consumed = ConsumedCode(code_hash, code.grant_id, code.client_id)
            self._tombstones[code_hash] = _Tombstone(exp=remember_until, code=consumed)
            return code
        tombstone = self._tombstones.get(code_hash)
        if tombstone is not None and tombstone.exp > now:
            return tombstone.code
        return None

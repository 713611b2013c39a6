"""``HybridCodes``: the ``CodeStore`` port for ``hybrid``. With Redis, Redis takes a code
(single use across instances); every code is mirrored in this process's memory."""

from __future__ import annotations

import secrets

from adapters.hybrid.connection import _SKIP, HybridConnection
from domain.entities import AuthorizationCode, ConsumedCode


class HybridCodes(HybridConnection):
    """:class:`ports.store.CodeStore` for :class:`~adapters.hybrid.HybridStore`."""

    __slots__ = ()

    async def save_code(self, code: AuthorizationCode, now: int) -> None:
        """See :meth:`ports.store.CodeStore.save_code`."""
        if await self._ask(now, lambda r: r.save_code(code, now)) is _SKIP:
            self._defer(lambda r, n: r.save_code(code, n), now)
        await self.tokens.save_code(code, now)

    async def take_code(
        self, code_hash: str, now: int, *, remember_until: int
    ) -> AuthorizationCode | ConsumedCode | None:
        """See :meth:`ports.store.CodeStore.take_code`.

        With Redis, Redis decides (``StoreUnavailable`` while it cannot); this instance's
        copy is taken too, so that its memory agrees.
        """
        # One taker for this call, whoever asks Redis again for it (see scripts.TAKE_CODE).
        taker = secrets.token_hex(8)
        shared = await self._shared(
            now, lambda r: r.take_code(code_hash, now, remember_until, taker))
        local = await self.tokens.take_code(code_hash, now, remember_until=remember_until)
        return local if shared is _SKIP else shared

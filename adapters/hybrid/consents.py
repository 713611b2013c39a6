"""``HybridConsents``: the ``ConsentStore`` port (and ``ConsentTransfer``) for ``hybrid``.

Without Redis, consents live in this process's memory (the memory adapter's
:class:`~adapters.memory.consents.MemoryConsents`).

With Redis (one server or a cluster), Redis alone holds them (``redis_consents.py``) and
every call goes to it: a consent given on one instance is known to every other, and a
withdrawal is seen everywhere at once. Merging scopes into a consent, recording a grant
under it only while it exists, and withdrawing it (returned to one caller only) are each
one Lua script, so a grant recorded on one instance cannot slip past a withdrawal made on
another. Nothing of the part is kept in this process's memory: during an outage every
call, reads included, raises ``StoreUnavailable`` (fail closed). A stale copy would let a
withdrawn consent still skip the consent page, or let a grant issued under it escape the
revocation the withdrawal makes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from adapters.hybrid.connection import _SKIP, HybridConnection
from adapters.hybrid.redis_consents import RedisConsents
from domain.consent import Consent, ConsentRecord
from domain.errors import StoreUnavailable
from domain.records import Batch

_T = TypeVar("_T")


class HybridConsents(HybridConnection):
    """:class:`ports.store.ConsentStore` and ``ConsentTransfer`` for
    :class:`~adapters.hybrid.HybridStore`; see the module docstring."""

    __slots__ = ()

    async def _consents_on_redis(
        self, now: int | None, op: Callable[[RedisConsents], Awaitable[_T]]
    ) -> _T:
        """``op``'s result on the configured Redis (callers check ``_shares`` first).
        Raises ``StoreUnavailable`` while it cannot be used: the part never falls back to
        this process's memory."""
        result = await self._ask(now, lambda redis: op(self._consent_part(redis)))
        if result is _SKIP:
            raise StoreUnavailable("the shared consent store is unreachable")
        return result

    # ConsentStore

    async def get_consent(self, user_id: str, client_id: str) -> Consent | None:
        """See :meth:`ports.store.ConsentStore.get_consent`. One Redis command."""
        if not self._shares:
            return await self.consents.get_consent(user_id, client_id)
        return await self._consents_on_redis(None, lambda r: r.get_consent(user_id, client_id))

    async def grant_consent(
        self, user_id: str, client_id: str, scopes: tuple[str, ...], now: int
    ) -> Consent:
        """See :meth:`ports.store.ConsentStore.grant_consent`. With Redis, one script."""
        if not self._shares:
            return await self.consents.grant_consent(user_id, client_id, scopes, now)
        return await self._consents_on_redis(
            now, lambda r: r.grant_consent(user_id, client_id, scopes, now))

    async def list_consents(self, user_id: str) -> tuple[Consent, ...]:
        """See :meth:`ports.store.ConsentStore.list_consents`. One Redis command."""
        if not self._shares:
            return await self.consents.list_consents(user_id)
        return await self._consents_on_redis(None, lambda r: r.list_consents(user_id))

    async def record_consent_grant(
        self, user_id: str, client_id: str, grant_id: str, exp: int, now: int
    ) -> bool:
        """See :meth:`ports.store.ConsentStore.record_consent_grant`. With Redis, one
        script."""
        if not self._shares:
            return await self.consents.record_consent_grant(
                user_id, client_id, grant_id, exp, now)
        return await self._consents_on_redis(
            now, lambda r: r.record_consent_grant(user_id, client_id, grant_id, exp, now))

    async def withdraw_consent(
        self, user_id: str, client_id: str, now: int
    ) -> ConsentRecord | None:
        """See :meth:`ports.store.ConsentStore.withdraw_consent`. With Redis, one script."""
        if not self._shares:
            return await self.consents.withdraw_consent(user_id, client_id, now)
        return await self._consents_on_redis(
            now, lambda r: r.withdraw_consent(user_id, client_id, now))

    # ConsentTransfer

    async def export_consents(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ConsentRecord]:
        """See :meth:`ports.store.ConsentTransfer.export_consents`."""
        if not self._shares:
            return await self.consents.export_consents(cursor, limit, now)
        return await self._consents_on_redis(
            now, lambda r: r.export_consents(cursor, limit, now))

    async def import_consents(self, records: tuple[ConsentRecord, ...], now: int) -> int:
        """See :meth:`ports.store.ConsentTransfer.import_consents`. With Redis, one script
        (on a cluster, one per user's slot)."""
        if not self._shares:
            return await self.consents.import_consents(records, now)
        return await self._consents_on_redis(now, lambda r: r.import_consents(records, now))

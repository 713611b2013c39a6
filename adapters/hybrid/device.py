"""``HybridDevice``: the ``DeviceStore`` port (and ``DeviceTransfer``) for ``hybrid``.

Without Redis, device authorizations live in this process's memory (the memory adapter's
:class:`~adapters.memory.device.MemoryDevice`): one instance, which decides everything
itself.

With Redis (one server or a cluster), Redis alone holds them (``redis_device.py``) and
every call is one Lua script there: a save that checks both codes, a decision taken once,
a poll that hands an approval to exactly one poller, on whichever instance. Nothing of the
part is kept in this process's memory, not even as a fallback: during an outage every
call, reads included, raises ``StoreUnavailable`` (fail closed). A device polls again
after an error, and the user retries the verification page; a decision or an approval
taken by one instance alone could be taken again by another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from adapters.hybrid.connection import _SKIP, HybridConnection
from adapters.hybrid.redis_device import RedisDevice
from domain.device import DeviceAuthorization, DeviceDecision, DevicePoll
from domain.errors import StoreUnavailable
from domain.records import Batch

_T = TypeVar("_T")


class HybridDevice(HybridConnection):
    """:class:`ports.store.DeviceStore` and ``DeviceTransfer`` for
    :class:`~adapters.hybrid.HybridStore`; see the module docstring."""

    __slots__ = ()

    async def _on_shared_device(
        self, now: int, op: Callable[[RedisDevice], Awaitable[_T]]
    ) -> _T:
        """``op``'s result on the configured Redis (callers check ``_shares`` first).
        Raises ``StoreUnavailable`` while it cannot be used: the part never falls back to
        this process's memory."""
        result = await self._ask(now, lambda redis: op(self._device_part(redis)))
        if result is _SKIP:
            raise StoreUnavailable("the shared device authorizations are unreachable")
        return result

    # DeviceStore

    async def save_device_authorization(
        self, authorization: DeviceAuthorization, now: int
    ) -> bool:
        """See :meth:`ports.store.DeviceStore.save_device_authorization`."""
        if not self._shares:
            return await self.device.save_device_authorization(authorization, now)
        return await self._on_shared_device(
            now, lambda r: r.save_device_authorization(authorization, now)
        )

    async def find_device_authorization(
        self, user_code_hash: str, now: int
    ) -> DeviceAuthorization | None:
        """See :meth:`ports.store.DeviceStore.find_device_authorization`."""
        if not self._shares:
            return await self.device.find_device_authorization(user_code_hash, now)
        return await self._on_shared_device(
            now, lambda r: r.find_device_authorization(user_code_hash, now)
        )

    async def decide_device_authorization(
        self, user_code_hash: str, decision: DeviceDecision, now: int
    ) -> DeviceAuthorization | None:
        """See :meth:`ports.store.DeviceStore.decide_device_authorization`."""
        if not self._shares:
            return await self.device.decide_device_authorization(user_code_hash, decision, now)
        return await self._on_shared_device(
            now, lambda r: r.decide_device_authorization(user_code_hash, decision, now)
        )

    async def poll_device_authorization(self, device_code_hash: str, now: int) -> DevicePoll:
        """See :meth:`ports.store.DeviceStore.poll_device_authorization`."""
        if not self._shares:
            return await self.device.poll_device_authorization(device_code_hash, now)
        return await self._on_shared_device(
            now, lambda r: r.poll_device_authorization(device_code_hash, now)
        )

    # DeviceTransfer

    async def export_device_authorizations(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[DeviceAuthorization]:
        """See :meth:`ports.store.DeviceTransfer.export_device_authorizations`."""
        if not self._shares:
            return await self.device.export_device_authorizations(cursor, limit, now)
        return await self._on_shared_device(
            now, lambda r: r.export_device_authorizations(cursor, limit, now)
        )

    async def import_device_authorizations(
        self, records: tuple[DeviceAuthorization, ...], now: int
    ) -> int:
        """See :meth:`ports.store.DeviceTransfer.import_device_authorizations`. With Redis,
        one script per call."""
        if not self._shares:
            return await self.device.import_device_authorizations(records, now)
        return await self._on_shared_device(
            now, lambda r: r.import_device_authorizations(records, now)
        )

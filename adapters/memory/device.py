"""``MemoryDevice``: the ``DeviceStore`` port (and its transfer pair) in process memory.

No method awaits between reading and writing, so on one event loop each is atomic: a
decision is taken once, and an approved authorization is handed to one poll only.
"""

from __future__ import annotations

import bisect

import msgspec

from domain.device import (
    SLOW_DOWN_SECONDS,
    DeviceAuthorization,
    DeviceDecision,
    DevicePoll,
    PollApproved,
    PollDenied,
    PollExpired,
    PollPending,
    PollSlowDown,
)
from domain.records import Batch


class MemoryDevice:
    """:class:`ports.store.DeviceStore` and ``DeviceTransfer`` over dicts."""

    __slots__ = ("_by_device", "_by_user", "_hashes")

    def __init__(self) -> None:
        self._by_device: dict[str, DeviceAuthorization] = {}
        self._by_user: dict[str, str] = {}
        #: The device code hashes in ascending order, for keyset paging.
        self._hashes: list[str] = []

    def count(self, now: int) -> int:
        return sum(1 for a in self._by_device.values() if a.live(now))

    def purge(self, now: int) -> int:
        dead = [h for h, a in self._by_device.items() if not a.live(now)]
        for device_code_hash in dead:
            self._remove(device_code_hash)
        return len(dead)

    def _live(self, device_code_hash: str | None, now: int) -> DeviceAuthorization | None:
        if device_code_hash is None:
            return None
        held = self._by_device.get(device_code_hash)
        return held if held is not None and held.live(now) else None

    def _put(self, authorization: DeviceAuthorization) -> None:
        if authorization.device_code_hash not in self._by_device:
            bisect.insort(self._hashes, authorization.device_code_hash)
        self._by_device[authorization.device_code_hash] = authorization
        self._by_user[authorization.user_code_hash] = authorization.device_code_hash

    def _remove(self, device_code_hash: str) -> None:
        held = self._by_device.pop(device_code_hash)
        del self._hashes[bisect.bisect_left(self._hashes, device_code_hash)]
        if self._by_user.get(held.user_code_hash) == device_code_hash:
            del self._by_user[held.user_code_hash]

    # DeviceStore

    async def save_device_authorization(
        self, authorization: DeviceAuthorization, now: int
    ) -> bool:
        """See :meth:`ports.store.DeviceStore.save_device_authorization`."""
        if self._live(authorization.device_code_hash, now) is not None or \
                self._live(self._by_user.get(authorization.user_code_hash), now) is not None:
            return False
        for stale in (authorization.device_code_hash,
                      self._by_user.get(authorization.user_code_hash)):
            if stale is not None and stale in self._by_device:
                self._remove(stale)
        self._put(authorization)
        return True

    async def find_device_authorization(
        self, user_code_hash: str, now: int
    ) -> DeviceAuthorization | None:
        """See :meth:`ports.store.DeviceStore.find_device_authorization`."""
        return self._live(self._by_user.get(user_code_hash), now)

    async def decide_device_authorization(
        self, user_code_hash: str, decision: DeviceDecision, now: int
    ) -> DeviceAuthorization | None:
        """See :meth:`ports.store.DeviceStore.decide_device_authorization`."""
        held = self._live(self._by_user.get(user_code_hash), now)
        if held is None or held.status != "pending":
            return None
        decided = msgspec.structs.replace(
            held, status=decision.status, user_id=decision.user_id,
            auth_time=decision.auth_time, amr=decision.amr, acr=decision.acr,
            sid=decision.sid)
        self._put(decided)
        return decided

    async def poll_device_authorization(self, device_code_hash: str, now: int) -> DevicePoll:
        """See :meth:`ports.store.DeviceStore.poll_device_authorization`."""
        held = self._live(device_code_hash, now)
        if held is None:
            return PollExpired()
        if held.last_poll and now < held.last_poll + held.interval:
            interval = held.interval + SLOW_DOWN_SECONDS
            self._put(msgspec.structs.replace(held, interval=interval, last_poll=now))
            return PollSlowDown(interval)
        if held.status == "pending":
            self._put(msgspec.structs.replace(held, last_poll=now))
            return PollPending()
        self._remove(device_code_hash)
        if held.status == "denied":
            return PollDenied()
        return PollApproved(msgspec.structs.replace(held, last_poll=now))

    # DeviceTransfer

    async def export_device_authorizations(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[DeviceAuthorization]:
        """See :meth:`ports.store.DeviceTransfer.export_device_authorizations`."""
        start = 0 if cursor is None else bisect.bisect_right(self._hashes, cursor)
        records: list[DeviceAuthorization] = []
        last: str | None = None
        for device_code_hash in self._hashes[start:]:
            if len(records) == limit:
                return Batch(tuple(records), last)
            last = device_code_hash
            held = self._by_device[device_code_hash]
            if held.live(now):
                records.append(held)
        return Batch(tuple(records), None)

    async def import_device_authorizations(
        self, records: tuple[DeviceAuthorization, ...], now: int
    ) -> int:
        """See :meth:`ports.store.DeviceTransfer.import_device_authorizations`."""
        changed = 0
        for record in records:
            if not record.live(now):
                continue
            held = self._live(record.device_code_hash, now)
            if held is not None and (held == record or held.status != "pending"
                                     or record.status == "pending"):
                continue
            holder = self._by_user.get(record.user_code_hash)
            if holder is not None and holder != record.device_code_hash and \
                    self._live(holder, now) is not None:
                continue  # another live authorization holds this user code
            if held is not None and held.user_code_hash != record.user_code_hash:
                self._by_user.pop(held.user_code_hash, None)
            self._put(record)
            changed += 1
        return changed

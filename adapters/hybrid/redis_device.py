"""Device authorizations (RFC 8628) in Redis (one server or a cluster): one round trip and
one Lua script per port call (``scripts.py``, "Device authorizations").

Every key of the part carries the hash tag ``{dv}``, so on a Redis Cluster they all live in
one slot. That is what makes each call one atomic script: a device code and its user code
are drawn independently, a poll knows only the first and the verification page only the
second, so no tag derived from either code could put both of a record's keys in one slot;
with a per-code tag, a save could not check both codes and write both keys in one step,
and a poll could not remove the record and its user-code pointer together. One slot is
enough: authorizations live minutes, are created once per device sign-in and polled every
few seconds (thousands at a time, not millions; a single Redis serves a hundred thousand
such scripts a second).

Methods raise redis-py exceptions; :class:`~adapters.hybrid.device.HybridDevice` turns
them into ``StoreUnavailable``.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

import msgspec
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from adapters.hybrid import scripts
from adapters.hybrid.cluster_state import ClusterTokenState, _Script
from adapters.hybrid.redis_state import RedisTokenState, SharedTokenState, _ttl
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

#: The hash tag of every key of the part.
TAG: Final = "{dv}"


class _Run(Protocol):
    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any: ...


_encode = msgspec.json.Encoder(order="deterministic").encode
_decode_record = msgspec.json.Decoder(DeviceAuthorization).decode
_decode_decision = msgspec.json.Decoder(DeviceDecision).decode


def device_of(state: SharedTokenState) -> RedisDevice:
    """The device part on the Redis (or cluster) that ``state`` uses, under its prefix."""
    if isinstance(state, RedisTokenState | ClusterTokenState):
        return RedisDevice(state.client, state._prefix)
    raise TypeError(f"no device part for {type(state).__name__}")


def _fields(authorization: DeviceAuthorization, now: int) -> list[str | bytes | int]:
    """The nine script arguments of one record (``SAVE_DEVICE``)."""
    return [
        authorization.device_code_hash, authorization.user_code_hash, authorization.exp,
        _ttl(authorization.exp, now), authorization.interval, authorization.last_poll,
        authorization.status, _encode(authorization), b"",
    ]


def _record(reply: list[Any]) -> DeviceAuthorization:
    """The record from a script's ``{record, decision, interval, last poll, status}``: the
    record as saved, with what polls and the decision changed since."""
    data, decision, interval, last_poll, status = reply
    record = _decode_record(data)
    changes: dict[str, Any] = {
        "interval": int(interval), "last_poll": int(last_poll), "status": status.decode(),
    }
    if decision:
        decided = _decode_decision(decision)
        changes |= {"user_id": decided.user_id, "auth_time": decided.auth_time,
                    "amr": decided.amr, "acr": decided.acr, "sid": decided.sid}
    return msgspec.structs.replace(record, **changes)


class RedisDevice:
    """The device part of the port on ``client`` (a :class:`Redis` or a
    :class:`RedisCluster`), under the key prefix ``prefix``; see the module docstring."""

    __slots__ = (
        "_by_exp",
        "_decide",
        "_export",
        "_find",
        "_head",
        "_ids",
        "_import",
        "_pointer_head",
        "_poll",
        "_purge",
        "_save",
        "client",
    )

    def __init__(self, client: Redis | RedisCluster, prefix: str) -> None:
        self.client = client
        self._head = f"{prefix}dv:{TAG}"
        self._pointer_head = f"{prefix}dvu:{TAG}"
        self._ids = f"{prefix}dvs:{TAG}"
        self._by_exp = f"{prefix}dve:{TAG}"

        def script(source: str) -> _Run:
            if isinstance(client, RedisCluster):
                # Reloaded on the node that owns the slot after a failover (cluster_state).
                return _Script(client, source)
            run: _Run = client.register_script(source)
            return run

        self._save = script(scripts.SAVE_DEVICE)
        self._find = script(scripts.FIND_DEVICE)
        self._decide = script(scripts.DECIDE_DEVICE)
        self._poll = script(scripts.POLL_DEVICE)
        self._export = script(scripts.EXPORT_DEVICE)
        self._import = script(scripts.IMPORT_DEVICE)
        self._purge = script(scripts.PURGE_DEVICE)

    # DeviceStore

    async def save_device_authorization(
        self, authorization: DeviceAuthorization, now: int
    ) -> bool:
        reply = await self._save(
            keys=[self._head + authorization.device_code_hash,
                  self._pointer_head + authorization.user_code_hash, self._ids, self._by_exp],
            args=[now, self._head, self._pointer_head, *_fields(authorization, now)],
        )
        return bool(reply)

    async def find_device_authorization(
        self, user_code_hash: str, now: int
    ) -> DeviceAuthorization | None:
        reply: list[Any] = await self._find(
            keys=[self._pointer_head + user_code_hash], args=[now, self._head, user_code_hash]
        )
        return _record(reply) if reply else None

    async def decide_device_authorization(
        self, user_code_hash: str, decision: DeviceDecision, now: int
    ) -> DeviceAuthorization | None:
        reply: list[Any] = await self._decide(
            keys=[self._pointer_head + user_code_hash],
            args=[now, self._head, user_code_hash, decision.status, _encode(decision)],
        )
        return _record(reply) if reply else None

    async def poll_device_authorization(self, device_code_hash: str, now: int) -> DevicePoll:
        reply: list[Any] = await self._poll(
            keys=[self._head + device_code_hash, self._ids, self._by_exp],
            args=[now, self._pointer_head, device_code_hash, SLOW_DOWN_SECONDS],
        )
        outcome = int(reply[0])
        if outcome == 1:
            return PollSlowDown(int(reply[1]))
        if outcome == 2:
            return PollPending()
        if outcome == 3:
            return PollDenied()
        if outcome == 4:
            return PollApproved(msgspec.structs.replace(_record(reply[1]), last_poll=now))
        return PollExpired()

    # DeviceTransfer

    async def export_device_authorizations(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[DeviceAuthorization]:
        reply: list[Any] = await self._export(
            keys=[self._ids],
            args=[now, self._head, "-" if cursor is None else "(" + cursor, max(limit, 1)],
        )
        records = tuple(_record(fields) for fields in reply[1:])
        return Batch(records, reply[0].decode() or None)

    async def import_device_authorizations(
        self, records: tuple[DeviceAuthorization, ...], now: int
    ) -> int:
        live = [record for record in records if record.live(now)]
        if not live:
            return 0
        args: list[str | bytes | int] = [now, self._head, self._pointer_head]
        for record in live:
            args += _fields(record, now)
        # One script per call: the batch is written whole or not at all.
        return int(await self._import(keys=[self._ids, self._by_exp], args=args))

    # Administration

    async def count_live(self, now: int) -> int:
        """Live records: one ``ZCOUNT`` of the expiry index."""
        return int(await self.client.zcount(self._by_exp, f"({now}", "+inf"))

    async def purge(self, now: int, batch_size: int) -> int:
        """Remove the records expired by ``now``, a batch per script; how many records were
        deleted (index entries of keys Redis already expired are dropped but not counted:
        Redis removed those)."""
        size = max(batch_size, 1)
        deleted = 0
        while True:
            reply: list[Any] = await self._purge(
                keys=[self._ids, self._by_exp],
                args=[now, self._head, self._pointer_head, size],
            )
            deleted += int(reply[1])
            if int(reply[0]) < size:
                return deleted

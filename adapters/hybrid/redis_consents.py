"""Consents in Redis (one server or a cluster): the ``ConsentStore`` port and its transfer
pair, one Lua script per step that reads and writes (``session_scripts.py``).

Key layout (``P`` is the key prefix), every key of one user under the user's hash tag, so
on a Redis Cluster each script -- a grant of scopes merged into the consent, a grant
recorded only while the consent exists, a withdrawal that returns the consent once -- runs
in one slot, atomically, and a user's consents are listed with one ``HGETALL``:

* ``Pcn:{<user_id>}`` a hash of the user's consents: field the client id, value the msgpack
  row ``{scopes, created_at, updated_at}``. Consents have no TTL: they last until withdrawn.
* ``Pcg:{<user_id>}<client id in hex>`` the grants issued under one consent, a sorted set
  (member the grant id, score its ``exp``) that lives until its last grant's ``exp``;
  expired grants are pruned on every write to it and by ``purge``. The client id is
  hex-encoded so that no user id and client id can name another pair's key.

Methods raise redis-py exceptions; :class:`~adapters.hybrid.consents.HybridConsents` turns
them into ``StoreUnavailable``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final, cast

import msgspec
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from adapters.hybrid import session_scripts as scripts
from adapters.hybrid.cluster_state import ClusterTokenState
from adapters.hybrid.redis_sessions import by_slot, scan, script
from adapters.hybrid.redis_state import RedisTokenState, SharedTokenState
from adapters.hybrid.redis_transfer import KeySnapshots
from domain.consent import Consent, ConsentGrant, ConsentRecord, merged_scopes
from domain.records import Batch

_BATCH: Final = 1000


class ConsentWire(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A consent as stored (user and client are in the key and field). Lua reads and
    writes every field by position: change them only together with
    ``session_scripts.py``."""

    scopes: tuple[str, ...]
    created_at: int
    updated_at: int


_encode = msgspec.msgpack.Encoder().encode
_decode_row = msgspec.msgpack.Decoder(ConsentWire).decode


def consents_of(state: SharedTokenState) -> RedisConsents:
    """The consent part on the Redis (or cluster) that ``state`` uses, under its prefix."""
    if isinstance(state, RedisTokenState | ClusterTokenState):
        return RedisConsents(state.client, state._prefix)
    raise TypeError(f"no consent part for {type(state).__name__}")


def _consent(user_id: str, client_id: str, data: bytes) -> Consent:
    row = _decode_row(data)
    # Scopes are kept as a set in Redis (a script merges them): sorted here, once.
    return Consent(user_id=user_id, client_id=client_id, scopes=merged_scopes((), row.scopes),
                   created_at=row.created_at, updated_at=row.updated_at)


def _grants(reply: list[Any]) -> tuple[ConsentGrant, ...]:
    """``ZRANGE ... WITHSCORES`` pairs (raw or parsed by redis-py) as grants, by grant id."""
    if reply and not isinstance(reply[0], tuple | list):
        reply = list(zip(reply[::2], reply[1::2], strict=True))
    grants = (ConsentGrant(grant_id.decode(), int(float(exp))) for grant_id, exp in reply)
    return tuple(sorted(grants, key=lambda g: g.grant_id))


class RedisConsents:
    """The consent part of the port on ``client`` (a :class:`Redis` or a
    :class:`RedisCluster`), under the key prefix ``prefix``; see the module docstring."""

    __slots__ = (
        "_grant",
        "_grants",
        "_import",
        "_record",
        "_rows",
        "_snapshots",
        "_withdraw",
        "client",
    )

    def __init__(self, client: Redis | RedisCluster, prefix: str) -> None:
        self.client = client
        self._rows = f"{prefix}cn:"
        self._grants = f"{prefix}cg:"
        self._snapshots = KeySnapshots()
        self._grant = script(client, scripts.GRANT_CONSENT)
        self._record = script(client, scripts.RECORD_CONSENT_GRANT)
        self._withdraw = script(client, scripts.WITHDRAW_CONSENT)
        self._import = script(client, scripts.IMPORT_CONSENTS)

    def _row_key(self, user_id: str) -> str:
        return self._rows + "{" + user_id + "}"

    def _keys(self, user_id: str, client_id: str) -> list[str]:
        """The user's consents and this consent's grants, under the user's hash tag."""
        tag = "{" + user_id + "}"
        return [self._rows + tag, self._grants + tag + client_id.encode().hex()]

    # ConsentStore

    async def get_consent(self, user_id: str, client_id: str) -> Consent | None:
        data = cast(bytes | None, await self.client.hget(self._row_key(user_id), client_id))
        return None if data is None else _consent(user_id, client_id, data)

    async def grant_consent(
        self, user_id: str, client_id: str, scopes: tuple[str, ...], now: int
    ) -> Consent:
        data = await self._grant(
            keys=self._keys(user_id, client_id), args=[now, client_id, *dict.fromkeys(scopes)]
        )
        return _consent(user_id, client_id, data)

    async def list_consents(self, user_id: str) -> tuple[Consent, ...]:
        held = cast(dict[bytes, bytes], await self.client.hgetall(self._row_key(user_id)))
        consents = (_consent(user_id, client.decode(), data) for client, data in held.items())
        return tuple(sorted(consents, key=lambda c: c.client_id))

    async def record_consent_grant(
        self, user_id: str, client_id: str, grant_id: str, exp: int, now: int
    ) -> bool:
        reply = await self._record(
            keys=self._keys(user_id, client_id), args=[now, client_id, grant_id, exp]
        )
        return bool(reply)

    async def withdraw_consent(
        self, user_id: str, client_id: str, now: int
    ) -> ConsentRecord | None:
        reply = await self._withdraw(keys=self._keys(user_id, client_id), args=[now, client_id])
        if reply is None:
            return None
        data, grants = reply
        return ConsentRecord(_consent(user_id, client_id, data), _grants(grants))

    # Admin

    async def count(self) -> int:
        """Every consent. A full SCAN: for metrics, not for requests."""
        count = 0
        async for keys in self._keys_in_batches(self._rows, _BATCH):
            pipe = self.client.pipeline()
            for key in keys:
                pipe.hlen(key)
            count += sum(int(n) for n in await pipe.execute())
        return count

    async def purge(self, now: int, batch_size: int) -> int:
        """Remove the grants whose ``exp`` has passed at ``now`` (Redis expires a set only
        after its last grant); how many were removed."""
        purged = 0
        async for keys in self._keys_in_batches(self._grants, max(batch_size, 1)):
            pipe = self.client.pipeline()
            for key in keys:
                pipe.zremrangebyscore(key, "-inf", now)
            purged += sum(int(n) for n in await pipe.execute())
        return purged

    async def _keys_in_batches(self, head: str, size: int) -> AsyncIterator[list[bytes]]:
        keys: list[bytes] = []
        async for key in scan(self.client, head):
            keys.append(key)
            if len(keys) >= size:
                yield keys
                keys = []
        if keys:
            yield keys

    # ConsentTransfer

    async def _pairs(self) -> AsyncIterator[bytes]:
        """Every consent as ``Pcn:`` user NUL client: the names an export pages through
        (ordered as memory and sql order consents: by user, then client)."""
        head = self._rows
        async for keys in self._keys_in_batches(head, _BATCH):
            pipe = self.client.pipeline()
            for key in keys:
                pipe.hkeys(key)
            for key, clients in zip(keys, await pipe.execute(), strict=True):
                user_id = key.decode()[len(head) + 1:-1]  # {<user_id>}
                for client in clients:
                    yield (head + user_id + "\x00" + client.decode()).encode()

    async def export_consents(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ConsentRecord]:
        async def read(names: list[str]) -> list[ConsentRecord | None]:
            pairs = [name.split("\x00", 1) for name in names]
            pipe = self.client.pipeline()
            for user_id, client_id in pairs:
                rows, grants = self._keys(user_id, client_id)
                pipe.hget(rows, client_id)
                pipe.zrangebyscore(grants, f"({now}", "+inf", withscores=True)
            replies = await pipe.execute()
            records: list[ConsentRecord | None] = []
            for n, (user_id, client_id) in enumerate(pairs):
                data, grants = replies[2 * n], replies[2 * n + 1]
                records.append(None if data is None else ConsentRecord(
                    _consent(user_id, client_id, data), _grants(grants)))
            return records

        return await self._snapshots.page(self._rows, self._pairs, str, cursor, limit, read)

    async def import_consents(self, records: tuple[ConsentRecord, ...], now: int) -> int:
        if not records:
            return 0
        return await by_slot(self.client, self._import, [now], [
            (self._keys(record.consent.user_id, record.consent.client_id),
             [record.consent.client_id,
              _encode(ConsentWire(record.consent.scopes, record.consent.created_at,
                                  record.consent.updated_at)),
              len(record.grants),
              *(value for grant in record.grants for value in (grant.grant_id, grant.exp))])
            for record in records
        ])

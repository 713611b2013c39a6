"""Browser sessions in Redis (one server or a cluster): the ``SessionStore`` port and its
transfer pair, one Lua script per step that reads and writes (``session_scripts.py``).

Key layout (``P`` is the key prefix):

* ``Pse:{<id_hash>}`` the session (a msgpack row, :class:`SessionWire`) and
  ``Psg:{<id_hash>}`` its grants share the session's hash tag, so on a Redis Cluster
  every script of one session -- recording a grant, ending it -- runs in one slot,
  atomically. Re-authenticating re-keys the session to a new hash, often in another slot:
  the old keys are claimed (deleted) first, then the new ones written
  (:meth:`RedisSessions.reauthenticate_session`). Sessions spread over the whole
  cluster, one slot each.
* ``Psid:<sid>`` holds the ``id_hash`` of the session with that public ``sid``, and
  ``Psu:<user_id>`` is the user's index (a sorted set: ``id_hash`` scored by the session's
  absolute ``exp``). Each is a single key in its own slot.

Both session keys expire when the session does, at ``min(idle_exp, exp)``, and move with
every push of ``idle_exp``; the pointer and the index live until the (never extended)
``exp``. Liveness is still decided by the caller's ``now``: a row past its expiry reads as
absent while its key remains.

The pointer and the index are written before the session (a session never exists that
its user's index does not list, so ending a user's sessions cannot miss one) and are
cleaned up, best effort, after an end: a stale index entry or pointer names no live
session, is skipped by every reader, and goes at its score (the index is pruned of entries
whose ``exp`` has passed on every write to it) or its TTL.

Methods raise redis-py exceptions; :class:`~adapters.hybrid.sessions.HybridSessions` turns
them into ``StoreUnavailable``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final, Protocol, cast

import msgspec
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from adapters.hybrid import session_scripts as scripts
from adapters.hybrid.cluster_state import ClusterTokenState, _Script
from adapters.hybrid.redis_errors import redis_failures_suppressed
from adapters.hybrid.redis_state import RedisTokenState, SharedTokenState, _glob_escape, _ttl
from adapters.hybrid.redis_transfer import KeySnapshots
from domain.records import Batch
from domain.sessions import Session, SessionGrant, SessionRecord

_SCAN_BATCH: Final = 1000
# Scripts in flight at once when one call ends or imports many sessions (one slot each).
IN_FLIGHT: Final = 32


class Run(Protocol):
    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any: ...


def script(client: Redis | RedisCluster, source: str) -> Run:
    """``source`` as an ``EVALSHA`` callable on ``client``."""
    if isinstance(client, RedisCluster):
        # Reloaded on the node that owns the slot after a failover (cluster_state).
        return _Script(client, source)
    run: Run = client.register_script(source)
    return run


def client_of(state: SharedTokenState) -> Redis | RedisCluster:
    """The Redis (or cluster) client ``state`` uses."""
    if isinstance(state, RedisTokenState | ClusterTokenState):
        return state.client
    raise TypeError(f"no Redis client in {type(state).__name__}")


def sessions_of(state: SharedTokenState) -> RedisSessions:
    """The session part on the Redis (or cluster) that ``state`` uses, under its prefix."""
    if isinstance(state, RedisTokenState | ClusterTokenState):
        return RedisSessions(state.client, state._prefix)
    raise TypeError(f"no session part for {type(state).__name__}")


async def scan(client: Redis | RedisCluster, head: str) -> AsyncIterator[bytes]:
    """Every key whose name starts with ``head`` (every master of a cluster)."""
    async for key in client.scan_iter(match=_glob_escape(head) + "*", count=_SCAN_BATCH):
        yield key


async def mget(client: Redis | RedisCluster, keys: list[str]) -> list[bytes | None]:
    if not keys:
        return []
    if isinstance(client, RedisCluster):
        return cast(list[bytes | None], await client.mget_nonatomic(keys))
    return cast(list[bytes | None], await client.mget(keys))


def slot_groups(
    client: Redis | RedisCluster, keys: Sequence[list[str]]
) -> list[list[int]]:
    """The places in ``keys`` (each a record's keys, which share a slot) grouped for one
    script call each: all of them on one Redis, one group per slot on a cluster."""
    if not isinstance(client, RedisCluster):
        return [list(range(len(keys)))] if keys else []
    groups: dict[int, list[int]] = {}
    for n, record_keys in enumerate(keys):
        groups.setdefault(client.keyslot(record_keys[0]), []).append(n)
    return list(groups.values())


async def by_slot(
    client: Redis | RedisCluster, run: Run, head: list[Any],
    records: Sequence[tuple[list[str], list[Any]]],
) -> int:
    """Run ``run`` over ``records`` (each its keys and arguments): on one Redis in one call,
    so the batch is written whole; on a cluster once per slot, a few slots at a time.
    Returns the sum of the replies."""
    calls = []
    for group in slot_groups(client, [keys for keys, _ in records]):
        calls.append((
            [key for n in group for key in records[n][0]],
            [*head, *(arg for n in group for arg in records[n][1])],
        ))
    total = 0
    for start in range(0, len(calls), IN_FLIGHT):
        replies = await asyncio.gather(*(
            run(keys=keys, args=args) for keys, args in calls[start:start + IN_FLIGHT]
        ))
        total += sum(int(reply) for reply in replies)
    return total


class SessionWire(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A session as stored (its ``id_hash`` is in the key). Lua reads and writes every
    field by position: change them only together with ``session_scripts.py``."""

    idle_exp: int
    exp: int
    sid: str
    user_id: str
    auth_time: int
    amr: tuple[str, ...]
    acr: str
    created_at: int
    clients: tuple[str, ...]


_encode = msgspec.msgpack.Encoder().encode
_decode_row = msgspec.msgpack.Decoder(SessionWire).decode
_decode_grant = msgspec.msgpack.Decoder(tuple[str, str]).decode


def _row(session: Session) -> bytes:
    return _encode(SessionWire(
        idle_exp=session.idle_exp, exp=session.exp, sid=session.sid, user_id=session.user_id,
        auth_time=session.auth_time, amr=session.amr, acr=session.acr,
        created_at=session.created_at, clients=session.clients,
    ))


def _session(id_hash: str, row: SessionWire) -> Session:
    return Session(
        id_hash=id_hash, sid=row.sid, user_id=row.user_id, auth_time=row.auth_time,
        amr=row.amr, acr=row.acr, created_at=row.created_at, idle_exp=row.idle_exp,
        exp=row.exp, clients=row.clients,
    )


def _grant_member(grant: SessionGrant) -> bytes:
    """A grant as a member of the grants set: one encoding, so a grant is recorded once."""
    return _encode((grant.client_id, grant.grant_id))


def _grant(member: bytes) -> SessionGrant:
    return SessionGrant(*_decode_grant(member))


def _live(row: SessionWire, now: int) -> bool:
    return row.idle_exp > now and row.exp > now


class RedisSessions:
    """The session part of the port on ``client`` (a :class:`Redis` or a
    :class:`RedisCluster`), under the key prefix ``prefix``; see the module docstring."""

    __slots__ = (
        "_add_grant",
        "_create",
        "_end",
        "_grants",
        "_import",
        "_purge",
        "_put_rekeyed",
        "_rows",
        "_sids",
        "_snapshots",
        "_users",
        "client",
    )

    def __init__(self, client: Redis | RedisCluster, prefix: str) -> None:
        self.client = client
        self._rows = f"{prefix}se:"
        self._grants = f"{prefix}sg:"
        self._sids = f"{prefix}sid:"
        self._users = f"{prefix}su:"
        self._snapshots = KeySnapshots()
        self._create = script(client, scripts.CREATE_SESSION)
        self._add_grant = script(client, scripts.ADD_SESSION_GRANT)
        self._put_rekeyed = script(client, scripts.PUT_REKEYED_SESSION)
        self._end = script(client, scripts.END_SESSIONS)
        self._purge = script(client, scripts.PURGE_SESSION)
        self._import = script(client, scripts.IMPORT_SESSIONS)

    def _keys(self, id_hash: str) -> list[str]:
        """The session's row and grants, under its hash tag."""
        tag = "{" + id_hash + "}"
        return [self._rows + tag, self._grants + tag]

    async def _index(self, sessions: Sequence[Session], now: int) -> None:
        """Write the sid pointers and user index entries of ``sessions`` (before their
        rows). An index lives as long as the longest-lived session it lists."""
        if not sessions:
            return
        pipe = self.client.pipeline()
        for session in sessions:
            ttl_ms = _ttl(session.exp, now) * 1000
            users = self._users + session.user_id
            pipe.zremrangebyscore(users, "-inf", now)
            pipe.zadd(users, {session.id_hash: session.exp}, gt=True)
            pipe.pexpire(users, ttl_ms, nx=True)
            pipe.pexpire(users, ttl_ms, gt=True)
            pipe.set(self._sids + session.sid, session.id_hash, px=ttl_ms)
        await pipe.execute()

    async def _user_hashes(self, user_id: str, now: int) -> list[str]:
        """The ``id_hash`` of every session of the user whose ``exp`` is after ``now``."""
        members = cast(list[bytes], await self.client.zrangebyscore(
            self._users + user_id, f"({now}", "+inf"))
        return [member.decode() for member in members]

    # SessionStore

    async def create_session(self, session: Session, now: int) -> None:
        await self._index((session,), now)
        await self._create(keys=self._keys(session.id_hash), args=[now, _row(session)])

    async def get_session(self, id_hash: str, now: int) -> Session | None:
        data = cast(bytes | None, await self.client.get(self._keys(id_hash)[0]))
        if data is None:
            return None
        row = _decode_row(data)
        return _session(id_hash, row) if _live(row, now) else None

    async def add_session_grant(
        self, id_hash: str, grant: SessionGrant, idle_exp: int, now: int
    ) -> Session | None:
        data = await self._add_grant(
            keys=self._keys(id_hash),
            args=[now, idle_exp, grant.client_id, _grant_member(grant)],
        )
        return None if data is None else _session(id_hash, _decode_row(data))

    async def reauthenticate_session(
        self, id_hash: str, new_id_hash: str, *, auth_time: int, amr: tuple[str, ...],
        acr: str, idle_exp: int, now: int,
    ) -> Session | None:
        """Re-key the session: its two keys carry the hash tag of its ``id_hash``, so on a
        cluster the new ones are in another slot, and no one script can move them. So:

        1. claim the old row and grants (``END_SESSIONS``: read and delete in its slot).
           From here the old cookie names nothing, and of concurrent callers only this
           one holds the session;
        2. point the sid and the user's index at the new hash (before the row, as
           ``create_session`` does);
        3. write the row and grants under the new hash (``PUT_REKEYED_SESSION``, which
           refuses a key that is taken); no one else knows that hash yet;
        4. drop the old hash from the user's index (best effort, as after an end).

        A failure after 1 loses the session: the user signs in again (fail closed), its
        grants are no longer listed with a session (their tokens live on until revoked or
        expired), and the stale pointer and index entries name no live session. Between 1
        and 3 the session is absent to every reader: an authorization with the old cookie
        meanwhile asks for a sign-in, and an end of the user's sessions that runs entirely
        inside that window (one or two round trips) does not see it.
        """
        ended = await self._end_sessions_raw([id_hash], now)
        if not ended:
            return None
        _, data, members = ended[0]
        row = _decode_row(data)
        session = msgspec.structs.replace(
            _session(new_id_hash, row), auth_time=auth_time, amr=amr, acr=acr,
            idle_exp=min(max(row.idle_exp, idle_exp), row.exp))
        await self._index((session,), now)
        written = await self._put_rekeyed(
            keys=self._keys(new_id_hash), args=[now, _row(session), *members])
        pipe = self.client.pipeline()
        pipe.zrem(self._users + session.user_id, id_hash)
        with redis_failures_suppressed():
            await pipe.execute()
        return session if written else None

    async def list_sessions(self, user_id: str, now: int) -> tuple[Session, ...]:
        hashes = await self._user_hashes(user_id, now)
        rows = await mget(self.client, [self._keys(h)[0] for h in hashes])
        found = []
        for id_hash, data in zip(hashes, rows, strict=True):
            if data is None:
                continue
            row = _decode_row(data)
            # An index entry written for another user's session (a foreign import) is
            # not this user's.
            if _live(row, now) and row.user_id == user_id:
                found.append(_session(id_hash, row))
        return tuple(sorted(found, key=lambda s: (s.created_at, s.sid)))

    async def end_session(self, id_hash: str, now: int) -> SessionRecord | None:
        ended = await self._end_sessions([id_hash], now)
        return ended[0] if ended else None

    async def _end_sessions(
        self, hashes: list[str], now: int, *, sid: str = "", user_id: str = ""
    ) -> list[SessionRecord]:
        """End the live sessions among ``hashes`` (only those with this sid / of this user,
        when given): one script per slot (on one Redis, one for all), so of concurrent
        callers exactly one gets each record."""
        ended = [
            SessionRecord(_session(id_hash, _decode_row(data)), tuple(_grant(m) for m in members))
            for id_hash, data, members in await self._end_sessions_raw(
                hashes, now, sid=sid, user_id=user_id)
        ]
        await self._unindex(ended)
        return ended

    async def _end_sessions_raw(
        self, hashes: list[str], now: int, *, sid: str = "", user_id: str = ""
    ) -> list[tuple[str, bytes, list[bytes]]]:
        """:meth:`_end_sessions` without the clean-up: each removed session's hash, row
        and grant members, as stored."""
        ended: list[tuple[str, bytes, list[bytes]]] = []
        groups = slot_groups(self.client, [self._keys(h) for h in hashes])
        for start in range(0, len(groups), IN_FLIGHT):
            chunk = groups[start:start + IN_FLIGHT]
            replies = await asyncio.gather(*(
                self._end(keys=[key for n in group for key in self._keys(hashes[n])],
                          args=[now, sid, user_id])
                for group in chunk
            ))
            for group, reply in zip(chunk, replies, strict=True):
                for at in range(0, len(reply), 3):
                    ended.append((hashes[group[int(reply[at]) - 1]], reply[at + 1],
                                  list(reply[at + 2])))
        return ended

    async def _unindex(self, ended: Sequence[SessionRecord]) -> None:
        """Drop ended sessions' pointers and index entries. Best effort: the sessions are
        gone already and their records must reach the caller that ended them, and an entry
        left behind names no live session (skipped, then pruned or expired)."""
        if not ended:
            return
        pipe = self.client.pipeline()
        for record in ended:
            pipe.zrem(self._users + record.session.user_id, record.session.id_hash)
            pipe.delete(self._sids + record.session.sid)
        with redis_failures_suppressed():
            await pipe.execute()

    async def end_session_by_sid(self, sid: str, now: int) -> SessionRecord | None:
        id_hash = cast(bytes | None, await self.client.get(self._sids + sid))
        if id_hash is None:
            return None
        ended = await self._end_sessions([id_hash.decode()], now, sid=sid)
        return ended[0] if ended else None

    async def end_user_sessions(self, user_id: str, now: int) -> tuple[SessionRecord, ...]:
        ended = await self._end_sessions(
            await self._user_hashes(user_id, now), now, user_id=user_id)
        return tuple(sorted(ended, key=lambda r: (r.session.created_at, r.session.sid)))

    # Admin

    async def count(self, now: int) -> int:
        """Live sessions. A full SCAN: for metrics, not for requests."""
        count = 0
        async for rows in self._rows_in_batches(_SCAN_BATCH):
            count += sum(1 for _, row in rows if _live(row, now))
        return count

    async def purge(self, now: int, batch_size: int) -> int:
        """Remove the sessions that are no longer live at ``now`` but whose keys Redis has
        not expired yet (a script each, which checks again); how many were removed."""
        purged = 0
        async for rows in self._rows_in_batches(max(batch_size, 1)):
            dead = [(id_hash, row) for id_hash, row in rows if not _live(row, now)]
            for start in range(0, len(dead), IN_FLIGHT):
                chunk = dead[start:start + IN_FLIGHT]
                replies = await asyncio.gather(*(
                    self._purge(keys=self._keys(id_hash), args=[now]) for id_hash, _ in chunk
                ))
                gone = [SessionRecord(_session(id_hash, row))
                        for (id_hash, row), reply in zip(chunk, replies, strict=True) if reply]
                purged += len(gone)
                await self._unindex(gone)
        return purged

    async def _rows_in_batches(
        self, size: int
    ) -> AsyncIterator[list[tuple[str, SessionWire]]]:
        """Every stored row (live or not), ``size`` keys per read."""
        names: list[str] = []
        async for key in scan(self.client, self._rows):
            names.append(key.decode()[len(self._rows):])
            if len(names) >= size:
                yield await self._read_rows(names)
                names = []
        if names:
            yield await self._read_rows(names)

    async def _read_rows(self, names: list[str]) -> list[tuple[str, SessionWire]]:
        values = await mget(self.client, [self._rows + name for name in names])
        return [(name[1:-1], _decode_row(value))
                for name, value in zip(names, values, strict=True) if value is not None]

    # SessionTransfer

    async def export_sessions(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[SessionRecord]:
        async def read(names: list[str]) -> list[SessionRecord | None]:
            pipe = self.client.pipeline()
            for name in names:
                pipe.get(self._rows + name)
                pipe.zrange(self._grants + name, 0, -1)
            replies = await pipe.execute()
            records: list[SessionRecord | None] = []
            for n, name in enumerate(names):
                data, members = replies[2 * n], replies[2 * n + 1]
                row = None if data is None else _decode_row(data)
                if row is None or not _live(row, now):
                    records.append(None)
                    continue
                records.append(SessionRecord(
                    _session(name[1:-1], row), tuple(_grant(m) for m in members)))
            return records

        # Names are "{<id_hash>}": ordered by the hash, as memory and sql page them.
        return await self._snapshots.page(
            self._rows, lambda: scan(self.client, self._rows), lambda name: name[1:-1],
            cursor, limit, read,
        )

    async def import_sessions(self, records: tuple[SessionRecord, ...], now: int) -> int:
        live = [record for record in records if record.session.live(now)]
        if not live:
            return 0
        await self._index([record.session for record in live], now)
        return await by_slot(self.client, self._import, [now], [
            (self._keys(record.session.id_hash),
             [_row(record.session), len(record.grants),
              *(_grant_member(grant) for grant in record.grants)])
            for record in live
        ])

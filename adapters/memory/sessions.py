"""``MemorySessions``: the ``SessionStore`` port (and its transfer pair) in process memory.

No method awaits between reading and writing, so on one event loop each is atomic: a
session is ended for one caller only, and concurrent grants all land.
"""

from __future__ import annotations

import bisect

import msgspec

from domain.records import Batch
from domain.sessions import Session, SessionGrant, SessionRecord, merge_sessions


class MemorySessions:
    """:class:`ports.store.SessionStore` and ``SessionTransfer`` over dicts."""

    __slots__ = ("_by_sid", "_by_user", "_grants", "_hashes", "_sessions")

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        #: Each session's grants, in the order recorded (a dict as an ordered set: a grant
        #: is checked for in constant time on every authorization).
        self._grants: dict[str, dict[SessionGrant, None]] = {}
        self._by_sid: dict[str, str] = {}
        self._by_user: dict[str, set[str]] = {}
        #: The id hashes in ascending order, for keyset paging.
        self._hashes: list[str] = []

    def count(self, now: int) -> int:
        return sum(1 for s in self._sessions.values() if s.live(now))

    def purge(self, now: int) -> int:
        dead = [h for h, s in self._sessions.items() if not s.live(now)]
        for id_hash in dead:
            self._remove(id_hash)
        return len(dead)

    def _live(self, id_hash: str, now: int) -> Session | None:
        session = self._sessions.get(id_hash)
        return session if session is not None and session.live(now) else None

    def _put(self, session: Session) -> None:
        if session.id_hash not in self._sessions:
            bisect.insort(self._hashes, session.id_hash)
        self._sessions[session.id_hash] = session
        self._by_sid[session.sid] = session.id_hash
        self._by_user.setdefault(session.user_id, set()).add(session.id_hash)

    def _remove(self, id_hash: str) -> SessionRecord:
        session = self._sessions.pop(id_hash)
        del self._hashes[bisect.bisect_left(self._hashes, id_hash)]
        if self._by_sid.get(session.sid) == id_hash:
            del self._by_sid[session.sid]
        hashes = self._by_user.get(session.user_id)
        if hashes is not None:
            hashes.discard(id_hash)
            if not hashes:
                del self._by_user[session.user_id]
        return SessionRecord(session, tuple(self._grants.pop(id_hash, ())))

    # SessionStore

    async def create_session(self, session: Session, now: int) -> None:
        """See :meth:`ports.store.SessionStore.create_session`."""
        self._grants.pop(session.id_hash, None)
        self._put(session)

    async def get_session(self, id_hash: str, now: int) -> Session | None:
        """See :meth:`ports.store.SessionStore.get_session`."""
        return self._live(id_hash, now)

    async def add_session_grant(
        self, id_hash: str, grant: SessionGrant, idle_exp: int, now: int
    ) -> Session | None:
        """See :meth:`ports.store.SessionStore.add_session_grant`."""
        session = self._live(id_hash, now)
        if session is None:
            return None
        self._grants.setdefault(id_hash, {})[grant] = None
        clients = session.clients
        if grant.client_id not in clients:
            clients = (*clients, grant.client_id)
        session = msgspec.structs.replace(
            session, clients=clients,
            idle_exp=min(max(session.idle_exp, idle_exp), session.exp))
        self._sessions[id_hash] = session
        return session

    async def reauthenticate_session(
        self, id_hash: str, new_id_hash: str, *, auth_time: int, amr: tuple[str, ...],
        acr: str, idle_exp: int, now: int,
    ) -> Session | None:
        """See :meth:`ports.store.SessionStore.reauthenticate_session`."""
        session = self._live(id_hash, now)
        if session is None:
            return None
        grants = self._remove(id_hash).grants
        session = msgspec.structs.replace(
            session, id_hash=new_id_hash, auth_time=auth_time, amr=amr, acr=acr,
            idle_exp=min(max(session.idle_exp, idle_exp), session.exp))
        self._put(session)
        self._grants[new_id_hash] = dict.fromkeys(grants)
        return session

    async def list_sessions(self, user_id: str, now: int) -> tuple[Session, ...]:
        """See :meth:`ports.store.SessionStore.list_sessions`."""
        live = [s for h in self._by_user.get(user_id, ()) if (s := self._live(h, now))]
        return tuple(sorted(live, key=lambda s: (s.created_at, s.sid)))

    async def end_session(self, id_hash: str, now: int) -> SessionRecord | None:
        """See :meth:`ports.store.SessionStore.end_session`."""
        if self._live(id_hash, now) is None:
            return None
        return self._remove(id_hash)

    async def end_session_by_sid(self, sid: str, now: int) -> SessionRecord | None:
        """See :meth:`ports.store.SessionStore.end_session_by_sid`."""
        id_hash = self._by_sid.get(sid)
        return await self.end_session(id_hash, now) if id_hash is not None else None

    async def end_user_sessions(self, user_id: str, now: int) -> tuple[SessionRecord, ...]:
        """See :meth:`ports.store.SessionStore.end_user_sessions`."""
        ended = []
        for session in await self.list_sessions(user_id, now):
            record = await self.end_session(session.id_hash, now)
            if record is not None:
                ended.append(record)
        return tuple(ended)

    # SessionTransfer

    async def export_sessions(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[SessionRecord]:
        """See :meth:`ports.store.SessionTransfer.export_sessions`."""
        start = 0 if cursor is None else bisect.bisect_right(self._hashes, cursor)
        records: list[SessionRecord] = []
        last: str | None = None
        for id_hash in self._hashes[start:]:
            if len(records) == limit:
                return Batch(tuple(records), last)
            last = id_hash
            session = self._sessions[id_hash]
            if session.live(now):
                records.append(SessionRecord(session, tuple(self._grants.get(id_hash, ()))))
        return Batch(tuple(records), None)

    async def import_sessions(self, records: tuple[SessionRecord, ...], now: int) -> int:
        """See :meth:`ports.store.SessionTransfer.import_sessions`."""
        changed = 0
        for record in records:
            incoming = record.session
            if not incoming.live(now):
                continue
            held = self._live(incoming.id_hash, now)
            before = self._grants.get(incoming.id_hash, {}) if held is not None else {}
            merged = incoming if held is None else merge_sessions(held, incoming)
            grants = before | dict.fromkeys(record.grants)
            if held == merged and len(grants) == len(before):
                continue
            if held is not None and held.sid != merged.sid:
                self._by_sid.pop(held.sid, None)
            self._put(merged)
            self._grants[incoming.id_hash] = grants
            changed += 1
        return changed


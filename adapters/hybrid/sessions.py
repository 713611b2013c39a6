"""``HybridSessions``: the ``SessionStore`` port (and ``SessionTransfer``) for ``hybrid``.

Without Redis, sessions live in this process's memory (the memory adapter's
:class:`~adapters.memory.sessions.MemorySessions`): one instance, which decides everything
itself.

With Redis (one server or a cluster), Redis alone holds them (``redis_sessions.py``) and
every call goes to it, so a session made on one instance is used on every other, and one
ended on one is ended on all at once; recording a grant and ending a session are each one
Lua script; re-authenticating (which re-keys the session) is two, the old key claimed
first. Nothing of the part is kept in this process's memory, not even as a fallback:
during an outage every call, reads included, raises ``StoreUnavailable`` (fail closed).
A session served from a stale copy could outlive a logout or a deactivation made on
another instance, and one opened on one instance alone would be unknown to the others
and escape a later "end every session of this user".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from adapters.hybrid.connection import _SKIP, HybridConnection
from adapters.hybrid.redis_sessions import RedisSessions
from domain.errors import StoreUnavailable
from domain.records import Batch
from domain.sessions import Session, SessionGrant, SessionRecord

_T = TypeVar("_T")


class HybridSessions(HybridConnection):
    """:class:`ports.store.SessionStore` and ``SessionTransfer`` for
    :class:`~adapters.hybrid.HybridStore`; see the module docstring."""

    __slots__ = ()

    async def _sessions_on_redis(
        self, now: int, op: Callable[[RedisSessions], Awaitable[_T]]
    ) -> _T:
        """``op``'s result on the configured Redis (callers check ``_shares`` first).
        Raises ``StoreUnavailable`` while it cannot be used: the part never falls back to
        this process's memory."""
        result = await self._ask(now, lambda redis: op(self._session_part(redis)))
        if result is _SKIP:
            raise StoreUnavailable("the shared session store is unreachable")
        return result

    # SessionStore

    async def create_session(self, session: Session, now: int) -> None:
        """See :meth:`ports.store.SessionStore.create_session`."""
        if not self._shares:
            await self.sessions.create_session(session, now)
            return
        await self._sessions_on_redis(now, lambda r: r.create_session(session, now))

    async def get_session(self, id_hash: str, now: int) -> Session | None:
        """See :meth:`ports.store.SessionStore.get_session`. One Redis command."""
        if not self._shares:
            return await self.sessions.get_session(id_hash, now)
        return await self._sessions_on_redis(now, lambda r: r.get_session(id_hash, now))

    async def add_session_grant(
        self, id_hash: str, grant: SessionGrant, idle_exp: int, now: int
    ) -> Session | None:
        """See :meth:`ports.store.SessionStore.add_session_grant`. With Redis, one script."""
        if not self._shares:
            return await self.sessions.add_session_grant(id_hash, grant, idle_exp, now)
        return await self._sessions_on_redis(
            now, lambda r: r.add_session_grant(id_hash, grant, idle_exp, now))

    async def reauthenticate_session(
        self, id_hash: str, new_id_hash: str, *, auth_time: int, amr: tuple[str, ...],
        acr: str, idle_exp: int, now: int,
    ) -> Session | None:
        """See :meth:`ports.store.SessionStore.reauthenticate_session`. With Redis, one
        script claims the old session and another writes it under the new key (on a
        cluster they are in different slots); see ``RedisSessions.reauthenticate_session``."""
        if not self._shares:
            return await self.sessions.reauthenticate_session(
                id_hash, new_id_hash, auth_time=auth_time, amr=amr, acr=acr,
                idle_exp=idle_exp, now=now)
        return await self._sessions_on_redis(now, lambda r: r.reauthenticate_session(
            id_hash, new_id_hash, auth_time=auth_time, amr=amr, acr=acr, idle_exp=idle_exp,
            now=now))

    async def list_sessions(self, user_id: str, now: int) -> tuple[Session, ...]:
        """See :meth:`ports.store.SessionStore.list_sessions`."""
        if not self._shares:
            return await self.sessions.list_sessions(user_id, now)
        return await self._sessions_on_redis(now, lambda r: r.list_sessions(user_id, now))

    async def end_session(self, id_hash: str, now: int) -> SessionRecord | None:
        """See :meth:`ports.store.SessionStore.end_session`. With Redis, one script decides."""
        if not self._shares:
            return await self.sessions.end_session(id_hash, now)
        return await self._sessions_on_redis(now, lambda r: r.end_session(id_hash, now))

    async def end_session_by_sid(self, sid: str, now: int) -> SessionRecord | None:
        """See :meth:`ports.store.SessionStore.end_session_by_sid`. With Redis, the sid's
        pointer is read, then one script ends the session if it still has that sid."""
        if not self._shares:
            return await self.sessions.end_session_by_sid(sid, now)
        return await self._sessions_on_redis(now, lambda r: r.end_session_by_sid(sid, now))

    async def end_user_sessions(self, user_id: str, now: int) -> tuple[SessionRecord, ...]:
        """See :meth:`ports.store.SessionStore.end_user_sessions`. With Redis, one script
        per session (each in its own slot)."""
        if not self._shares:
            return await self.sessions.end_user_sessions(user_id, now)
        return await self._sessions_on_redis(now, lambda r: r.end_user_sessions(user_id, now))

    # SessionTransfer

    async def export_sessions(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[SessionRecord]:
        """See :meth:`ports.store.SessionTransfer.export_sessions`."""
        if not self._shares:
            return await self.sessions.export_sessions(cursor, limit, now)
        return await self._sessions_on_redis(
            now, lambda r: r.export_sessions(cursor, limit, now))

    async def import_sessions(self, records: tuple[SessionRecord, ...], now: int) -> int:
        """See :meth:`ports.store.SessionTransfer.import_sessions`. With Redis, one script
        (on a cluster, one per slot)."""
        if not self._shares:
            return await self.sessions.import_sessions(records, now)
        return await self._sessions_on_redis(now, lambda r: r.import_sessions(records, now))

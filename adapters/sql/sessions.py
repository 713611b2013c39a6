"""``SqlSessions``: the ``SessionStore`` port over PostgreSQL (``sessions`` and the grants
issued in each, ``session_grants``).

A session is live while its ``live_until`` (``LEAST(idle_exp, exp)``, a generated column)
is after ``now``. Recording a grant and signing in again (which re-keys the row) are
each one statement (an
``UPDATE ... RETURNING`` of the live row, the grant inserted in the same statement), so
the row lock orders concurrent callers on every instance and each sees the other's
change. Ending sessions is one transaction that first locks the live rows (``FOR
UPDATE``): a grant being recorded finishes first and is then returned with the session,
and of concurrent enders exactly one finds the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sql import tables as t
from adapters.sql.connection import SqlConnection
from domain.sessions import Session, SessionGrant, SessionRecord
from domain.text import is_storable

_s = t.sessions
_g = t.session_grants


def session_from_row(row: sa.Row[Any]) -> Session:
    m = row._mapping
    return Session(
        id_hash=m["id_hash"], sid=m["sid"], user_id=m["user_id"], auth_time=m["auth_time"],
        amr=tuple(m["amr"]), acr=m["acr"], created_at=m["created_at"],
        idle_exp=m["idle_exp"], exp=m["exp"], clients=tuple(m["clients"]),
    )


def session_values(session: Session) -> dict[str, Any]:
    """The ``sessions`` row of ``session`` (``live_until`` is PostgreSQL's to compute)."""
    return {
        "id_hash": session.id_hash, "sid": session.sid, "user_id": session.user_id,
        "auth_time": session.auth_time, "amr": list(session.amr), "acr": session.acr,
        "created_at": session.created_at, "idle_exp": session.idle_exp, "exp": session.exp,
        "clients": list(session.clients),
    }


def live(now: int) -> sa.ColumnElement[bool]:
    return _s.c.live_until > now


async def grants_of(
    conn: AsyncConnection, id_hashes: Sequence[str]
) -> dict[str, list[SessionGrant]]:
    """The grants of these sessions, each list in the order the grants were recorded."""
    if not id_hashes:
        return {}
    rows = await conn.execute(
        sa.select(_g.c.id_hash, _g.c.client_id, _g.c.grant_id)
        .where(_g.c.id_hash.in_(id_hashes))
        .order_by(_g.c.id_hash, _g.c.position)
    )
    found: dict[str, list[SessionGrant]] = {}
    for id_hash, client_id, grant_id in rows:
        found.setdefault(id_hash, []).append(SessionGrant(client_id, grant_id))
    return found


def _pushed_idle_exp(idle_exp: int) -> sa.ColumnElement[Any]:
    """``idle_exp`` moved to the given one: never back, never past ``exp``."""
    return sa.func.least(sa.func.greatest(_s.c.idle_exp, idle_exp), _s.c.exp)


class SqlSessions(SqlConnection):
    """:class:`ports.store.SessionStore` for :class:`~adapters.sql.SqlStore`."""

    async def create_session(self, session: Session, now: int) -> None:
        """See :meth:`ports.store.SessionStore.create_session`. One statement: a row of the
        same ``id_hash`` (never one we issued: ids are random) is replaced, and its grants
        go with it, as in the other backends."""
        values = session_values(session)
        stale = sa.delete(_g).where(_g.c.id_hash == session.id_hash).cte("stale_grants")
        insert = pg_insert(_s).values(**values)
        stmt = insert.on_conflict_do_update(
            index_elements=["id_hash"],
            set_={name: insert.excluded[name] for name in values if name != "id_hash"},
        ).add_cte(stale)

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(stmt)

        await self._autocommit(work)

    async def get_session(self, id_hash: str, now: int) -> Session | None:
        """See :meth:`ports.store.SessionStore.get_session`. One primary-key lookup."""
        if not is_storable(id_hash):
            return None
        row = await self._first(sa.select(_s).where(_s.c.id_hash == id_hash, live(now)))
        return None if row is None else session_from_row(row)

    async def add_session_grant(
        self, id_hash: str, grant: SessionGrant, idle_exp: int, now: int
    ) -> Session | None:
        """See :meth:`ports.store.SessionStore.add_session_grant`. One statement: the
        ``UPDATE`` of the live row (which appends the client unless present) and, from its
        result, the grant's ``INSERT``; concurrent grants queue on the row lock and each
        appends to the row as the previous one left it."""
        if not is_storable(id_hash):
            return None
        client = sa.literal(grant.client_id, sa.Text)
        updated = (
            sa.update(_s)
            .where(_s.c.id_hash == id_hash, live(now))
            .values(
                idle_exp=_pushed_idle_exp(idle_exp),
                clients=sa.case(
                    (client == sa.any_(_s.c.clients), _s.c.clients),
                    else_=sa.func.array_append(_s.c.clients, client),
                ),
            )
            .returning(*_s.c)
            .cte("updated")
        )
        recorded = (
            pg_insert(_g)
            .from_select(
                ["id_hash", "client_id", "grant_id"],
                sa.select(updated.c.id_hash, client, sa.literal(grant.grant_id, sa.Text)),
            )
            .on_conflict_do_nothing()
            .cte("recorded")
        )
        # Safe to repeat after a lost connection: the grant is kept once, the expiry moved
        # to the same place.
        row = await self._first(sa.select(updated).add_cte(recorded))
        return None if row is None else session_from_row(row)

    async def reauthenticate_session(
        self, id_hash: str, new_id_hash: str, *, auth_time: int, amr: tuple[str, ...],
        acr: str, idle_exp: int, now: int,
    ) -> Session | None:
        """See :meth:`ports.store.SessionStore.reauthenticate_session`. One ``UPDATE`` of
        the primary key (the grants follow by ``ON UPDATE CASCADE``, migration 0019): a
        concurrent caller waits on the row lock, then finds no row with the old key."""
        if not is_storable(id_hash):
            return None
        stmt = (
            sa.update(_s)
            .where(_s.c.id_hash == id_hash, live(now))
            .values(id_hash=new_id_hash, auth_time=auth_time, amr=list(amr), acr=acr,
                    idle_exp=_pushed_idle_exp(idle_exp))
            .returning(*_s.c)
        )
        row = await self._first(stmt)
        return None if row is None else session_from_row(row)

    async def list_sessions(self, user_id: str, now: int) -> tuple[Session, ...]:
        """See :meth:`ports.store.SessionStore.list_sessions`. One range scan of
        ``sessions_user_id_idx``, already in the listed order."""
        if not is_storable(user_id):
            return ()
        stmt = (
            sa.select(_s).where(_s.c.user_id == user_id, live(now))
            .order_by(_s.c.created_at, _s.c.sid)
        )

        async def work(conn: AsyncConnection) -> tuple[Session, ...]:
            return tuple(session_from_row(row) for row in await conn.execute(stmt))

        return await self._autocommit(work)

    async def end_session(self, id_hash: str, now: int) -> SessionRecord | None:
        """See :meth:`ports.store.SessionStore.end_session`."""
        if not is_storable(id_hash):
            return None
        ended = await self._end(_s.c.id_hash == id_hash, now)
        return ended[0] if ended else None

    async def end_session_by_sid(self, sid: str, now: int) -> SessionRecord | None:
        """See :meth:`ports.store.SessionStore.end_session_by_sid`."""
        if not is_storable(sid):
            return None
        ended = await self._end(_s.c.sid == sid, now)
        return ended[0] if ended else None

    async def end_user_sessions(self, user_id: str, now: int) -> tuple[SessionRecord, ...]:
        """See :meth:`ports.store.SessionStore.end_user_sessions`. One transaction for all of
        them, so a session is never half ended."""
        if not is_storable(user_id):
            return ()
        return await self._end(_s.c.user_id == user_id, now)

    async def _end(
        self, which: sa.ColumnElement[bool], now: int
    ) -> tuple[SessionRecord, ...]:
        """Remove the live sessions ``which`` names, with their grants; return them.

        The rows are locked first, in one order (the listed one), by a statement of their
        own: a ``DELETE`` reading the grants in the same statement would read them as of
        its start, and miss one recorded while it waited for the lock (the cascade would
        then remove it unseen, and nobody would revoke it). Concurrent enders wait on the
        lock and then find no row.
        """
        locking = (
            sa.select(_s.c.id_hash).where(which, live(now))
            .order_by(_s.c.created_at, _s.c.sid)
            .with_for_update()
        )

        async def work(conn: AsyncConnection) -> tuple[SessionRecord, ...]:
            hashes = list((await conn.execute(locking)).scalars())
            if not hashes:
                return ()
            grants = await grants_of(conn, hashes)
            rows = await conn.execute(
                sa.delete(_s).where(_s.c.id_hash.in_(hashes)).returning(*_s.c)
            )
            by_hash = {row.id_hash: session_from_row(row) for row in rows}
            return tuple(SessionRecord(by_hash[h], tuple(grants.get(h, ()))) for h in hashes)

        return await self._transaction(work)

"""``SqlDevice``: the ``DeviceStore`` port (and its transfer pair) over PostgreSQL
(``device_authorizations``, migration ``0016``).

One row per authorization, keyed by the device code hash; the user code hash is unique.
Rows past ``exp`` read as absent in every statement (``exp > now``) and are purged. Every
operation is one statement or one transaction, and each single-use step is decided by
PostgreSQL's row locks, never by a read followed by a write:

- a save deletes the expired rows holding either code, then inserts with ``ON CONFLICT DO
  NOTHING`` (both unique keys are arbiters): of concurrent saves of a code, one inserts;
- a decision is one conditional ``UPDATE ... WHERE status = 'pending' RETURNING``;
- a poll is one statement: it locks the live row (``FOR UPDATE``, which in READ COMMITTED
  waits for a competing poll and reads the row as that poll left it), then either
  ``DELETE ... RETURNING`` hands out an answered row or an ``UPDATE`` records the poll
  (``slow_down`` lengthening the interval). Of 50 concurrent polls of an approval, the
  first to lock the row deletes it; the others find no row: exactly one gets it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sql import tables as t
from adapters.sql.connection import SqlConnection
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

_d = t.device_authorizations


def _unstorable(text: str) -> bool:
    """Whether PostgreSQL text cannot hold ``text`` (a NUL, a lone surrogate): no row can
    then have it, so a lookup answers "none" instead of failing as a write does."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def device_values(authorization: DeviceAuthorization) -> dict[str, Any]:
    """The ``device_authorizations`` row of ``authorization``."""
    return {
        "device_code_hash": authorization.device_code_hash,
        "user_code_hash": authorization.user_code_hash,
        "client_id": authorization.client_id,
        "scope": authorization.scope,
        "resources": list(authorization.resources),
        "exp": authorization.exp,
        "poll_interval": authorization.interval,
        "created_at": authorization.created_at,
        "status": authorization.status,
        "last_poll": authorization.last_poll,
        "user_id": authorization.user_id,
        "auth_time": authorization.auth_time,
        "amr": list(authorization.amr),
        "acr": authorization.acr,
        "sid": authorization.sid,
    }


def device_from_row(row: Any) -> DeviceAuthorization:
    """The authorization of a row (a mapping with the table's columns)."""
    return DeviceAuthorization(
        device_code_hash=row["device_code_hash"], user_code_hash=row["user_code_hash"],
        client_id=row["client_id"], scope=row["scope"], resources=tuple(row["resources"]),
        exp=row["exp"], interval=row["poll_interval"], created_at=row["created_at"],
        status=row["status"], last_poll=row["last_poll"], user_id=row["user_id"],
        auth_time=row["auth_time"], amr=tuple(row["amr"]), acr=row["acr"], sid=row["sid"],
    )


def _stale(device_code_hash: str, user_code_hash: str, now: int) -> sa.Delete:
    """Expired rows holding either code: they must not keep a code from a new record."""
    return sa.delete(_d).where(
        sa.or_(_d.c.device_code_hash == device_code_hash,
               _d.c.user_code_hash == user_code_hash),
        _d.c.exp <= now,
    )


def _poll_statement(device_code_hash: str, now: int) -> sa.CompoundSelect[Any]:
    """The whole poll, one statement. Its row, if any: ``answered`` (True: the row was
    deleted, and its columns follow), else ``slow`` and the new interval
    (``new_interval``). No row: no live record (never saved, expired, or answered to
    another poll)."""
    locked = (
        sa.select(
            _d.c.device_code_hash,
            _d.c.status,
            sa.and_(_d.c.last_poll != 0, _d.c.last_poll + _d.c.poll_interval > now)
            .label("slow"),
        )
        .where(_d.c.device_code_hash == device_code_hash, _d.c.exp > now)
        .with_for_update()
        .cte("locked")
    )
    answered = (
        sa.delete(_d)
        .where(_d.c.device_code_hash == locked.c.device_code_hash,
               locked.c.status != "pending", sa.not_(locked.c.slow))
        .returning(*_d.c)
        .cte("answered")
    )
    polled = (
        sa.update(_d)
        .where(_d.c.device_code_hash == locked.c.device_code_hash,
               sa.or_(locked.c.status == "pending", locked.c.slow))
        .values(
            poll_interval=_d.c.poll_interval
            + sa.case((locked.c.slow, SLOW_DOWN_SECONDS), else_=0),
            last_poll=now,
        )
        .returning(_d.c.poll_interval, locked.c.slow)
        .cte("polled")
    )
    # The two outcomes exclude each other (on the locked row): at most one row in all.
    return sa.union_all(
        sa.select(sa.true().label("answered"), sa.null().cast(sa.Boolean).label("slow"),
                  sa.null().cast(sa.Integer).label("new_interval"), *answered.c),
        sa.select(sa.false(), polled.c.slow, polled.c.poll_interval,
                  *(sa.null().cast(column.type).label(column.name) for column in _d.c)),
    )


class SqlDevice(SqlConnection):
    """:class:`ports.store.DeviceStore` and ``DeviceTransfer`` for
    :class:`~adapters.sql.SqlStore`; see the module docstring."""

    # DeviceStore

    async def save_device_authorization(
        self, authorization: DeviceAuthorization, now: int
    ) -> bool:
        """See :meth:`ports.store.DeviceStore.save_device_authorization`. One transaction:
        the expired rows holding either code, then an insert that yields to a live one."""
        insert = (
            pg_insert(_d).values(**device_values(authorization))
            .on_conflict_do_nothing()
            .returning(_d.c.device_code_hash)
        )

        async def work(conn: AsyncConnection) -> bool:
            await conn.execute(
                _stale(authorization.device_code_hash, authorization.user_code_hash, now)
            )
            return (await conn.execute(insert)).first() is not None

        return await self._transaction(work)

    async def find_device_authorization(
        self, user_code_hash: str, now: int
    ) -> DeviceAuthorization | None:
        """See :meth:`ports.store.DeviceStore.find_device_authorization`."""
        if _unstorable(user_code_hash):
            return None
        row = await self._first(
            sa.select(_d).where(_d.c.user_code_hash == user_code_hash, _d.c.exp > now)
        )
        return None if row is None else device_from_row(row._mapping)

    async def decide_device_authorization(
        self, user_code_hash: str, decision: DeviceDecision, now: int
    ) -> DeviceAuthorization | None:
        """See :meth:`ports.store.DeviceStore.decide_device_authorization`. One conditional
        UPDATE: a competing decider waits for the row lock, then finds it decided."""
        if _unstorable(user_code_hash):
            return None
        stmt = (
            sa.update(_d)
            .where(_d.c.user_code_hash == user_code_hash, _d.c.exp > now,
                   _d.c.status == "pending")
            .values(status=decision.status, user_id=decision.user_id,
                    auth_time=decision.auth_time, amr=list(decision.amr), acr=decision.acr,
                    sid=decision.sid)
            .returning(*_d.c)
        )
        # Repeated after a lost connection, a decision that did commit reads as taken: the
        # caller loses it, which fails closed.
        row = await self._first(stmt)
        return None if row is None else device_from_row(row._mapping)

    async def poll_device_authorization(self, device_code_hash: str, now: int) -> DevicePoll:
        """See :meth:`ports.store.DeviceStore.poll_device_authorization`. One statement
        (see the module docstring)."""
        if _unstorable(device_code_hash):
            return PollExpired()
        # Repeated after a lost connection, a poll whose answer did commit finds no row: the
        # device is told the code expired, and no token is ever issued twice.
        row = await self._first(_poll_statement(device_code_hash, now))
        if row is None:
            return PollExpired()
        values = row._mapping
        if not values["answered"]:
            if values["slow"]:
                return PollSlowDown(values["new_interval"])
            return PollPending()
        if values["status"] == "denied":
            return PollDenied()
        return PollApproved(device_from_row({**values, "last_poll": now}))

    # DeviceTransfer

    async def export_device_authorizations(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[DeviceAuthorization]:
        """See :meth:`ports.store.DeviceTransfer.export_device_authorizations`. Keyset
        paging on the primary key."""
        size = max(limit, 1)
        stmt = sa.select(_d).where(_d.c.exp > now)
        if cursor is not None:
            stmt = stmt.where(_d.c.device_code_hash > cursor)
        stmt = stmt.order_by(_d.c.device_code_hash).limit(size)

        async def work(conn: AsyncConnection) -> Sequence[sa.Row[Any]]:
            rows: Sequence[sa.Row[Any]] = (await conn.execute(stmt)).all()
            return rows

        rows = await self._autocommit(work)
        records = tuple(device_from_row(row._mapping) for row in rows)
        return Batch(records, records[-1].device_code_hash if len(rows) == size else None)

    async def import_device_authorizations(
        self, records: tuple[DeviceAuthorization, ...], now: int
    ) -> int:
        """See :meth:`ports.store.DeviceTransfer.import_device_authorizations`. One
        transaction; per record, the expired rows holding its codes go, then a live pending
        row is replaced by a decided record (a conditional UPDATE), else the record is
        inserted unless a live row holds either code (``ON CONFLICT DO NOTHING``)."""
        live = list({r.device_code_hash: r for r in records if r.live(now)}.values())
        if not live:
            return 0

        async def work(conn: AsyncConnection) -> int:
            changed = 0
            for record in live:
                values = device_values(record)
                await conn.execute(
                    _stale(record.device_code_hash, record.user_code_hash, now)
                )
                if record.status != "pending":
                    other = _d.alias("other")
                    replace = (
                        sa.update(_d)
                        .where(
                            _d.c.device_code_hash == record.device_code_hash,
                            _d.c.status == "pending",
                            ~sa.exists().where(
                                other.c.user_code_hash == record.user_code_hash,
                                other.c.device_code_hash != record.device_code_hash,
                            ),
                        )
                        .values(**values)
                        .returning(_d.c.device_code_hash)
                    )
                    if (await conn.execute(replace)).first() is not None:
                        changed += 1
                        continue
                insert = (
                    pg_insert(_d).values(**values).on_conflict_do_nothing()
                    .returning(_d.c.device_code_hash)
                )
                if (await conn.execute(insert)).first() is not None:
                    changed += 1
            return changed

        return await self._transaction(work)

"""``SqlEphemeral``: the ``EphemeralStore`` port over PostgreSQL (``ephemeral_claims`` and
``ephemeral_counters``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from adapters.sql import tables as t
from adapters.sql.connection import SqlConnection


class SqlEphemeral(SqlConnection):
    """:class:`ports.store.EphemeralStore` for :class:`~adapters.sql.SqlStore`."""

    async def claim_once(self, key: str, exp: int, now: int) -> bool:
        """See :meth:`ports.store.EphemeralStore.claim_once`.

        One upsert: a new key is inserted; an existing one is taken over only when its
        claim has expired. ``RETURNING`` yields a row exactly when this caller claimed it.
        """
        claims = t.ephemeral_claims
        insert = pg_insert(claims).values(key=key, exp=exp)
        stmt = insert.on_conflict_do_update(
            index_elements=["key"], set_={"exp": insert.excluded.exp}, where=claims.c.exp <= now
        ).returning(claims.c.key)
        # Repeated after a lost connection, a claim that did commit reads as taken: the
        # caller loses it, which fails closed.
        return await self._first(stmt) is not None

    async def hit(self, key: str, window_seconds: int, now: int, amount: int = 1) -> int:
        """See :meth:`ports.store.EphemeralStore.hit`. An upsert counter, one statement."""
        counters = t.ephemeral_counters
        window_start = (now // window_seconds) * window_seconds
        if amount == 0:
            row = await self._first(
                sa.select(counters.c.value).where(
                    counters.c.key == key, counters.c.window_start == window_start
                )
            )
            return 0 if row is None else int(row[0])
        insert = pg_insert(counters).values(
            key=key, window_start=window_start, value=amount,
            exp=window_start + window_seconds,
        )
        stmt = insert.on_conflict_do_update(
            index_elements=["key"],
            set_={
                "value": sa.case(
                    (counters.c.window_start == insert.excluded.window_start,
                     counters.c.value + insert.excluded.value),
                    else_=insert.excluded.value,
                ),
                "window_start": insert.excluded.window_start,
                "exp": insert.excluded.exp,
            },
        ).returning(counters.c.value)
        row = await self._first(stmt)
        return 0 if row is None else int(row[0])

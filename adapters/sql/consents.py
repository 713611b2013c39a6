"""``SqlConsents``: the ``ConsentStore`` port over PostgreSQL (``consents`` and the grants
issued under each, ``consent_grants``).

Granting is one ``INSERT ... ON CONFLICT DO UPDATE`` that merges the stored scope array
with the new one, so concurrent grants (on any instance) all land. Recording a grant reads
the consent ``FOR KEY SHARE`` in the same statement, so a withdrawal waits for it (and then
returns it), and a grant arriving after the withdrawal finds no consent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sql import tables as t
from adapters.sql.connection import SqlConnection
from domain.consent import Consent, ConsentGrant, ConsentRecord, merged_scopes
from domain.text import is_storable

_c = t.consents
_g = t.consent_grants
_Key = tuple[str, str]


def consent_from_row(row: sa.Row[Any]) -> Consent:
    m = row._mapping
    return Consent(user_id=m["user_id"], client_id=m["client_id"], scopes=tuple(m["scopes"]),
                   created_at=m["created_at"], updated_at=m["updated_at"])


def consent_values(consent: Consent) -> dict[str, Any]:
    return {"user_id": consent.user_id, "client_id": consent.client_id,
            "scopes": list(consent.scopes), "created_at": consent.created_at,
            "updated_at": consent.updated_at}


def union_of_scopes(stored: Any, added: Any) -> sa.ScalarSelect[Any]:
    """The sorted, duplicate-free union of two scope arrays, in code-point order (the "C"
    collation), as :func:`domain.consent.merged_scopes` sorts."""
    scope = sa.func.unnest(sa.func.array_cat(stored, added)).column_valued("scope")
    in_order = scope.collate("C")
    return sa.select(
        sa.func.array_agg(aggregate_order_by(sa.distinct(in_order), in_order))
    ).scalar_subquery()


async def grants_of(
    conn: AsyncConnection, keys: Sequence[_Key], now: int | None
) -> dict[_Key, list[ConsentGrant]]:
    """The grants under these consents by ``grant_id`` (only those live at ``now``, unless
    ``now`` is None)."""
    if not keys:
        return {}
    stmt = (
        sa.select(_g.c.user_id, _g.c.client_id, _g.c.grant_id, _g.c.exp)
        .where(sa.tuple_(_g.c.user_id, _g.c.client_id).in_(list(keys)))
        .order_by(_g.c.user_id, _g.c.client_id, _g.c.grant_id)
    )
    if now is not None:
        stmt = stmt.where(_g.c.exp > now)
    found: dict[_Key, list[ConsentGrant]] = {}
    for user_id, client_id, grant_id, exp in await conn.execute(stmt):
        found.setdefault((user_id, client_id), []).append(ConsentGrant(grant_id, exp))
    return found


class SqlConsents(SqlConnection):
    """:class:`ports.store.ConsentStore` for :class:`~adapters.sql.SqlStore`."""

    async def get_consent(self, user_id: str, client_id: str) -> Consent | None:
        """See :meth:`ports.store.ConsentStore.get_consent`. One primary-key lookup."""
        if not (is_storable(user_id) and is_storable(client_id)):
            return None
        row = await self._first(
            sa.select(_c).where(_c.c.user_id == user_id, _c.c.client_id == client_id)
        )
        return None if row is None else consent_from_row(row)

    async def grant_consent(
        self, user_id: str, client_id: str, scopes: tuple[str, ...], now: int
    ) -> Consent:
        """See :meth:`ports.store.ConsentStore.grant_consent`. One upsert: the conflicting
        row is locked and merged as it is then, so concurrent grants all land."""
        insert = pg_insert(_c).values(
            user_id=user_id, client_id=client_id, scopes=list(merged_scopes((), scopes)),
            created_at=now, updated_at=now,
        )
        stmt = insert.on_conflict_do_update(
            index_elements=["user_id", "client_id"],
            set_={"scopes": union_of_scopes(_c.c.scopes, insert.excluded.scopes),
                  "updated_at": insert.excluded.updated_at},
        ).returning(*_c.c)
        row = await self._first(stmt)
        if row is None:  # an upsert always returns its row; this only satisfies the type
            raise AssertionError("grant_consent wrote no row")
        return consent_from_row(row)

    async def list_consents(self, user_id: str) -> tuple[Consent, ...]:
        """See :meth:`ports.store.ConsentStore.list_consents`. A range scan of the primary
        key, already by ``client_id``."""
        if not is_storable(user_id):
            return ()
        stmt = sa.select(_c).where(_c.c.user_id == user_id).order_by(_c.c.client_id)

        async def work(conn: AsyncConnection) -> tuple[Consent, ...]:
            return tuple(consent_from_row(row) for row in await conn.execute(stmt))

        return await self._autocommit(work)

    async def record_consent_grant(
        self, user_id: str, client_id: str, grant_id: str, exp: int, now: int
    ) -> bool:
        """See :meth:`ports.store.ConsentStore.record_consent_grant`. One statement: the
        consent is read ``FOR KEY SHARE`` (a withdrawal in progress is waited for, and then
        there is no consent) and the grant inserted from it, keeping the later ``exp`` of a
        grant recorded before."""
        if not (is_storable(user_id) and is_storable(client_id)):
            return False
        consent = (
            sa.select(_c.c.user_id, _c.c.client_id, sa.literal(grant_id, sa.Text),
                      sa.literal(exp, sa.BigInteger))
            .where(_c.c.user_id == user_id, _c.c.client_id == client_id)
            .with_for_update(key_share=True)
        )
        insert = pg_insert(_g).from_select(["user_id", "client_id", "grant_id", "exp"], consent)
        stmt = insert.on_conflict_do_update(
            index_elements=["user_id", "client_id", "grant_id"],
            set_={"exp": sa.func.greatest(_g.c.exp, insert.excluded.exp)},
        ).returning(_g.c.grant_id)
        return await self._first(stmt) is not None

    async def withdraw_consent(
        self, user_id: str, client_id: str, now: int
    ) -> ConsentRecord | None:
        """See :meth:`ports.store.ConsentStore.withdraw_consent`. One transaction that
        locks the consent first, so that a grant being recorded is committed (and read)
        before it, then reads the live grants and deletes the consent (its grants go with
        it). Concurrent callers wait on the lock and then find no consent."""
        if not (is_storable(user_id) and is_storable(client_id)):
            return None
        key = (user_id, client_id)
        locking = (
            sa.select(_c).where(_c.c.user_id == user_id, _c.c.client_id == client_id)
            .with_for_update()
        )

        async def work(conn: AsyncConnection) -> ConsentRecord | None:
            row = (await conn.execute(locking)).first()
            if row is None:
                return None
            grants = await grants_of(conn, [key], now)
            await conn.execute(
                sa.delete(_c).where(_c.c.user_id == user_id, _c.c.client_id == client_id)
            )
            return ConsentRecord(consent_from_row(row), tuple(grants.get(key, ())))

        return await self._transaction(work)

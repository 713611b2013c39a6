"""``SqlAdmin``: the ``StoreAdmin`` port over PostgreSQL (health, counts, purge, close), and
``Migratable`` (the numbered files of ``migrations/``)."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sql import tables as t
from adapters.sql.connection import SqlConnection
from domain.entities import PurgeCounts, StoreCounts
from domain.errors import StoreMisconfigured, StoreUnavailable
from migrations.runner import migrate as run_migrations

_HEALTH_TIMEOUT_SECONDS = 2.0
_initial = t.client_initial_access_tokens


class SqlAdmin(SqlConnection):
    """:class:`ports.store.StoreAdmin` and :class:`ports.store.Migratable` for
    :class:`~adapters.sql.SqlStore`."""

    async def migrate(self) -> list[str]:
        """See :class:`ports.store.Migratable`: the numbered files of ``migrations/``.

        They run over their own connection to ``migration_url`` (the URL the store was
        opened with), under an advisory lock, so concurrent runners are safe.
        """
        if self._migration_url is None:
            raise StoreMisconfigured("this store was opened without a URL to migrate with")
        return await run_migrations(self._migration_url)

    async def health(self) -> dict[str, bool]:
        """See :meth:`ports.store.StoreAdmin.health`: ``SELECT 1`` with a short timeout."""
        try:
            async with asyncio.timeout(_HEALTH_TIMEOUT_SECONDS):
                await self._first(sa.text("SELECT 1"))
        except (TimeoutError, StoreUnavailable):
            return {"store": False}
        return {"store": True}

    async def counts(self, now: int) -> StoreCounts:
        """See :meth:`ports.store.StoreAdmin.counts`."""

        def live(table: sa.Table) -> sa.ScalarSelect[Any]:
            return (
                sa.select(sa.func.count()).select_from(table).where(table.c.exp > now)
            ).scalar_subquery()

        def every(table: sa.Table) -> sa.ScalarSelect[Any]:
            return sa.select(sa.func.count()).select_from(table).scalar_subquery()

        sessions = t.sessions
        live_sessions = (
            sa.select(sa.func.count()).select_from(sessions)
            .where(sessions.c.live_until > now)
        ).scalar_subquery()
        stmt = sa.select(
            every(t.users), every(t.groups), live(t.tokens), live(t.refresh_tokens),
            live(t.auth_codes), every(t.oauth_clients), live_sessions, every(t.consents),
            live(t.device_authorizations), live(t.account_tokens),
        )
        row = await self._first(stmt)
        # An aggregate always yields one row; the fallback only satisfies the type.
        values: tuple[Any, ...] = tuple(row) if row is not None else (0,) * 10
        return StoreCounts(
            users=values[0], groups=values[1], access_tokens=values[2],
            refresh_tokens=values[3], codes=values[4], clients=values[5],
            sessions=values[6], consents=values[7], device_authorizations=values[8],
            account_tokens=values[9],
        )

    async def _purge_table(
        self, table: sa.Table, now: int, batch_size: int,
        dead: sa.ColumnElement[bool] | None = None,
    ) -> int:
        """Delete expired rows (``exp <= now``, or ``dead``) ``batch_size`` at a time, each
        batch its own short statement."""
        ctid: sa.ColumnClause[Any] = sa.column("ctid")
        expired = table.c.exp <= now if dead is None else dead
        batch = (
            sa.select(ctid).select_from(table).where(expired).limit(batch_size)
        ).scalar_subquery()
        stmt = sa.delete(table).where(sa.literal_column("ctid").in_(batch), expired)
        removed = 0
        while True:
            count = await self._autocommit(lambda conn: self._rowcount(conn, stmt))
            removed += count
            if count < batch_size:
                return removed

    @staticmethod
    async def _rowcount(conn: AsyncConnection, stmt: sa.Executable) -> int:
        return int((await conn.execute(stmt)).rowcount)

    async def purge_expired(self, now: int, batch_size: int = 1000) -> PurgeCounts:
        """See :meth:`ports.store.StoreAdmin.purge_expired`.

        Tombstones count as ``codes``; claims and counters as ``other``; initial access
        tokens go once spent or expired (the ``expires_at`` index finds the expired ones).
        A session goes once idle or past its absolute expiry (the ``live_until`` index finds
        them), its grants with it (``ON DELETE CASCADE``); a consent grant once past its
        ``exp`` (the consent itself never expires); device authorizations and account tokens
        once past ``exp``.
        """
        size = max(batch_size, 1)
        return PurgeCounts(
            codes=await self._purge_table(t.auth_codes, now, size)
            + await self._purge_table(t.consumed_codes, now, size),
            access_tokens=await self._purge_table(t.tokens, now, size),
            refresh_tokens=await self._purge_table(t.refresh_tokens, now, size),
            reuse_markers=await self._purge_table(t.refresh_token_reuse, now, size),
            other=await self._purge_table(t.ephemeral_claims, now, size)
            + await self._purge_table(t.ephemeral_counters, now, size),
            initial_access_tokens=await self._purge_table(
                _initial, now, size, sa.or_(_initial.c.uses_left <= 0, _initial.c.expires_at <= now)
            ),
            sessions=await self._purge_table(
                t.sessions, now, size, t.sessions.c.live_until <= now
            ),
            consent_grants=await self._purge_table(t.consent_grants, now, size),
            device_authorizations=await self._purge_table(t.device_authorizations, now, size),
            account_tokens=await self._purge_table(t.account_tokens, now, size),
        )

    async def close(self) -> None:
        """See :meth:`ports.store.StoreAdmin.close`."""
        if not self._closed:
            self._closed = True
            await self._engine.dispose()

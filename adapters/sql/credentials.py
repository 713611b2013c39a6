"""``SqlCredentials``: the ``CredentialStore`` port over PostgreSQL (``user_credentials``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sql import tables as t
from adapters.sql.connection import SqlConnection
from domain.entities import Credentials
from domain.errors import NotFound


class SqlCredentials(SqlConnection):
    """:class:`ports.store.CredentialStore` for :class:`~adapters.sql.SqlStore`."""

    async def get_credentials(self, user_id: str) -> Credentials:
        """See :meth:`ports.store.CredentialStore.get_credentials`."""
        c = t.user_credentials
        row = await self._first(
            sa.select(t.users.c.id, c.c.password_hash, c.c.totp_secret, c.c.totp_confirmed)
            .select_from(t.users.outerjoin(c, c.c.user_id == t.users.c.id))
            .where(t.users.c.id == user_id)
        )
        if row is None:
            raise NotFound(f"no user {user_id}")
        return Credentials(
            user_id=user_id,
            password_hash=row.password_hash,
            totp_secret=row.totp_secret,
            totp_confirmed=bool(row.totp_confirmed) and row.totp_secret is not None,
        )

    async def _set_credentials(self, user_id: str, values: dict[str, Any]) -> None:
        stmt = pg_insert(t.user_credentials).values(
            user_id=user_id, **({"totp_confirmed": False} | values)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id"], set_={k: stmt.excluded[k] for k in values}
        )

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(stmt)

        await self._transaction(work)

    async def set_password_hash(self, user_id: str, password_hash: str | None) -> None:
        """See :meth:`ports.store.CredentialStore.set_password_hash`."""
        await self._set_credentials(user_id, {"password_hash": password_hash})

    async def set_totp(self, user_id: str, secret: str | None, *, confirmed: bool) -> None:
        """See :meth:`ports.store.CredentialStore.set_totp`.

        Clearing the seed also clears ``totp_confirmed``: a factor without a seed cannot count.
        """
        await self._set_credentials(
            user_id, {"totp_secret": secret, "totp_confirmed": confirmed and secret is not None}
        )

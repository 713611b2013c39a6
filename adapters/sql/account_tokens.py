"""``SqlAccountTokens``: the ``AccountTokenStore`` port (and its transfer pair) over
PostgreSQL (``account_tokens``, migration ``0020``).

One row per mailed link, keyed by the SHA-256 hex of its secret. Rows past ``exp`` read as
absent in every statement (``exp > now``) and are purged. A take is one ``DELETE ...
WHERE token_hash = $1 AND kind = $2 AND exp > $now RETURNING *``: of concurrent takers on
any instance, the first deletes the row and the others find none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sql import tables as t
from adapters.sql.connection import SqlConnection
from domain.entities import AccountToken, AccountTokenKind
from domain.records import Batch
from domain.text import is_storable

_a = t.account_tokens
# Six bind parameters a row, well under PostgreSQL's 32767 a statement.
_ROWS_PER_STATEMENT = 4000


def account_token_values(token: AccountToken) -> dict[str, Any]:
    """The ``account_tokens`` row of ``token``."""
    return {
        "token_hash": token.token_hash, "kind": token.kind, "user_id": token.user_id,
        "email": token.email, "created_at": token.created_at, "exp": token.exp,
    }


def account_token_from_row(row: sa.Row[Any]) -> AccountToken:
    m = row._mapping
    return AccountToken(
        token_hash=m["token_hash"], kind=m["kind"], user_id=m["user_id"], email=m["email"],
        created_at=m["created_at"], exp=m["exp"],
    )


class SqlAccountTokens(SqlConnection):
    """:class:`ports.store.AccountTokenStore` and ``AccountTokenTransfer`` for
    :class:`~adapters.sql.SqlStore`; see the module docstring."""

    # AccountTokenStore

    async def save_account_token(self, token: AccountToken, now: int) -> None:
        """See :meth:`ports.store.AccountTokenStore.save_account_token`. An upsert: the
        hash of a fresh random secret never meets a stored one, and if it did the new
        token is the one mailed."""
        stmt = pg_insert(_a).values(**account_token_values(token))
        stmt = stmt.on_conflict_do_update(
            index_elements=["token_hash"],
            set_={name: stmt.excluded[name] for name in account_token_values(token)
                  if name != "token_hash"},
        )

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(stmt)

        await self._autocommit(work)

    async def take_account_token(
        self, kind: AccountTokenKind, token_hash: str, now: int
    ) -> AccountToken | None:
        """See :meth:`ports.store.AccountTokenStore.take_account_token`. One DELETE ...
        RETURNING (see the module docstring)."""
        if not is_storable(token_hash):
            return None  # no row can hold it; asking would be a data error
        stmt = (
            sa.delete(_a)
            .where(_a.c.token_hash == token_hash, _a.c.kind == kind, _a.c.exp > now)
            .returning(*_a.c)
        )
        # Repeated after a lost connection, a take that did commit finds no row: the link
        # reads as used, which fails closed.
        row = await self._first(stmt)
        return None if row is None else account_token_from_row(row)

    async def revoke_account_tokens(
        self, user_id: str, kind: AccountTokenKind, now: int
    ) -> int:
        """See :meth:`ports.store.AccountTokenStore.revoke_account_tokens`. One DELETE of
        the live rows (index ``account_tokens_user_id_kind_idx``)."""
        if not is_storable(user_id):
            return 0
        stmt = sa.delete(_a).where(_a.c.user_id == user_id, _a.c.kind == kind, _a.c.exp > now)

        async def work(conn: AsyncConnection) -> int:
            return int((await conn.execute(stmt)).rowcount)

        return await self._autocommit(work)

    # AccountTokenTransfer

    async def export_account_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AccountToken]:
        """See :meth:`ports.store.AccountTokenTransfer.export_account_tokens`. Keyset
        paging on the primary key (code-point order, as the other backends page)."""
        size = max(limit, 1)
        stmt = sa.select(_a).where(_a.c.exp > now)
        if cursor is not None:
            stmt = stmt.where(_a.c.token_hash > cursor)
        stmt = stmt.order_by(_a.c.token_hash).limit(size)

        async def work(conn: AsyncConnection) -> Sequence[sa.Row[Any]]:
            rows: Sequence[sa.Row[Any]] = (await conn.execute(stmt)).all()
            return rows

        rows = await self._autocommit(work)
        records = tuple(account_token_from_row(row) for row in rows)
        return Batch(records, records[-1].token_hash if len(rows) == size else None)

    async def import_account_tokens(self, records: tuple[AccountToken, ...], now: int) -> int:
        """See :meth:`ports.store.AccountTokenTransfer.import_account_tokens`. One
        transaction of ``INSERT ... ON CONFLICT DO UPDATE ... WHERE account_tokens.exp <=
        $now``: a live stored row is left as it is, an expired one replaced."""
        live: dict[str, AccountToken] = {}
        for record in records:
            if record.exp > now:
                live.setdefault(record.token_hash, record)  # the first of a hash is kept
        rows = [account_token_values(record) for record in live.values()]
        if not rows:
            return 0

        async def work(conn: AsyncConnection) -> int:
            kept = 0
            for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                insert = pg_insert(_a).values(rows[start : start + _ROWS_PER_STATEMENT])
                stmt = insert.on_conflict_do_update(
                    index_elements=["token_hash"],
                    set_={name: insert.excluded[name] for name in rows[0]
                          if name != "token_hash"},
                    where=_a.c.exp <= now,
                ).returning(_a.c.token_hash)
                kept += len((await conn.execute(stmt)).all())
            return kept

        return await self._transaction(work)

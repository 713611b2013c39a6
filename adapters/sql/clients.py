"""``SqlClients``: the ``ClientStore`` port (and its transfer pair) over PostgreSQL
(``oauth_clients``, ``client_initial_access_tokens``).

A client is one row whose ``document`` is the whole :class:`~domain.clients.Client` as
JSON; ``version`` is also a column, so that compare-and-set is one conditional UPDATE. A
unique expression index on the document's ``resource_uri`` (migration 0017) finds a
resource server and keeps resource URIs unique; its violation is a ``Conflict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sql import tables as t
from adapters.sql.connection import SqlConnection
from domain.clients import Client, InitialAccessToken
from domain.errors import NotFound, PreconditionFailed
from domain.records import Batch

_clients = t.oauth_clients
_initial = t.client_initial_access_tokens
_UNSTORABLE = "\x00"


def client_values(client: Client) -> dict[str, Any]:
    """The ``oauth_clients`` row of ``client``."""
    return {
        "client_id": client.client_id,
        "version": client.version,
        # Sets in a fixed order: equal clients give equal documents in every process (an
        # import compares them), whatever the order of a frozenset's iteration.
        "document": msgspec.to_builtins(client, order="deterministic"),
        "created_at": client.created_at,
        "updated_at": client.updated_at,
    }


def client_from_row(document: Any, version: int) -> Client:
    return msgspec.structs.replace(msgspec.convert(document, Client), version=version)


class SqlClients(SqlConnection):
    """:class:`ports.store.ClientStore` and ``ClientTransfer`` for
    :class:`~adapters.sql.SqlStore`."""

    async def create_client(self, client: Client) -> Client:
        """See :meth:`ports.store.ClientStore.create_client`. The primary key decides a race."""
        stored = msgspec.structs.replace(client, version=1)

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(sa.insert(_clients).values(**client_values(stored)))

        await self._autocommit(work)
        return stored

    async def get_client(self, client_id: str) -> Client | None:
        """See :meth:`ports.store.ClientStore.get_client`."""
        if _UNSTORABLE in client_id:
            # PostgreSQL text holds no NUL, so no such client can exist; asking would be a
            # data error (InvalidValue) for what is simply an unknown id.
            return None
        row = await self._first(
            sa.select(_clients.c.document, _clients.c.version)
            .where(_clients.c.client_id == client_id)
        )
        return None if row is None else client_from_row(row.document, row.version)

    async def find_client_by_resource(self, resource_uri: str) -> Client | None:
        """See :meth:`ports.store.ClientStore.find_client_by_resource`. One index probe
        (``oauth_clients_resource_uri_key``)."""
        if _UNSTORABLE in resource_uri:
            return None  # no document can hold a NUL (see get_client)
        row = await self._first(
            sa.select(_clients.c.document, _clients.c.version)
            .where(_clients.c.document["resource_uri"].astext == resource_uri)
        )
        return None if row is None else client_from_row(row.document, row.version)

    async def list_clients(self, cursor: str | None, limit: int) -> Batch[Client]:
        """See :meth:`ports.store.ClientStore.list_clients`. One index range scan."""
        stmt = sa.select(_clients.c.client_id, _clients.c.document, _clients.c.version)
        if cursor is not None:
            stmt = stmt.where(_clients.c.client_id > cursor)
        stmt = stmt.order_by(_clients.c.client_id).limit(limit + 1)

        async def work(conn: AsyncConnection) -> Sequence[Any]:
            rows: Sequence[Any] = (await conn.execute(stmt)).all()
            return rows

        rows = await self._autocommit(work)
        page = rows[:limit]
        return Batch(tuple(client_from_row(r.document, r.version) for r in page),
                     page[-1].client_id if len(rows) > limit else None)

    async def replace_client(self, client: Client, *, expected_version: int) -> Client:
        """See :meth:`ports.store.ClientStore.replace_client`. One conditional UPDATE: the
        row lock it takes makes a concurrent writer with the same version see the new one."""
        stored = msgspec.structs.replace(client, version=expected_version + 1)
        values = client_values(stored)
        del values["client_id"]
        stmt = (
            sa.update(_clients)
            .where(_clients.c.client_id == client.client_id,
                   _clients.c.version == expected_version)
            .values(**values)
            .returning(_clients.c.client_id)
        )
        if await self._first(stmt) is not None:
            return stored
        # Not replaced: tell a missing client from a stale version.
        if await self.get_client(client.client_id) is None:
            raise NotFound(f"no client {client.client_id!r}")
        raise PreconditionFailed(f"client {client.client_id!r} is not at version "
                                 f"{expected_version}")

    async def delete_client(self, client_id: str) -> bool:
        """See :meth:`ports.store.ClientStore.delete_client`."""
        if _UNSTORABLE in client_id:
            return False
        stmt = sa.delete(_clients).where(_clients.c.client_id == client_id).returning(
            _clients.c.client_id
        )
        return await self._first(stmt) is not None

    async def save_initial_access_token(self, token: InitialAccessToken, now: int) -> None:
        """See :meth:`ports.store.ClientStore.save_initial_access_token`."""
        values = msgspec.structs.asdict(token)
        stmt = pg_insert(_initial).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["digest"],
            set_={name: stmt.excluded[name] for name in values if name != "digest"},
        )

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(stmt)

        await self._autocommit(work)

    async def use_initial_access_token(self, digest: str, now: int) -> bool:
        """See :meth:`ports.store.ClientStore.use_initial_access_token`. One conditional
        UPDATE, so concurrent uses are serialized by the row lock."""
        stmt = (
            sa.update(_initial)
            .where(_initial.c.digest == digest, _initial.c.uses_left > 0,
                   sa.or_(_initial.c.expires_at.is_(None), _initial.c.expires_at > now))
            .values(uses_left=_initial.c.uses_left - 1)
            .returning(_initial.c.digest)
        )
        # Not repeated after a lost connection: a use that did commit would count twice.
        return await self._first(stmt) is not None

    # ClientTransfer

    async def export_clients(self, cursor: str | None, limit: int, now: int) -> Batch[Client]:
        """See :meth:`ports.store.ClientTransfer.export_clients`."""
        return await self.list_clients(cursor, limit)

    async def import_clients(self, records: tuple[Client, ...], now: int) -> int:
        """See :meth:`ports.store.ClientTransfer.import_clients`. One transaction; a row
        already identical is not rewritten."""
        if not records:
            return 0

        async def work(conn: AsyncConnection) -> int:
            changed = 0
            for client in records:
                values = client_values(client)
                insert = pg_insert(_clients).values(**values)
                upsert = insert.on_conflict_do_update(
                    index_elements=["client_id"],
                    set_={n: insert.excluded[n] for n in values if n != "client_id"},
                    where=sa.or_(_clients.c.version != insert.excluded.version,
                                 _clients.c.document != insert.excluded.document),
                ).returning(_clients.c.client_id)
                if (await conn.execute(upsert)).first() is not None:
                    changed += 1
            return changed

        return await self._transaction(work)

    async def export_initial_access_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[InitialAccessToken]:
        """See :meth:`ports.store.ClientTransfer.export_initial_access_tokens`."""
        stmt = sa.select(_initial).where(
            _initial.c.uses_left > 0,
            sa.or_(_initial.c.expires_at.is_(None), _initial.c.expires_at > now),
        )
        if cursor is not None:
            stmt = stmt.where(_initial.c.digest > cursor)
        stmt = stmt.order_by(_initial.c.digest).limit(limit + 1)

        async def work(conn: AsyncConnection) -> Sequence[sa.Row[Any]]:
            rows: Sequence[sa.Row[Any]] = (await conn.execute(stmt)).all()
            return rows

        rows = await self._autocommit(work)
        page = rows[:limit]
        tokens = tuple(InitialAccessToken(digest=r.digest, uses_left=r.uses_left,
                                          created_at=r.created_at, expires_at=r.expires_at)
                       for r in page)
        return Batch(tokens, page[-1].digest if len(rows) > limit else None)

    async def import_initial_access_tokens(
        self, records: tuple[InitialAccessToken, ...], now: int
    ) -> int:
        """See :meth:`ports.store.ClientTransfer.import_initial_access_tokens`."""
        live = [r for r in records if r.live(now)]
        if not live:
            return 0

        async def work(conn: AsyncConnection) -> int:
            changed = 0
            for token in live:
                values = msgspec.structs.asdict(token)
                insert = pg_insert(_initial).values(**values)
                upsert = insert.on_conflict_do_update(
                    index_elements=["digest"],
                    set_={n: insert.excluded[n] for n in values if n != "digest"},
                    # Uses only go down: a copy never hands out uses the target spent.
                    where=_initial.c.uses_left > insert.excluded.uses_left,
                ).returning(_initial.c.digest)
                if (await conn.execute(upsert)).first() is not None:
                    changed += 1
            return changed

        return await self._transaction(work)

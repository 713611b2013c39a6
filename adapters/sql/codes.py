"""``SqlCodes``: the ``CodeStore`` port over PostgreSQL (``auth_codes`` and the tombstones
of consumed codes, ``consumed_codes``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sql import tables as t
from adapters.sql.connection import SqlConnection, _upsert
from domain.entities import AuthorizationCode, ConsumedCode
from domain.errors import InvalidValue


def _code_from_row(row: sa.Row[Any]) -> AuthorizationCode:
    m = row._mapping
    return AuthorizationCode(
        code_hash=m["code"],
        client_id=m["client_id"],
        redirect_uri=m["redirect_uri"],
        scope=m["scope"],
        exp=m["exp"],
        grant_id=m["grant_id"] or "",
        user_id=m["user_id"],
        nonce=m["nonce"],
        pkce_challenge=m["pkce_challenge"],
        pkce_method=m["pkce_method"],
        auth_time=m["auth_time"],
        mfa_verified=m["mfa_verified"],
        sid=m["sid"],
        acr=m["acr"],
        amr=tuple(m["amr"].split()),
        resources=tuple(m["resources"].split()),
    )


def _amr_column(amr: tuple[str, ...]) -> str:
    """``amr`` as the column keeps it (migration 0012): space-separated. RFC 8176 values
    are single tokens; one that is empty or holds whitespace would read back as other
    values, so it is refused as a value this store cannot hold."""
    if any(value.split() != [value] for value in amr):
        raise InvalidValue("an amr value is empty or holds whitespace")
    return " ".join(amr)


def code_values(code: AuthorizationCode) -> dict[str, Any]:
    """The ``auth_codes`` row of ``code`` (keyed by its SHA-256). Raises ``InvalidValue``
    for an ``amr`` the column cannot keep."""
    return {
        "code": code.code_hash,
        "client_id": code.client_id,
        "redirect_uri": code.redirect_uri,
        "nonce": code.nonce,
        "scope": code.scope,
        "pkce_challenge": code.pkce_challenge,
        "pkce_method": code.pkce_method,
        "user_id": code.user_id,
        "exp": code.exp,
        "grant_id": code.grant_id,
        "auth_time": code.auth_time,
        "mfa_verified": code.mfa_verified,
        "sid": code.sid,
        "acr": code.acr,
        "amr": _amr_column(code.amr),
        "resources": " ".join(code.resources),
    }


class SqlCodes(SqlConnection):
    """:class:`ports.store.CodeStore` for :class:`~adapters.sql.SqlStore`."""

    async def save_code(self, code: AuthorizationCode, now: int) -> None:
        """See :meth:`ports.store.CodeStore.save_code`. ``code`` is keyed by its SHA-256."""
        stmt = _upsert(t.auth_codes, code_values(code), "code")

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(stmt)

        await self._transaction(work)

    async def take_code(
        self, code_hash: str, now: int, *, remember_until: int
    ) -> AuthorizationCode | ConsumedCode | None:
        """See :meth:`ports.store.CodeStore.take_code`.

        ``DELETE ... RETURNING``: concurrent takers serialise on the row lock and only the
        first sees the row. The tombstone is written in the same transaction.
        """
        c = t.auth_codes

        async def work(conn: AsyncConnection) -> AuthorizationCode | ConsumedCode | None:
            row = (
                await conn.execute(
                    sa.delete(c)
                    .where(c.c.code == code_hash, c.c.exp > now)
                    .returning(c)
                )
            ).first()
            if row is not None:
                code = _code_from_row(row)
                await conn.execute(
                    _upsert(
                        t.consumed_codes,
                        {
                            "code": code_hash,
                            "grant_id": code.grant_id,
                            "client_id": code.client_id,
                            "exp": remember_until,
                        },
                        "code",
                    )
                )
                return code
            tomb = (
                await conn.execute(
                    sa.select(t.consumed_codes).where(
                        t.consumed_codes.c.code == code_hash, t.consumed_codes.c.exp > now
                    )
                )
            ).first()
            if tomb is None:
                return None
            return ConsumedCode(code_hash, tomb.grant_id, tomb.client_id)

        return await self._transaction(work)

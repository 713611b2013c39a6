"""``SqlTokens``: the ``TokenStore`` port over PostgreSQL (``tokens``, ``refresh_tokens`` and
the reuse markers of rotated refresh tokens, ``refresh_token_reuse``)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import greenlet_spawn

from adapters.sql import tables as t
from adapters.sql.connection import _DRIVER_ERRORS, SqlConnection, _upsert, unavailable
from domain.entities import AccessToken, RefreshTake, RefreshToken, Reused, Taken, Unknown
from domain.errors import StoreUnavailable


def _access_from_row(m: Mapping[Any, Any]) -> AccessToken:
    """An access token from a row mapping (SQLAlchemy ``row._mapping`` or an asyncpg record)."""
    return AccessToken(
        token_hash=m["token_hash"],
        token_display=m["token_display"],
        active=m["active"],
        scope=m["scope"] or "",
        client_id=m["client_id"] or "",
        exp=m["exp"],
        iat=m["iat"] or 0,
        sub=m["sub"],
        token_binding=m["token_binding"],
        mfa_verified=m["mfa_verified"],
        grant_id=m["grant_id"],
        auth_time=m["auth_time"],
        audience=tuple(m["audience"].split()),
        act=tuple(m["act"].split()),
    )


def _refresh_from_row(row: sa.Row[Any]) -> RefreshToken:
    m = row._mapping
    return RefreshToken(
        token_hash=m["refresh_token_hash"],
        access_token_hash=m["access_token_hash"],
        exp=m["exp"],
        iat=m["iat"] or 0,
        grant_id=m["grant_id"] or "",
        client_id=m["client_id"] or "",
        scope=m["scope"] or "",
        sub=m["sub"],
        mfa_verified=m["mfa_verified"],
        auth_time=m["auth_time"],
        binding=m["token_binding"],
        resources=tuple(m["resources"].split()),
    )



@functools.lru_cache(maxsize=16)
def _upsert_with_params(table: sa.Table, columns: tuple[str, ...], key: str) -> sa.Insert:
    """``_upsert`` with a bind parameter per column, built once per table and column set.

    For ``save_tokens`` (every issuance): building the statement per call (``excluded``
    proxies, then a fresh cache key) cost more CPU than the rest of the request.
    """
    stmt = pg_insert(table).values({name: sa.bindparam(name) for name in columns})
    return stmt.on_conflict_do_update(
        index_elements=[key],
        set_={name: stmt.excluded[name] for name in columns if name != key},
    )


# Access tokens are read far more than anything else (every introspection and every
# bearer request): the statement is built once, and runs on the driver connection directly,
# where the driver keeps it prepared. Going through SQLAlchemy's execution layer instead
# costs about three times the CPU of the query itself.
_GET_ACCESS_TOKEN = sa.select(t.tokens).where(
    t.tokens.c.token_hash == sa.bindparam("h"), t.tokens.c.exp > sa.bindparam("now")
)
_GET_ACCESS_TOKEN_SQL = (
    "SELECT token_hash, token_display, active, scope, client_id, exp, iat, sub,"
    " token_binding, mfa_verified, grant_id, auth_time, audience, act"
    " FROM tokens WHERE token_hash = $1 AND exp > $2"
)

# Driver errors that mean the connection itself is gone (a restart, a network cut).
_LOST_CONNECTION: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)



class SqlTokens(SqlConnection):
    """:class:`ports.store.TokenStore` for :class:`~adapters.sql.SqlStore`."""

    async def save_tokens(
        self, access: AccessToken, refresh: RefreshToken | None, now: int
    ) -> None:
        """See :meth:`ports.store.TokenStore.save_tokens`. Both rows in one transaction."""
        access_values: dict[str, Any] = {
            "token_hash": access.token_hash,
            "token_display": access.token_display,
            "active": access.active,
            "scope": access.scope,
            "client_id": access.client_id,
            "exp": access.exp,
            "iat": access.iat,
            "sub": access.sub,
            "token_binding": access.token_binding,
            "mfa_verified": access.mfa_verified,
            "grant_id": access.grant_id,
            "auth_time": access.auth_time,
            "audience": " ".join(access.audience),
            "act": " ".join(access.act),
        }
        refresh_values: dict[str, Any] | None = None
        if refresh is not None:
            refresh_values = {
                "refresh_token_hash": refresh.token_hash,
                "access_token_hash": refresh.access_token_hash,
                "exp": refresh.exp,
                "grant_id": refresh.grant_id,
                "client_id": refresh.client_id,
                "scope": refresh.scope,
                "sub": refresh.sub,
                "mfa_verified": refresh.mfa_verified,
                "iat": refresh.iat,
                "auth_time": refresh.auth_time,
                "token_binding": refresh.binding,
                "resources": " ".join(refresh.resources),
            }

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                _upsert_with_params(t.tokens, tuple(access_values), "token_hash"), access_values
            )
            if refresh_values is not None:
                await conn.execute(
                    _upsert_with_params(
                        t.refresh_tokens, tuple(refresh_values), "refresh_token_hash"
                    ),
                    refresh_values,
                )

        await self._transaction(work)

    async def get_access_token(self, token_hash: str, now: int) -> AccessToken | None:
        """See :meth:`ports.store.TokenStore.get_access_token`. One primary-key SELECT."""
        try:
            fairy = await self._engine.raw_connection()
        except _DRIVER_ERRORS as exc:
            raise unavailable(exc) from exc
        try:
            driver: Any = fairy.driver_connection
            record = await driver.fetchrow(_GET_ACCESS_TOKEN_SQL, token_hash, now)
        except _LOST_CONNECTION:
            await greenlet_spawn(fairy.invalidate)
            # The pooled connection died (a database restart): SQLAlchemy's own path
            # invalidates the rest of the pool and retries on a fresh connection.
            row = await self._first(_GET_ACCESS_TOKEN, {"h": token_hash, "now": now})
            return None if row is None else _access_from_row(row._mapping)
        except asyncpg.PostgresError as exc:
            await greenlet_spawn(fairy.invalidate)
            raise StoreUnavailable(f"the database failed (SQLSTATE {exc.sqlstate})") from exc
        finally:
            # Returning the connection may close it (an overflow connection while the pool
            # is full; an invalidated one), and the asyncpg adapter closes only inside
            # SQLAlchemy's greenlet: called bare, each such close failed with a logged
            # traceback and left the server connection open (48 in 3 s of wrk, 32 conns).
            await greenlet_spawn(fairy.close)
        return None if record is None else _access_from_row(record)

    async def revoke_access_token(self, token_hash: str, now: int) -> bool:
        """See :meth:`ports.store.TokenStore.revoke_access_token`. ``exp`` is untouched."""
        row = await self._first(
            sa.update(t.tokens)
            .where(t.tokens.c.token_hash == token_hash, t.tokens.c.exp > now)
            .values(active=False)
            .returning(t.tokens.c.token_hash)
        )
        return row is not None

    async def get_refresh_token(self, token_hash: str, now: int) -> RefreshToken | None:
        """See :meth:`ports.store.TokenStore.get_refresh_token`."""
        r = t.refresh_tokens
        row = await self._first(
            sa.select(r).where(r.c.refresh_token_hash == token_hash, r.c.exp > now)
        )
        return None if row is None else _refresh_from_row(row)

    async def take_refresh_token(self, token_hash: str, now: int) -> RefreshTake:
        """See :meth:`ports.store.TokenStore.take_refresh_token`.

        One transaction: ``DELETE ... RETURNING`` of the live row (only one concurrent
        caller can see it), the reuse marker, and the revocation of its access token. When
        no live row is found, a live reuse marker revokes the whole grant.
        """
        r, reuse = t.refresh_tokens, t.refresh_token_reuse

        async def work(conn: AsyncConnection) -> RefreshTake:
            row = (
                await conn.execute(
                    sa.delete(r)
                    .where(r.c.refresh_token_hash == token_hash, r.c.exp > now)
                    .returning(r)
                )
            ).first()
            if row is not None:
                token = _refresh_from_row(row)
                # The marker lives exactly as long as the token would have: no longer.
                await conn.execute(
                    _upsert(
                        reuse,
                        {
                            "refresh_token_hash": token_hash,
                            "exp": token.exp,
                            "grant_id": token.grant_id,
                        },
                        "refresh_token_hash",
                    )
                )
                await conn.execute(
                    sa.update(t.tokens)
                    .where(
                        t.tokens.c.token_hash == token.access_token_hash,
                        t.tokens.c.active,
                        t.tokens.c.exp > now,
                    )
                    .values(active=False)
                )
                return Taken(token)
            grant_id = (
                await conn.execute(
                    sa.select(reuse.c.grant_id).where(
                        reuse.c.refresh_token_hash == token_hash, reuse.c.exp > now
                    )
                )
            ).scalar_one_or_none()
            if grant_id is None:
                return Unknown()
            await self._revoke_where(conn, t.tokens.c.grant_id, t.refresh_tokens.c.grant_id,
                                     grant_id, now)
            return Reused(grant_id)

        return await self._transaction(work)

    @staticmethod
    async def _revoke_where(
        conn: AsyncConnection,
        access_key: sa.Column[Any],
        refresh_key: sa.Column[Any],
        value: str,
        now: int,
    ) -> int:
        """One statement per table: deactivate live access tokens, delete live refresh tokens."""
        revoked = await conn.execute(
            sa.update(t.tokens)
            .where(access_key == value, t.tokens.c.active, t.tokens.c.exp > now)
            .values(active=False)
        )
        removed = await conn.execute(
            sa.delete(t.refresh_tokens).where(refresh_key == value, t.refresh_tokens.c.exp > now)
        )
        return int(revoked.rowcount) + int(removed.rowcount)

    async def revoke_grant(self, grant_id: str, now: int) -> int:
        """See :meth:`ports.store.TokenStore.revoke_grant`."""

        async def work(conn: AsyncConnection) -> int:
            return await self._revoke_where(
                conn, t.tokens.c.grant_id, t.refresh_tokens.c.grant_id, grant_id, now
            )

        return await self._transaction(work)

    async def revoke_subject(self, sub: str, now: int) -> int:
        """See :meth:`ports.store.TokenStore.revoke_subject`."""
        c = t.auth_codes

        async def work(conn: AsyncConnection) -> int:
            changed = await self._revoke_where(
                conn, t.tokens.c.sub, t.refresh_tokens.c.sub, sub, now
            )
            # The user's pending codes go in the same transaction. (No index on user_id:
            # codes live minutes and are purged, and deprovisioning is rare.)
            dropped = await conn.execute(sa.delete(c).where(c.c.user_id == sub, c.c.exp > now))
            return changed + int(dropped.rowcount)

        return await self._transaction(work)

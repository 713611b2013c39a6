"""``SqlConnection``: the engine, the transaction plumbing and the error translation that
every part of :class:`~adapters.sql.store.SqlStore` runs on.

Every SQLAlchemy or driver exception is translated here, once, into a domain error; none
crosses the port.

Connections run in autocommit by default, so a single-statement read (the introspection hot
path) is one round trip; multi-statement work opens an explicit READ COMMITTED transaction
and is retried a bounded number of times on serialization failures and deadlocks.

:meth:`SqlConnection.atomically` (the optional ``Atomic`` part of the port) runs several
store calls as one transaction: while a unit is open in the current task, every
``_autocommit`` and ``_transaction`` of this store runs on the unit's connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.errors import (
    Conflict,
    DomainError,
    InvalidReference,
    InvalidValue,
    NotFound,
    StoreUnavailable,
)

_T = TypeVar("_T")

_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock
_UNIQUE_VIOLATION = "23505"
_FOREIGN_KEY_VIOLATION = "23503"
# Class 22, "data exception": the value itself cannot be stored or compared (a NUL in text,
# 22021; a string the driver cannot encode, 22000; a number out of range, 22003). The same
# request fails the same way every time: the caller's input is wrong, the store is fine.
_DATA_EXCEPTION_CLASS = "22"
_MAX_ATTEMPTS = 5


class _Unit:
    """An open :meth:`SqlConnection.atomically`: its connection, begun at the first call."""

    __slots__ = ("conn", "owner")

    def __init__(self, owner: SqlConnection) -> None:
        self.owner = owner
        self.conn: AsyncConnection | None = None


class _RepeatUnit(Exception):
    """The unit must run again from its start (a deadlock, a connection lost before the
    commit). Never caught by use cases: they catch domain errors only."""

    def __init__(self, cause: sa_exc.DBAPIError) -> None:
        super().__init__("repeat the unit")
        self.cause = cause


#: The unit open in the current task, if any (contextvars follow tasks and to_thread).
_UNIT: contextvars.ContextVar[_Unit | None] = contextvars.ContextVar("sql_unit", default=None)


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def _constraint(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    cause = getattr(orig, "__cause__", None)
    name = getattr(cause, "constraint_name", None) or getattr(orig, "constraint_name", None)
    return str(name or "")


def unavailable(exc: BaseException) -> StoreUnavailable:
    """The domain error for any failure of the database or the driver.

    The message names no component: it may reach a log line next to a request id, and the
    HTTP layer shows only a generic text.
    """
    state = _sqlstate(exc)
    suffix = f" (SQLSTATE {state})" if state else ""
    return StoreUnavailable(f"the database is unavailable or failed{suffix}")


# Errors that mean "the database could not do it" rather than a broken rule of ours.
_DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.SQLAlchemyError,
    OSError,
    TimeoutError,
)


def _upsert(table: sa.Table, values: dict[str, Any], key: str) -> sa.Insert:
    stmt = pg_insert(table).values(**values)
    return stmt.on_conflict_do_update(
        index_elements=[key],
        set_={name: stmt.excluded[name] for name in values if name != key},
    )


class SqlConnection:
    """The engine every part of :class:`~adapters.sql.store.SqlStore` shares, and how work
    runs on it: autocommit statements, retried transactions, one error translation."""

    def __init__(self, engine: AsyncEngine, *, migration_url: str | None = None) -> None:
        self._engine = engine
        self._migration_url = migration_url
        self._closed = False

    def _open_unit(self) -> _Unit | None:
        unit = _UNIT.get()
        return unit if unit is not None and unit.owner is self else None

    async def _in_unit(
        self, unit: _Unit, work: Callable[[AsyncConnection], Awaitable[_T]]
    ) -> _T:
        """Run ``work`` on the unit's connection, beginning its transaction on first use
        (so a unit holds no connection while its caller hashes a password first)."""
        try:
            if unit.conn is None:
                conn = await self._engine.connect()
                unit.conn = conn
                await conn.execution_options(isolation_level="READ COMMITTED")
                await conn.begin()
            return await work(unit.conn)
        except DomainError:
            raise
        except sa_exc.DBAPIError as exc:
            if _sqlstate(exc) in _RETRYABLE_SQLSTATES or exc.connection_invalidated:
                raise _RepeatUnit(exc) from exc
            raise self._translate(exc) from exc
        except _DRIVER_ERRORS as exc:
            raise unavailable(exc) from exc

    async def atomically(self, work: Callable[[], Awaitable[_T]]) -> _T:
        """See :meth:`ports.store.Atomic.atomically`. READ COMMITTED, like ``_transaction``:
        each statement sees what others committed before it, so a use case's own
        compare-and-set retries (PATCH) still see the competing write."""
        if self._open_unit() is not None:
            return await work()
        attempt = 0
        while True:
            attempt += 1
            unit = _Unit(self)
            token = _UNIT.set(unit)
            try:
                result = await work()
                if unit.conn is not None:
                    await unit.conn.commit()
                return result
            except _RepeatUnit as repeat:
                if attempt >= _MAX_ATTEMPTS:
                    raise self._translate(repeat.cause) from repeat.cause
                await asyncio.sleep(0.005 * 2**attempt)
            except DomainError:
                raise
            except sa_exc.DBAPIError as exc:  # from the commit: the outcome is unknown
                raise self._translate(exc) from exc
            except _DRIVER_ERRORS as exc:
                raise unavailable(exc) from exc
            finally:
                _UNIT.reset(token)
                if unit.conn is not None:
                    # Closing returns the connection to the pool, rolling back whatever
                    # was not committed; a dead connection is discarded by the pool.
                    with contextlib.suppress(*_DRIVER_ERRORS):
                        await unit.conn.close()

    async def _autocommit(self, work: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """Run ``work`` on an autocommit connection: each statement commits by itself.

        A connection found dead (the database restarted since it was opened) invalidates
        the pool and ``work`` runs once more on a fresh one: that is how the store recovers
        without pinging every connection at checkout, which would double the round trips
        of the hot path. ``work`` must therefore be safe to repeat (reads, idempotent or
        fail-closed writes).
        """
        unit = self._open_unit()
        if unit is not None:
            return await self._in_unit(unit, work)
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._engine.connect() as conn:
                    return await work(conn)
            except DomainError:
                raise
            except sa_exc.DBAPIError as exc:
                if exc.connection_invalidated and attempt == 1:
                    continue
                raise self._translate(exc) from exc
            except _DRIVER_ERRORS as exc:
                raise unavailable(exc) from exc

    async def _first(
        self, stmt: sa.Executable, params: dict[str, Any] | None = None
    ) -> sa.Row[Any] | None:
        """The first row of one autocommit statement, or None."""

        async def work(conn: AsyncConnection) -> sa.Row[Any] | None:
            return (await conn.execute(stmt, params)).first()

        return await self._autocommit(work)

    async def _transaction(self, work: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """Run ``work`` in one READ COMMITTED transaction, retrying transient conflicts.

        ``work`` may be called more than once, so it must do nothing but database work.
        Domain errors raised by ``work`` roll the transaction back and propagate. A
        connection found dead before the commit is retried once on a fresh one (nothing
        was committed); a failure during the commit itself is never retried, since the
        outcome is unknown. Inside :meth:`atomically`, ``work`` joins the unit's transaction.
        """
        unit = self._open_unit()
        if unit is not None:
            return await self._in_unit(unit, work)
        attempt = 0
        while True:
            attempt += 1
            committing = False
            try:
                async with self._engine.connect() as conn:
                    await conn.execution_options(isolation_level="READ COMMITTED")
                    async with conn.begin():
                        result = await work(conn)
                        committing = True
                    return result
            except DomainError:
                raise
            except sa_exc.DBAPIError as exc:
                if _sqlstate(exc) in _RETRYABLE_SQLSTATES and attempt < _MAX_ATTEMPTS:
                    # Short, growing pause so that the competing transaction can finish.
                    await asyncio.sleep(0.005 * 2**attempt)
                    continue
                if exc.connection_invalidated and not committing and attempt == 1:
                    continue
                raise self._translate(exc) from exc
            except _DRIVER_ERRORS as exc:
                raise unavailable(exc) from exc

    @staticmethod
    def _translate(exc: sa_exc.DBAPIError) -> DomainError:
        state = _sqlstate(exc)
        constraint = _constraint(exc)
        if state == _UNIQUE_VIOLATION:
            if constraint == "oauth_clients_resource_uri_key":
                return Conflict("another client has this resource_uri", "resource_uri")
            if constraint == "oauth_clients_pkey":
                return Conflict("a client with this client_id exists", "client_id")
            if constraint == "sessions_sid_key":
                return Conflict("another session has this sid", "sid")
            if constraint.startswith("device_authorizations"):
                return Conflict("a live device authorization holds this code", "user_code")
            if constraint == "passkeys_pkey":
                return Conflict("that passkey is registered already", "credential_id")
            if constraint.endswith("_pkey"):
                return Conflict("an entity with this id exists", "id")
            if "display_name" in constraint:
                return Conflict("displayName is already taken", "displayName")
            return Conflict("userName is already taken", "userName")
        if state == _FOREIGN_KEY_VIOLATION and constraint.startswith("group_members"):
            return InvalidReference("a member is not an existing user")
        if state == _FOREIGN_KEY_VIOLATION and constraint.startswith(
            ("user_credentials", "passkeys", "recovery_codes")
        ):
            return NotFound("no such user")
        if state is not None and state.startswith(_DATA_EXCEPTION_CLASS):
            return InvalidValue(f"a value cannot be stored (SQLSTATE {state}): it holds a "
                                "character or a number the database does not accept")
        return unavailable(exc)

"""``SqlStore``: the ``Store`` port over PostgreSQL, with SQLAlchemy 2 Core and asyncpg.

Single-use operations get their atomicity from PostgreSQL itself (``DELETE ... RETURNING``,
``INSERT ... ON CONFLICT ... RETURNING``, conditional ``UPDATE``), never from a read
followed by a write. Every SQLAlchemy or driver exception is translated here, once, into a
domain error; none crosses the port.

Connections run in autocommit by default, so a single-statement read (the introspection hot
path) is one round trip; multi-statement work opens an explicit READ COMMITTED transaction
and is retried a bounded number of times on serialization failures and deadlocks.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from adapters.sql import tables as t
from adapters.sql.filtering import fold, group_clause, user_clause
from adapters.sql.transfer import SqlTransfer
from domain.entities import (
    AccessToken,
    AuthorizationCode,
    ConsumedCode,
    Credentials,
    Email,
    Group,
    GroupRef,
    Member,
    Name,
    Page,
    PurgeCounts,
    RefreshTake,
    RefreshToken,
    Reused,
    StoreCounts,
    Taken,
    Unknown,
    User,
)
from domain.errors import (
    Conflict,
    DomainError,
    InvalidReference,
    InvalidValue,
    NotFound,
    PreconditionFailed,
    StoreMisconfigured,
    StoreUnavailable,
)
from domain.filters import ListQuery
from migrations.runner import migrate as run_migrations

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock
_UNIQUE_VIOLATION = "23505"
_FOREIGN_KEY_VIOLATION = "23503"
# Class 22, "data exception": the value itself cannot be stored or compared (a NUL in text,
# 22021; a string the driver cannot encode, 22000; a number out of range, 22003). The same
# request fails the same way every time: the caller's input is wrong, the store is fine.
_DATA_EXCEPTION_CLASS = "22"
_MAX_ATTEMPTS = 5
_HEALTH_TIMEOUT_SECONDS = 2.0

# Stable order across backends: code-point order, as Python sorts strings.
_BY_CODE_POINT = "C"


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


def _user_values(user: User) -> dict[str, Any]:
    name = user.name or Name()
    return {
        "user_name": user.user_name,
        "active": user.active,
        "external_id": user.external_id,
        "display_name": user.display_name,
        "given_name": name.given_name,
        "family_name": name.family_name,
        "formatted_name": name.formatted,
        "emails": [
            {"value": e.value, "type": e.type, "primary": e.primary} for e in user.emails
        ],
        "last_modified": user.last_modified,
    }


def _user_from_row(row: sa.Row[Any], groups: Sequence[GroupRef] = ()) -> User:
    m = row._mapping
    name = None
    if m["given_name"] is not None or m["family_name"] is not None or (
        m["formatted_name"] is not None
    ):
        name = Name(
            formatted=m["formatted_name"],
            given_name=m["given_name"],
            family_name=m["family_name"],
        )
    emails = tuple(
        Email(value=e["value"], type=e.get("type"), primary=bool(e.get("primary", False)))
        for e in m["emails"] or ()
    )
    return User(
        id=m["id"],
        user_name=m["user_name"],
        external_id=m["external_id"],
        display_name=m["display_name"],
        name=name,
        emails=emails,
        active=m["active"],
        groups=tuple(groups),
        created=m["created"],
        last_modified=m["last_modified"],
        version=m["version"],
    )


def _group_from_row(row: sa.Row[Any], members: Sequence[Member] = ()) -> Group:
    m = row._mapping
    return Group(
        id=m["id"],
        display_name=m["display_name"],
        external_id=m["external_id"],
        members=tuple(members),
        created=m["created"],
        last_modified=m["last_modified"],
        version=m["version"],
    )


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
    )


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
    )


def _unique_members(members: Sequence[Member]) -> list[Member]:
    seen: dict[str, Member] = {}
    for member in members:
        seen.setdefault(member.value, member)
    return list(seen.values())


def _upsert(table: sa.Table, values: dict[str, Any], key: str) -> sa.Insert:
    stmt = pg_insert(table).values(**values)
    return stmt.on_conflict_do_update(
        index_elements=[key],
        set_={name: stmt.excluded[name] for name in values if name != key},
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
    " token_binding, mfa_verified, grant_id, auth_time"
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


class SqlStore(SqlTransfer):
    """The ``Store`` port over PostgreSQL. Build it with :func:`adapters.sql.open_sql_store`.

    Holds one SQLAlchemy ``AsyncEngine`` (a pool of asyncpg connections, not pinged on
    checkout: a connection found dead on use invalidates the pool and the work is retried
    once where that is safe, so the store recovers by itself after a database restart).
    """

    def __init__(self, engine: AsyncEngine, *, migration_url: str | None = None) -> None:
        self._engine = engine
        self._migration_url = migration_url
        self._closed = False

    async def migrate(self) -> list[str]:
        """See :class:`ports.store.Migratable`: the numbered files of ``migrations/``.

        They run over their own connection to ``migration_url`` (the URL the store was
        opened with), under an advisory lock, so concurrent runners are safe.
        """
        if self._migration_url is None:
            raise StoreMisconfigured("this store was opened without a URL to migrate with")
        return await run_migrations(self._migration_url)

    # Plumbing

    async def _autocommit(self, work: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """Run ``work`` on an autocommit connection: each statement commits by itself.

        A connection found dead (the database restarted since it was opened) invalidates
        the pool and ``work`` runs once more on a fresh one: that is how the store recovers
        without pinging every connection at checkout, which would double the round trips
        of the hot path. ``work`` must therefore be safe to repeat (reads, idempotent or
        fail-closed writes).
        """
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
        outcome is unknown.
        """
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
            if constraint.endswith("_pkey"):
                return Conflict("an entity with this id exists", "id")
            if "display_name" in constraint:
                return Conflict("displayName is already taken", "displayName")
            return Conflict("userName is already taken", "userName")
        if state == _FOREIGN_KEY_VIOLATION and constraint.startswith("group_members"):
            return InvalidReference("a member is not an existing user")
        if state == _FOREIGN_KEY_VIOLATION and constraint.startswith("user_credentials"):
            return NotFound("no such user")
        if state is not None and state.startswith(_DATA_EXCEPTION_CLASS):
            return InvalidValue(f"a value cannot be stored (SQLSTATE {state}): it holds a "
                                "character or a number the database does not accept")
        return unavailable(exc)

    # Users

    async def _groups_of(
        self, conn: AsyncConnection, user_ids: Sequence[str]
    ) -> dict[str, list[GroupRef]]:
        if not user_ids:
            return {}
        gm, g = t.group_members, t.groups
        rows = await conn.execute(
            sa.select(gm.c.user_id, g.c.id, g.c.display_name)
            .join(g, g.c.id == gm.c.group_id)
            .where(gm.c.user_id.in_(user_ids))
            .order_by(gm.c.group_id.collate(_BY_CODE_POINT))
        )
        found: dict[str, list[GroupRef]] = {}
        for user_id, group_id, display in rows:
            found.setdefault(user_id, []).append(GroupRef(value=group_id, display=display))
        return found

    async def _load_user(self, conn: AsyncConnection, where: sa.ColumnElement[bool]) -> User | None:
        row = (await conn.execute(sa.select(t.users).where(where))).first()
        if row is None:
            return None
        groups = await self._groups_of(conn, [row.id])
        return _user_from_row(row, groups.get(row.id, ()))

    async def create_user(self, user: User, *, password_hash: str | None = None) -> User:
        """See :meth:`ports.store.UserStore.create_user`."""
        user_id = user.id or str(uuid.uuid4())

        async def work(conn: AsyncConnection) -> User:
            values = _user_values(user) | {"id": user_id, "created": user.created, "version": 1}
            row = (
                await conn.execute(sa.insert(t.users).values(**values).returning(t.users))
            ).one()
            if password_hash is not None:
                await conn.execute(
                    sa.insert(t.user_credentials).values(
                        user_id=user_id, password_hash=password_hash, totp_confirmed=False
                    )
                )
            return _user_from_row(row)

        return await self._transaction(work)

    async def get_user(self, user_id: str) -> User:
        """See :meth:`ports.store.UserStore.get_user`."""

        async def work(conn: AsyncConnection) -> User | None:
            return await self._load_user(conn, t.users.c.id == user_id)

        user = await self._autocommit(work)
        if user is None:
            raise NotFound(f"no user {user_id}")
        return user

    async def find_user_by_name(self, user_name: str) -> User | None:
        """See :meth:`ports.store.UserStore.find_user_by_name`."""

        async def work(conn: AsyncConnection) -> User | None:
            return await self._load_user(
                conn, fold(t.users.c.user_name) == fold(sa.literal(user_name, sa.Text))
            )

        return await self._autocommit(work)

    async def list_users(self, query: ListQuery) -> Page[User]:
        """See :meth:`ports.store.UserStore.list_users`. The filter runs in SQL."""
        where = user_clause(query.filter) if query.filter is not None else sa.true()
        start = max(query.start_index, 1)

        async def work(conn: AsyncConnection) -> Page[User]:
            total = (
                await conn.execute(sa.select(sa.func.count()).select_from(t.users).where(where))
            ).scalar_one()
            items: tuple[User, ...] = ()
            if query.count > 0 and total >= start:
                rows = (
                    await conn.execute(
                        sa.select(t.users)
                        .where(where)
                        .order_by(t.users.c.id.collate(_BY_CODE_POINT))
                        .offset(start - 1)
                        .limit(query.count)
                    )
                ).all()
                groups = await self._groups_of(conn, [row.id for row in rows])
                items = tuple(_user_from_row(row, groups.get(row.id, ())) for row in rows)
            return Page(items=items, total=int(total), start_index=start)

        return await self._autocommit(work)

    async def _missing_or_stale(
        self, conn: AsyncConnection, table: sa.Table, entity_id: str, expected: int | None,
        what: str,
    ) -> DomainError:
        """Why a conditional write matched no row: no such entity, or another version."""
        version = (
            await conn.execute(sa.select(table.c.version).where(table.c.id == entity_id))
        ).scalar_one_or_none()
        if version is None:
            return NotFound(f"no {what} {entity_id}")
        return PreconditionFailed(f"{what} version is {version}, not {expected}")

    async def replace_user(self, user: User, *, expected_version: int | None = None) -> User:
        """See :meth:`ports.store.UserStore.replace_user`."""

        async def work(conn: AsyncConnection) -> User:
            where = t.users.c.id == user.id
            if expected_version is not None:
                where = sa.and_(where, t.users.c.version == expected_version)
            row = (
                await conn.execute(
                    sa.update(t.users)
                    .where(where)
                    .values(**_user_values(user), version=t.users.c.version + 1)
                    .returning(t.users)
                )
            ).first()
            if row is None:
                raise await self._missing_or_stale(
                    conn, t.users, user.id, expected_version, "user"
                )
            groups = await self._groups_of(conn, [user.id])
            return _user_from_row(row, groups.get(user.id, ()))

        return await self._transaction(work)

    async def delete_user(self, user_id: str, *, expected_version: int | None = None) -> None:
        """See :meth:`ports.store.UserStore.delete_user`. Credentials and memberships cascade."""
        await self._delete(t.users, user_id, expected_version, "user")

    async def _delete(
        self, table: sa.Table, entity_id: str, expected: int | None, what: str
    ) -> None:
        async def work(conn: AsyncConnection) -> None:
            where = table.c.id == entity_id
            if expected is not None:
                where = sa.and_(where, table.c.version == expected)
            deleted = (
                await conn.execute(sa.delete(table).where(where).returning(table.c.id))
            ).first()
            if deleted is None:
                raise await self._missing_or_stale(conn, table, entity_id, expected, what)

        await self._transaction(work)

    # Groups

    async def _members_of(
        self, conn: AsyncConnection, group_ids: Sequence[str]
    ) -> dict[str, list[Member]]:
        if not group_ids:
            return {}
        gm, u = t.group_members, t.users
        rows = await conn.execute(
            sa.select(gm.c.group_id, gm.c.user_id, u.c.user_name, gm.c.member_type)
            .join(u, u.c.id == gm.c.user_id)
            .where(gm.c.group_id.in_(group_ids))
            .order_by(gm.c.group_id, gm.c.position)
        )
        found: dict[str, list[Member]] = {}
        for group_id, user_id, user_name, member_type in rows:
            found.setdefault(group_id, []).append(
                Member(value=user_id, display=user_name, type=member_type)
            )
        return found

    async def _write_members(
        self, conn: AsyncConnection, group_id: str, members: Sequence[Member]
    ) -> list[Member]:
        unique = _unique_members(members)
        if unique:
            await conn.execute(
                sa.insert(t.group_members),
                [
                    {
                        "group_id": group_id,
                        "user_id": m.value,
                        "position": i,
                        "member_type": m.type,
                    }
                    for i, m in enumerate(unique)
                ],
            )
        return (await self._members_of(conn, [group_id])).get(group_id, [])

    async def create_group(self, group: Group) -> Group:
        """See :meth:`ports.store.GroupStore.create_group`."""
        group_id = group.id or str(uuid.uuid4())

        async def work(conn: AsyncConnection) -> Group:
            row = (
                await conn.execute(
                    sa.insert(t.groups)
                    .values(
                        id=group_id,
                        display_name=group.display_name,
                        external_id=group.external_id,
                        created=group.created,
                        last_modified=group.last_modified,
                        version=1,
                    )
                    .returning(t.groups)
                )
            ).one()
            members = await self._write_members(conn, group_id, group.members)
            return _group_from_row(row, members)

        return await self._transaction(work)

    async def get_group(self, group_id: str) -> Group:
        """See :meth:`ports.store.GroupStore.get_group`."""

        async def work(conn: AsyncConnection) -> Group:
            row = (await conn.execute(sa.select(t.groups).where(t.groups.c.id == group_id))).first()
            if row is None:
                raise NotFound(f"no group {group_id}")
            members = await self._members_of(conn, [group_id])
            return _group_from_row(row, members.get(group_id, ()))

        return await self._autocommit(work)

    async def list_groups(self, query: ListQuery) -> Page[Group]:
        """See :meth:`ports.store.GroupStore.list_groups`. The filter runs in SQL."""
        where = group_clause(query.filter) if query.filter is not None else sa.true()
        start = max(query.start_index, 1)

        async def work(conn: AsyncConnection) -> Page[Group]:
            total = (
                await conn.execute(sa.select(sa.func.count()).select_from(t.groups).where(where))
            ).scalar_one()
            items: tuple[Group, ...] = ()
            if query.count > 0 and total >= start:
                rows = (
                    await conn.execute(
                        sa.select(t.groups)
                        .where(where)
                        .order_by(t.groups.c.id.collate(_BY_CODE_POINT))
                        .offset(start - 1)
                        .limit(query.count)
                    )
                ).all()
                members = await self._members_of(conn, [row.id for row in rows])
                items = tuple(_group_from_row(row, members.get(row.id, ())) for row in rows)
            return Page(items=items, total=int(total), start_index=start)

        return await self._autocommit(work)

    async def replace_group(self, group: Group, *, expected_version: int | None = None) -> Group:
        """See :meth:`ports.store.GroupStore.replace_group`."""

        async def work(conn: AsyncConnection) -> Group:
            where = t.groups.c.id == group.id
            if expected_version is not None:
                where = sa.and_(where, t.groups.c.version == expected_version)
            row = (
                await conn.execute(
                    sa.update(t.groups)
                    .where(where)
                    .values(
                        display_name=group.display_name,
                        external_id=group.external_id,
                        last_modified=group.last_modified,
                        version=t.groups.c.version + 1,
                    )
                    .returning(t.groups)
                )
            ).first()
            if row is None:
                raise await self._missing_or_stale(
                    conn, t.groups, group.id, expected_version, "group"
                )
            await conn.execute(
                sa.delete(t.group_members).where(t.group_members.c.group_id == group.id)
            )
            members = await self._write_members(conn, group.id, group.members)
            return _group_from_row(row, members)

        return await self._transaction(work)

    async def delete_group(self, group_id: str, *, expected_version: int | None = None) -> None:
        """See :meth:`ports.store.GroupStore.delete_group`."""
        await self._delete(t.groups, group_id, expected_version, "group")

    # Credentials

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

    # Codes

    async def save_code(self, code: AuthorizationCode, now: int) -> None:
        """See :meth:`ports.store.CodeStore.save_code`. ``code`` is keyed by its SHA-256."""
        values = {
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
        }
        stmt = _upsert(t.auth_codes, values, "code")

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

    # Tokens

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

    # Ephemeral state

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

    # Administration

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

        stmt = sa.select(
            every(t.users), every(t.groups), live(t.tokens), live(t.refresh_tokens),
            live(t.auth_codes),
        )
        row = await self._first(stmt)
        # An aggregate always yields one row; the fallback only satisfies the type.
        values: tuple[Any, ...] = tuple(row) if row is not None else (0, 0, 0, 0, 0)
        return StoreCounts(
            users=values[0], groups=values[1], access_tokens=values[2],
            refresh_tokens=values[3], codes=values[4],
        )

    async def _purge_table(self, table: sa.Table, now: int, batch_size: int) -> int:
        """Delete expired rows ``batch_size`` at a time, each batch its own short statement."""
        ctid: sa.ColumnClause[Any] = sa.column("ctid")
        batch = (
            sa.select(ctid).select_from(table).where(table.c.exp <= now).limit(batch_size)
        ).scalar_subquery()
        stmt = sa.delete(table).where(sa.literal_column("ctid").in_(batch), table.c.exp <= now)
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

        Tombstones count as ``codes``; claims and counters as ``other``.
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
        )

    async def close(self) -> None:
        """See :meth:`ports.store.StoreAdmin.close`."""
        if not self._closed:
            self._closed = True
            await self._engine.dispose()

"""``SqlIdentities``: the ``UserStore`` and ``GroupStore`` ports (users, groups and their
memberships) over PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sql import tables as t
from adapters.sql.connection import SqlConnection
from adapters.sql.filtering import fold, group_clause, user_clause
from adapters.sql.sorting import group_order, user_order
from domain.entities import (
    Address,
    Email,
    EnterpriseUser,
    Group,
    GroupRef,
    Manager,
    Member,
    MultiValue,
    Name,
    Page,
    User,
)
from domain.errors import DomainError, NotFound, PreconditionFailed
from domain.filters import ListQuery

# Stable order across backends: code-point order, as Python sorts strings.
_BY_CODE_POINT = "C"


_NO_ENTERPRISE = EnterpriseUser()


def _json_list(values: Sequence[msgspec.Struct]) -> list[Any]:
    return cast(list[Any], msgspec.to_builtins(list(values)))


def _user_values(user: User) -> dict[str, Any]:
    name = user.name or Name()
    enterprise = user.enterprise or _NO_ENTERPRISE
    return {
        "middle_name": name.middle_name,
        "honorific_prefix": name.honorific_prefix,
        "honorific_suffix": name.honorific_suffix,
        "nick_name": user.nick_name,
        "profile_url": user.profile_url,
        "title": user.title,
        "user_type": user.user_type,
        "preferred_language": user.preferred_language,
        "locale": user.locale,
        "timezone": user.timezone,
        "phone_numbers": _json_list(user.phone_numbers),
        "addresses": _json_list(user.addresses),
        "photos": _json_list(user.photos),
        "x509_certificates": _json_list(user.x509_certificates),
        "employee_number": enterprise.employee_number,
        "cost_center": enterprise.cost_center,
        "organization": enterprise.organization,
        "division": enterprise.division,
        "department": enterprise.department,
        "manager_id": enterprise.manager.value if enterprise.manager is not None else None,
        "user_name": user.user_name,
        # Unassigned (None) is stored as false, flagged by active_assigned (migration 0011).
        "active": bool(user.active),
        "active_assigned": user.active is not None,
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


_NAME_COLUMNS = ("formatted_name", "given_name", "family_name", "middle_name",
                 "honorific_prefix", "honorific_suffix")


def _enterprise_from_row(m: Any, manager_display: str | None) -> EnterpriseUser | None:
    manager_id = m["manager_id"]
    enterprise = EnterpriseUser(
        employee_number=m["employee_number"],
        cost_center=m["cost_center"],
        organization=m["organization"],
        division=m["division"],
        department=m["department"],
        manager=None if manager_id is None else Manager(manager_id, manager_display),
    )
    return None if enterprise == _NO_ENTERPRISE else enterprise


def _user_from_row(row: sa.Row[Any], groups: Sequence[GroupRef] = (),
                   manager_display: str | None = None) -> User:
    m = row._mapping
    name = None
    if any(m[column] is not None for column in _NAME_COLUMNS):
        name = Name(
            formatted=m["formatted_name"],
            given_name=m["given_name"],
            family_name=m["family_name"],
            middle_name=m["middle_name"],
            honorific_prefix=m["honorific_prefix"],
            honorific_suffix=m["honorific_suffix"],
        )
    if manager_display is None:
        manager_display = m.get(_MANAGER_DISPLAY)
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
        active=m["active"] if m["active_assigned"] else None,
        groups=tuple(groups),
        created=m["created"],
        last_modified=m["last_modified"],
        version=m["version"],
        nick_name=m["nick_name"],
        profile_url=m["profile_url"],
        title=m["title"],
        user_type=m["user_type"],
        preferred_language=m["preferred_language"],
        locale=m["locale"],
        timezone=m["timezone"],
        phone_numbers=msgspec.convert(m["phone_numbers"] or (), tuple[MultiValue, ...]),
        addresses=msgspec.convert(m["addresses"] or (), tuple[Address, ...]),
        photos=msgspec.convert(m["photos"] or (), tuple[MultiValue, ...]),
        x509_certificates=msgspec.convert(m["x509_certificates"] or (), tuple[MultiValue, ...]),
        enterprise=_enterprise_from_row(m, manager_display),
    )


#: The label of the manager's displayName in user reads (joined, see ``_user_select``).
_MANAGER_DISPLAY = "manager_display_name"
_BOSS = t.users.alias("manager")


def _user_select() -> sa.Select[Any]:
    """Users as read: each with its manager's displayName (RFC 7643 4.3, read-only)."""
    return sa.select(t.users, _BOSS.c.display_name.label(_MANAGER_DISPLAY)).select_from(
        t.users.outerjoin(_BOSS, _BOSS.c.id == t.users.c.manager_id))


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


def _unique_members(members: Sequence[Member]) -> list[Member]:
    seen: dict[str, Member] = {}
    for member in members:
        seen.setdefault(member.value, member)
    return list(seen.values())



# Adding or removing members is one statement whatever the size of the group: it locks the
# group row (checking the version when asked), changes only the given memberships, and
# bumps the version only when one changed. The new members go after the last position,
# found through the (group_id, position) index. Under READ COMMITTED a concurrent change
# waits on the row lock, and then sees the new version (a stale If-Match fails cleanly).
_ADD_MEMBERS = sa.text("""
WITH
  target AS (
    SELECT id FROM groups
    WHERE id = :group_id AND (:any_version OR version = :expected)
    FOR UPDATE
  ),
  changed AS (
    INSERT INTO group_members (group_id, user_id, position, member_type)
    SELECT target.id, added.user_id,
           (SELECT coalesce(max(position), -1) FROM group_members
            WHERE group_id = :group_id) + added.ordinal::integer,
           'User'
    FROM target, unnest(CAST(:user_ids AS text[])) WITH ORDINALITY AS added(user_id, ordinal)
    ON CONFLICT (group_id, user_id) DO NOTHING
    RETURNING user_id
  ),
  bumped AS (
    UPDATE groups SET version = version + 1, last_modified = :last_modified
    WHERE id = (SELECT id FROM target) AND EXISTS (SELECT 1 FROM changed)
    RETURNING groups.*
  )
SELECT * FROM bumped
UNION ALL
SELECT groups.* FROM groups
WHERE id = (SELECT id FROM target) AND NOT EXISTS (SELECT 1 FROM bumped)
""").columns(*t.groups.c)
# The same shape, deleting instead of inserting.
_REMOVE_MEMBERS = sa.text("""
WITH
  target AS (
    SELECT id FROM groups
    WHERE id = :group_id AND (:any_version OR version = :expected)
    FOR UPDATE
  ),
  changed AS (
    DELETE FROM group_members
    WHERE group_id = (SELECT id FROM target) AND user_id = ANY(CAST(:user_ids AS text[]))
    RETURNING user_id
  ),
  bumped AS (
    UPDATE groups SET version = version + 1, last_modified = :last_modified
    WHERE id = (SELECT id FROM target) AND EXISTS (SELECT 1 FROM changed)
    RETURNING groups.*
  )
SELECT * FROM bumped
UNION ALL
SELECT groups.* FROM groups
WHERE id = (SELECT id FROM target) AND NOT EXISTS (SELECT 1 FROM bumped)
""").columns(*t.groups.c)


class SqlIdentities(SqlConnection):
    """:class:`ports.store.UserStore` and ``GroupStore`` for :class:`~adapters.sql.SqlStore`."""

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

    async def _manager_display(self, conn: AsyncConnection, row: sa.Row[Any]) -> str | None:
        """The displayName of the manager of a user row just written (None without one)."""
        manager_id = row._mapping["manager_id"]
        if manager_id is None:
            return None
        return cast(str | None, (await conn.execute(
            sa.select(t.users.c.display_name).where(t.users.c.id == manager_id)
        )).scalar_one_or_none())

    async def _load_user(self, conn: AsyncConnection, where: sa.ColumnElement[bool]) -> User | None:
        row = (await conn.execute(_user_select().where(where))).first()
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
            return _user_from_row(row, (), await self._manager_display(conn, row))

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
        order = user_order(query.sort)
        start = max(query.start_index, 1)

        async def work(conn: AsyncConnection) -> Page[User]:
            total = (
                await conn.execute(sa.select(sa.func.count()).select_from(t.users).where(where))
            ).scalar_one()
            items: tuple[User, ...] = ()
            if query.count > 0 and total >= start:
                rows = (
                    await conn.execute(
                        _user_select()
                        .where(where)
                        .order_by(*order)
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
            return _user_from_row(row, groups.get(user.id, ()),
                                  await self._manager_display(conn, row))

        return await self._transaction(work)

    async def delete_user(self, user_id: str, *, expected_version: int | None = None) -> None:
        """See :meth:`ports.store.UserStore.delete_user`. Credentials, passkeys, recovery
        codes and memberships cascade (``ON DELETE CASCADE``)."""
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
            .order_by(gm.c.group_id, gm.c.position, gm.c.user_id.collate(_BY_CODE_POINT))
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

    async def get_group(self, group_id: str, *, members: bool = True) -> Group:
        """See :meth:`ports.store.GroupStore.get_group`."""

        async def work(conn: AsyncConnection) -> Group:
            row = (await conn.execute(sa.select(t.groups).where(t.groups.c.id == group_id))).first()
            if row is None:
                raise NotFound(f"no group {group_id}")
            if not members:
                return _group_from_row(row)
            found = await self._members_of(conn, [group_id])
            return _group_from_row(row, found.get(group_id, ()))

        return await self._autocommit(work)

    async def list_groups(self, query: ListQuery, *, members: bool = True) -> Page[Group]:
        """See :meth:`ports.store.GroupStore.list_groups`. The filter runs in SQL."""
        where = group_clause(query.filter) if query.filter is not None else sa.true()
        order = group_order(query.sort)
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
                        .order_by(*order)
                        .offset(start - 1)
                        .limit(query.count)
                    )
                ).all()
                found = (await self._members_of(conn, [row.id for row in rows])
                         if members else {})
                items = tuple(_group_from_row(row, found.get(row.id, ())) for row in rows)
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

    async def add_members(
        self, group_id: str, user_ids: tuple[str, ...], *, last_modified: int,
        expected_version: int | None = None,
    ) -> Group:
        """See :meth:`ports.store.GroupStore.add_members`: one statement (``_ADD_MEMBERS``)."""
        return await self._change_members(
            _ADD_MEMBERS, group_id, user_ids, last_modified, expected_version)

    async def remove_members(
        self, group_id: str, user_ids: tuple[str, ...], *, last_modified: int,
        expected_version: int | None = None,
    ) -> Group:
        """See :meth:`ports.store.GroupStore.remove_members`: one statement."""
        return await self._change_members(
            _REMOVE_MEMBERS, group_id, user_ids, last_modified, expected_version)

    async def _change_members(
        self, statement: sa.Executable, group_id: str, user_ids: tuple[str, ...],
        last_modified: int, expected_version: int | None,
    ) -> Group:
        params = {
            "group_id": group_id,
            "user_ids": list(dict.fromkeys(user_ids)),
            "last_modified": last_modified,
            "any_version": expected_version is None,
            "expected": expected_version if expected_version is not None else 0,
        }

        async def work(conn: AsyncConnection) -> Group:
            row = (await conn.execute(statement, params)).first()
            if row is None:
                raise await self._missing_or_stale(
                    conn, t.groups, group_id, expected_version, "group")
            return _group_from_row(row)

        # One statement, atomic by itself: autocommit, so no BEGIN/COMMIT round trips.
        return await self._autocommit(work)

    async def delete_group(self, group_id: str, *, expected_version: int | None = None) -> None:
        """See :meth:`ports.store.GroupStore.delete_group`."""
        await self._delete(t.groups, group_id, expected_version, "group")

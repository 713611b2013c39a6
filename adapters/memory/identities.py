"""``MemoryIdentities``: users, groups and memberships in process memory.

With the credentials it inherits from :class:`~adapters.memory.credentials.MemoryCredentials`,
this is the identity half of both the ``memory`` and the ``hybrid`` adapters. Every method
completes without awaiting anything, so on one event loop each call is atomic.
"""

from __future__ import annotations

import uuid
from typing import TypeVar

import msgspec

from adapters.memory.credentials import MemoryCredentials
from adapters.memory.filtering import matches
from adapters.memory.state import _fold
from domain.entities import Credentials, Group, GroupRef, Manager, Member, Page, User
from domain.errors import Conflict, InvalidReference, NotFound, PreconditionFailed
from domain.filters import ListQuery
from domain.scim.sorting import sort_entities

_R = TypeVar("_R", User, Group)


def _new_id() -> str:
    return str(uuid.uuid4())


def _check_version(stored: int, expected: int | None, what: str) -> None:
    if expected is not None and stored != expected:
        raise PreconditionFailed(f"{what} version is {stored}, not {expected}")


def stored_form(user: User) -> User:
    """``user`` without what reads derive: groups, the manager's displayName."""
    enterprise = user.enterprise
    if enterprise is not None and enterprise.manager is not None and (
        enterprise.manager.display_name is not None
    ):
        enterprise = msgspec.structs.replace(
            enterprise, manager=Manager(value=enterprise.manager.value))
    if user.groups or enterprise is not user.enterprise:
        return msgspec.structs.replace(user, groups=(), enterprise=enterprise)
    return user


def _page(items: list[_R], query: ListQuery) -> Page[_R]:
    items = sort_entities(items, query.sort)
    start = max(query.start_index, 1)
    window = items[start - 1 : start - 1 + max(query.count, 0)] if query.count > 0 else []
    return Page(items=tuple(window), total=len(items), start_index=start)


class MemoryIdentities(MemoryCredentials):
    """:class:`ports.store.UserStore` and ``GroupStore`` (and, inherited,
    ``CredentialStore``) over one :class:`~adapters.memory.state.IdentityState`."""

    __slots__ = ()

    # Users

    async def create_user(self, user: User, *, password_hash: str | None = None) -> User:
        """See :meth:`ports.store.UserStore.create_user`."""
        user_id = user.id or _new_id()
        if user_id in self._users:
            raise Conflict(f"a user with id {user_id} exists", "id")
        key = _fold(user.user_name)
        if key in self._user_ids_by_name:
            raise Conflict("userName is already taken", "userName")
        stored = msgspec.structs.replace(stored_form(user), id=user_id, version=1)
        self._users[user_id] = stored
        self._user_ids_by_name[key] = user_id
        if password_hash is not None:
            self._credentials[user_id] = Credentials(user_id=user_id, password_hash=password_hash)
        return self._with_groups(stored)

    async def get_user(self, user_id: str) -> User:
        """See :meth:`ports.store.UserStore.get_user`."""
        user = self._users.get(user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        return self._with_groups(user)

    async def find_user_by_name(self, user_name: str) -> User | None:
        """See :meth:`ports.store.UserStore.find_user_by_name`."""
        user_id = self._user_ids_by_name.get(_fold(user_name))
        return None if user_id is None else self._with_groups(self._users[user_id])

    async def list_users(self, query: ListQuery) -> Page[User]:
        """See :meth:`ports.store.UserStore.list_users`."""
        # Filters may name ``groups``, so they see users as they are read.
        users = [self._with_groups(user) for user in self._users.values()]
        if query.filter is not None:
            expr = query.filter
            users = [user for user in users if matches(expr, user)]
        return _page(users, query)

    async def replace_user(self, user: User, *, expected_version: int | None = None) -> User:
        """See :meth:`ports.store.UserStore.replace_user`."""
        old = self._users.get(user.id)
        if old is None:
            raise NotFound(f"no user {user.id}")
        _check_version(old.version, expected_version, "user")
        old_key, new_key = _fold(old.user_name), _fold(user.user_name)
        if new_key != old_key and new_key in self._user_ids_by_name:
            raise Conflict("userName is already taken", "userName")
        stored = msgspec.structs.replace(
            stored_form(user), created=old.created, version=old.version + 1
        )
        self._users[user.id] = stored
        if new_key != old_key:
            del self._user_ids_by_name[old_key]
            self._user_ids_by_name[new_key] = user.id
        return self._with_groups(stored)

    async def delete_user(self, user_id: str, *, expected_version: int | None = None) -> None:
        """See :meth:`ports.store.UserStore.delete_user`."""
        user = self._users.get(user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        _check_version(user.version, expected_version, "user")
        del self._users[user_id]
        del self._user_ids_by_name[_fold(user.user_name)]
        self._credentials.pop(user_id, None)
        self._recovery_codes.pop(user_id, None)
        for credential_id in self._passkeys_of_user.pop(user_id, ()):
            del self._passkeys[credential_id]
        for group_id in self._groups_of_user.pop(user_id, ()):
            # Losing a member is not a replace of the group: its version stays.
            self._members[group_id].pop(user_id, None)

    def _with_groups(self, user: User) -> User:
        """``user`` as read: with its groups and its manager's displayName."""
        enterprise = user.enterprise
        if enterprise is not None and enterprise.manager is not None:
            boss = self._users.get(enterprise.manager.value)
            if boss is not None and boss.display_name is not None:
                user = msgspec.structs.replace(user, enterprise=msgspec.structs.replace(
                    enterprise, manager=Manager(enterprise.manager.value, boss.display_name)))
        group_ids = self._groups_of_user.get(user.id)
        if not group_ids:
            return user
        refs = tuple(
            GroupRef(value=gid, display=self._groups[gid].display_name)
            for gid in sorted(group_ids)
        )
        return msgspec.structs.replace(user, groups=refs)

    # Groups
    #
    # ``_groups`` holds each group without members; ``_members`` its members, in order, in
    # a dict by user id, so that adding or removing one member of a big group touches one
    # entry (no copy of the member list) and a read without members costs nothing.

    def stored_group(self, group_id: str) -> Group:
        """The group as stored (members without ``display``). Raises ``KeyError``."""
        return msgspec.structs.replace(
            self._groups[group_id], members=tuple(self._members[group_id].values()))

    async def create_group(self, group: Group) -> Group:
        """See :meth:`ports.store.GroupStore.create_group`."""
        group_id = group.id or _new_id()
        if group_id in self._groups:
            raise Conflict(f"a group with id {group_id} exists", "id")
        key = _fold(group.display_name)
        if key in self._group_ids_by_name:
            raise Conflict("displayName is already taken", "displayName")
        members = self._checked_members(group.members)
        self.put_group(msgspec.structs.replace(group, id=group_id, version=1), members)
        return self._read_group(group_id, True)

    def put_group(self, group: Group, members: dict[str, Member]) -> None:
        """Store ``group`` (checked) with ``members`` (checked), indexes included."""
        old = self._groups.get(group.id)
        if old is not None:
            old_members = self._members[group.id]
            self._unlink(group.id, [v for v in old_members if v not in members])
            self._link(group.id, [v for v in members if v not in old_members])
            if self._group_ids_by_name.get(_fold(old.display_name)) == group.id:
                del self._group_ids_by_name[_fold(old.display_name)]
        else:
            self._link(group.id, list(members))
        self._groups[group.id] = msgspec.structs.replace(group, members=())
        self._members[group.id] = members
        self._group_ids_by_name[_fold(group.display_name)] = group.id

    async def get_group(self, group_id: str, *, members: bool = True) -> Group:
        """See :meth:`ports.store.GroupStore.get_group`."""
        if group_id not in self._groups:
            raise NotFound(f"no group {group_id}")
        return self._read_group(group_id, members)

    async def list_groups(self, query: ListQuery, *, members: bool = True) -> Page[Group]:
        """See :meth:`ports.store.GroupStore.list_groups`."""
        by_members = query.sort is not None and query.sort.path.attr == "members"
        if query.filter is None and not by_members:
            page = _page(list(self._groups.values()), query)
            return Page(items=tuple(self._read_group(g.id, members) for g in page.items),
                        total=page.total, start_index=page.start_index)
        # Filters and sort keys may name members, so they see groups as they are read.
        expr = query.filter
        groups = [self._read_group(group_id, True) for group_id in self._groups]
        page = _page([g for g in groups if expr is None or matches(expr, g)], query)
        if members:
            return page
        return Page(items=tuple(msgspec.structs.replace(g, members=()) for g in page.items),
                    total=page.total, start_index=page.start_index)

    async def replace_group(self, group: Group, *, expected_version: int | None = None) -> Group:
        """See :meth:`ports.store.GroupStore.replace_group`."""
        old = self._groups.get(group.id)
        if old is None:
            raise NotFound(f"no group {group.id}")
        _check_version(old.version, expected_version, "group")
        old_key, new_key = _fold(old.display_name), _fold(group.display_name)
        if new_key != old_key and new_key in self._group_ids_by_name:
            raise Conflict("displayName is already taken", "displayName")
        members = self._checked_members(group.members)
        # Only the difference is (un)linked: adding one member to a big group touches one entry.
        self.put_group(
            msgspec.structs.replace(group, created=old.created, version=old.version + 1),
            members,
        )
        return self._read_group(group.id, True)

    async def add_members(
        self, group_id: str, user_ids: tuple[str, ...], *, last_modified: int,
        expected_version: int | None = None,
    ) -> Group:
        """See :meth:`ports.store.GroupStore.add_members`."""
        group = self._group_to_change(group_id, expected_version)
        for user_id in user_ids:
            if user_id not in self._users:
                raise InvalidReference(f"member {user_id} is not a user")
        members = self._members[group_id]
        new = [user_id for user_id in dict.fromkeys(user_ids) if user_id not in members]
        if not new:
            return group
        for user_id in new:
            members[user_id] = Member(value=user_id)
        self._link(group_id, new)
        return self._touched(group, last_modified)

    async def remove_members(
        self, group_id: str, user_ids: tuple[str, ...], *, last_modified: int,
        expected_version: int | None = None,
    ) -> Group:
        """See :meth:`ports.store.GroupStore.remove_members`."""
        group = self._group_to_change(group_id, expected_version)
        members = self._members[group_id]
        gone = [user_id for user_id in dict.fromkeys(user_ids) if user_id in members]
        if not gone:
            return group
        for user_id in gone:
            del members[user_id]
        self._unlink(group_id, gone)
        return self._touched(group, last_modified)

    def _group_to_change(self, group_id: str, expected_version: int | None) -> Group:
        group = self._groups.get(group_id)
        if group is None:
            raise NotFound(f"no group {group_id}")
        _check_version(group.version, expected_version, "group")
        return group

    def _touched(self, group: Group, last_modified: int) -> Group:
        changed = msgspec.structs.replace(
            group, version=group.version + 1, last_modified=last_modified)
        self._groups[group.id] = changed
        return changed

    async def delete_group(self, group_id: str, *, expected_version: int | None = None) -> None:
        """See :meth:`ports.store.GroupStore.delete_group`."""
        group = self._groups.get(group_id)
        if group is None:
            raise NotFound(f"no group {group_id}")
        _check_version(group.version, expected_version, "group")
        self._unlink(group_id, list(self._members.pop(group_id)))
        del self._groups[group_id]
        del self._group_ids_by_name[_fold(group.display_name)]

    def _checked_members(self, members: tuple[Member, ...]) -> dict[str, Member]:
        """Members as stored: existing users only, each once, without ``display``."""
        seen: dict[str, Member] = {}
        for member in members:
            if member.value not in self._users:
                raise InvalidReference(f"member {member.value} is not a user")
            if member.value not in seen:
                seen[member.value] = Member(value=member.value, type=member.type)
        return seen

    def _link(self, group_id: str, user_ids: list[str]) -> None:
        for user_id in user_ids:
            self._groups_of_user.setdefault(user_id, set()).add(group_id)

    def _unlink(self, group_id: str, user_ids: list[str]) -> None:
        for user_id in user_ids:
            group_ids = self._groups_of_user.get(user_id)
            if group_ids is not None:
                group_ids.discard(group_id)
                if not group_ids:
                    del self._groups_of_user[user_id]

    def _read_group(self, group_id: str, members: bool) -> Group:
        """The group as read: members (when asked for) with ``display`` their userName."""
        group = self._groups[group_id]
        if not members:
            return group
        users = self._users
        return msgspec.structs.replace(group, members=tuple(
            msgspec.structs.replace(m, display=users[m.value].user_name)
            for m in self._members[group_id].values()
        ))

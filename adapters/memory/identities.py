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
from domain.entities import Credentials, Group, GroupRef, Member, Page, User
from domain.errors import Conflict, InvalidReference, NotFound, PreconditionFailed
from domain.filters import ListQuery
from domain.scim.sorting import sort_entities

_R = TypeVar("_R", User, Group)


def _new_id() -> str:
    return str(uuid.uuid4())


def _check_version(stored: int, expected: int | None, what: str) -> None:
    if expected is not None and stored != expected:
        raise PreconditionFailed(f"{what} version is {stored}, not {expected}")


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
        stored = msgspec.structs.replace(user, id=user_id, version=1, groups=())
        self._users[user_id] = stored
        self._user_ids_by_name[key] = user_id
        if password_hash is not None:
            self._credentials[user_id] = Credentials(user_id=user_id, password_hash=password_hash)
        return stored

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
            user, created=old.created, version=old.version + 1, groups=()
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
        for group_id in self._groups_of_user.pop(user_id, ()):
            group = self._groups[group_id]
            # Losing a member is not a replace of the group: its version stays.
            members = tuple(m for m in group.members if m.value != user_id)
            self._groups[group_id] = msgspec.structs.replace(group, members=members)

    def _with_groups(self, user: User) -> User:
        group_ids = self._groups_of_user.get(user.id)
        if not group_ids:
            return user
        refs = tuple(
            GroupRef(value=gid, display=self._groups[gid].display_name)
            for gid in sorted(group_ids)
        )
        return msgspec.structs.replace(user, groups=refs)

    # Groups

    async def create_group(self, group: Group) -> Group:
        """See :meth:`ports.store.GroupStore.create_group`."""
        group_id = group.id or _new_id()
        if group_id in self._groups:
            raise Conflict(f"a group with id {group_id} exists", "id")
        key = _fold(group.display_name)
        if key in self._group_ids_by_name:
            raise Conflict("displayName is already taken", "displayName")
        members = self._checked_members(group.members)
        stored = msgspec.structs.replace(group, id=group_id, version=1, members=members)
        self._groups[group_id] = stored
        self._group_ids_by_name[key] = group_id
        self._link(group_id, members)
        return self._with_displays(stored)

    async def get_group(self, group_id: str) -> Group:
        """See :meth:`ports.store.GroupStore.get_group`."""
        group = self._groups.get(group_id)
        if group is None:
            raise NotFound(f"no group {group_id}")
        return self._with_displays(group)

    async def list_groups(self, query: ListQuery) -> Page[Group]:
        """See :meth:`ports.store.GroupStore.list_groups`."""
        groups = [self._with_displays(group) for group in self._groups.values()]
        if query.filter is not None:
            expr = query.filter
            groups = [group for group in groups if matches(expr, group)]
        return _page(groups, query)

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
        stored = msgspec.structs.replace(
            group, created=old.created, version=old.version + 1, members=members
        )
        # Only the difference: adding one member to a group of 64,000 touches one entry.
        old_ids = {m.value for m in old.members}
        new_ids = {m.value for m in members}
        self._unlink(group.id, tuple(Member(value=v) for v in old_ids - new_ids))
        self._groups[group.id] = stored
        self._link(group.id, tuple(Member(value=v) for v in new_ids - old_ids))
        if new_key != old_key:
            del self._group_ids_by_name[old_key]
            self._group_ids_by_name[new_key] = group.id
        return self._with_displays(stored)

    async def delete_group(self, group_id: str, *, expected_version: int | None = None) -> None:
        """See :meth:`ports.store.GroupStore.delete_group`."""
        group = self._groups.get(group_id)
        if group is None:
            raise NotFound(f"no group {group_id}")
        _check_version(group.version, expected_version, "group")
        self._unlink(group_id, group.members)
        del self._groups[group_id]
        del self._group_ids_by_name[_fold(group.display_name)]

    def _checked_members(self, members: tuple[Member, ...]) -> tuple[Member, ...]:
        """Members as stored: existing users only, each once, without ``display``."""
        seen: dict[str, Member] = {}
        for member in members:
            if member.value not in self._users:
                raise InvalidReference(f"member {member.value} is not a user")
            if member.value not in seen:
                seen[member.value] = Member(value=member.value, type=member.type)
        return tuple(seen.values())

    def _link(self, group_id: str, members: tuple[Member, ...]) -> None:
        for member in members:
            self._groups_of_user.setdefault(member.value, set()).add(group_id)

    def _unlink(self, group_id: str, members: tuple[Member, ...]) -> None:
        for member in members:
            group_ids = self._groups_of_user.get(member.value)
            if group_ids is not None:
                group_ids.discard(group_id)
                if not group_ids:
                    del self._groups_of_user[member.value]

    def _with_displays(self, group: Group) -> Group:
        if not group.members:
            return group
        members = tuple(
            msgspec.structs.replace(m, display=self._users[m.value].user_name)
            for m in group.members
        )
        return msgspec.structs.replace(group, members=members)

"""The identity half of a store, delegated to :class:`MemoryIdentities`.

Both ``MemoryStore`` and ``HybridStore`` keep users, groups and credentials in process
memory; this base class forwards those port methods to their ``identities`` attribute.
"""

from __future__ import annotations

from adapters.memory.identities import MemoryIdentities
from domain.entities import Credentials, Group, Page, User
from domain.filters import ListQuery


class IdentitiesInMemory:
    """Forwards :class:`ports.store.UserStore`, ``GroupStore`` and ``CredentialStore``
    to ``self.identities``."""

    __slots__ = ()
    identities: MemoryIdentities

    # UserStore

    async def create_user(self, user: User, *, password_hash: str | None = None) -> User:
        """See :meth:`ports.store.UserStore.create_user`."""
        return await self.identities.create_user(user, password_hash=password_hash)

    async def get_user(self, user_id: str) -> User:
        """See :meth:`ports.store.UserStore.get_user`."""
        return await self.identities.get_user(user_id)

    async def find_user_by_name(self, user_name: str) -> User | None:
        """See :meth:`ports.store.UserStore.find_user_by_name`."""
        return await self.identities.find_user_by_name(user_name)

    async def list_users(self, query: ListQuery) -> Page[User]:
        """See :meth:`ports.store.UserStore.list_users`."""
        return await self.identities.list_users(query)

    async def replace_user(self, user: User, *, expected_version: int | None = None) -> User:
        """See :meth:`ports.store.UserStore.replace_user`."""
        return await self.identities.replace_user(user, expected_version=expected_version)

    async def delete_user(self, user_id: str, *, expected_version: int | None = None) -> None:
        """See :meth:`ports.store.UserStore.delete_user`."""
        await self.identities.delete_user(user_id, expected_version=expected_version)

    # GroupStore

    async def create_group(self, group: Group) -> Group:
        """See :meth:`ports.store.GroupStore.create_group`."""
        return await self.identities.create_group(group)

    async def get_group(self, group_id: str) -> Group:
        """See :meth:`ports.store.GroupStore.get_group`."""
        return await self.identities.get_group(group_id)

    async def list_groups(self, query: ListQuery) -> Page[Group]:
        """See :meth:`ports.store.GroupStore.list_groups`."""
        return await self.identities.list_groups(query)

    async def replace_group(self, group: Group, *, expected_version: int | None = None) -> Group:
        """See :meth:`ports.store.GroupStore.replace_group`."""
        return await self.identities.replace_group(group, expected_version=expected_version)

    async def delete_group(self, group_id: str, *, expected_version: int | None = None) -> None:
        """See :meth:`ports.store.GroupStore.delete_group`."""
        await self.identities.delete_group(group_id, expected_version=expected_version)

    # CredentialStore

    async def get_credentials(self, user_id: str) -> Credentials:
        """See :meth:`ports.store.CredentialStore.get_credentials`."""
        return await self.identities.get_credentials(user_id)

    async def set_password_hash(self, user_id: str, password_hash: str | None) -> None:
        """See :meth:`ports.store.CredentialStore.set_password_hash`."""
        await self.identities.set_password_hash(user_id, password_hash)

    async def set_totp(self, user_id: str, secret: str | None, *, confirmed: bool) -> None:
        """See :meth:`ports.store.CredentialStore.set_totp`."""
        await self.identities.set_totp(user_id, secret, confirmed=confirmed)

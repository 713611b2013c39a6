"""``MemoryStore``: the whole ``Store`` port in process memory.

The store for unit tests and development, and the reference the contract suite is checked
against first. It is two separable halves, :class:`MemoryIdentities` and
:class:`MemoryTokenState`, so that ``hybrid`` can reuse the identity half next to its own
token state.
"""

from __future__ import annotations

from adapters.memory.identities import MemoryIdentities
from adapters.memory.token_state import MemoryTokenState
from domain.entities import (
    AccessToken,
    AuthorizationCode,
    ConsumedCode,
    Credentials,
    Group,
    Page,
    PurgeCounts,
    RefreshTake,
    RefreshToken,
    StoreCounts,
    User,
)
from domain.filters import ListQuery


class MemoryStore:
    """Implements :class:`ports.store.Store` with dicts; nothing survives the process.

    ``identities`` and ``tokens`` may be passed in to share them (a test that inspects one
    half, or an adapter composing them); by default each store gets fresh, empty halves.
    """

    __slots__ = ("identities", "tokens")

    def __init__(
        self,
        identities: MemoryIdentities | None = None,
        tokens: MemoryTokenState | None = None,
    ) -> None:
        self.identities = identities if identities is not None else MemoryIdentities()
        self.tokens = tokens if tokens is not None else MemoryTokenState()

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

    # CodeStore

    async def save_code(self, code: AuthorizationCode, now: int) -> None:
        """See :meth:`ports.store.CodeStore.save_code`."""
        await self.tokens.save_code(code, now)

    async def take_code(
        self, code_hash: str, now: int, *, remember_until: int
    ) -> AuthorizationCode | ConsumedCode | None:
        """See :meth:`ports.store.CodeStore.take_code`."""
        return await self.tokens.take_code(code_hash, now, remember_until=remember_until)

    # TokenStore

    async def save_tokens(
        self, access: AccessToken, refresh: RefreshToken | None, now: int
    ) -> None:
        """See :meth:`ports.store.TokenStore.save_tokens`."""
        await self.tokens.save_tokens(access, refresh, now)

    async def get_access_token(self, token_hash: str, now: int) -> AccessToken | None:
        """See :meth:`ports.store.TokenStore.get_access_token`."""
        return await self.tokens.get_access_token(token_hash, now)

    async def revoke_access_token(self, token_hash: str, now: int) -> bool:
        """See :meth:`ports.store.TokenStore.revoke_access_token`."""
        return await self.tokens.revoke_access_token(token_hash, now)

    async def get_refresh_token(self, token_hash: str, now: int) -> RefreshToken | None:
        """See :meth:`ports.store.TokenStore.get_refresh_token`."""
        return await self.tokens.get_refresh_token(token_hash, now)

    async def take_refresh_token(self, token_hash: str, now: int) -> RefreshTake:
        """See :meth:`ports.store.TokenStore.take_refresh_token`."""
        return await self.tokens.take_refresh_token(token_hash, now)

    async def revoke_grant(self, grant_id: str, now: int) -> int:
        """See :meth:`ports.store.TokenStore.revoke_grant`."""
        return await self.tokens.revoke_grant(grant_id, now)

    async def revoke_subject(self, sub: str, now: int) -> int:
        """See :meth:`ports.store.TokenStore.revoke_subject`."""
        return await self.tokens.revoke_subject(sub, now)

    # EphemeralStore

    async def claim_once(self, key: str, exp: int, now: int) -> bool:
        """See :meth:`ports.store.EphemeralStore.claim_once`."""
        return await self.tokens.claim_once(key, exp, now)

    async def hit(self, key: str, window_seconds: int, now: int, amount: int = 1) -> int:
        """See :meth:`ports.store.EphemeralStore.hit`."""
        return await self.tokens.hit(key, window_seconds, now, amount)

    # StoreAdmin

    async def health(self) -> dict[str, bool]:
        """Always ``{"store": True}``: process memory cannot be unreachable."""
        return {"store": True}

    async def counts(self, now: int) -> StoreCounts:
        """See :meth:`ports.store.StoreAdmin.counts`."""
        return StoreCounts(
            users=self.identities.user_count,
            groups=self.identities.group_count,
            access_tokens=self.tokens.count_access_tokens(now),
            refresh_tokens=self.tokens.count_refresh_tokens(now),
            codes=self.tokens.count_codes(now),
        )

    async def purge_expired(self, now: int, batch_size: int = 1000) -> PurgeCounts:
        """See :meth:`ports.store.StoreAdmin.purge_expired`."""
        return await self.tokens.purge_expired(now, batch_size)

    async def close(self) -> None:
        """Nothing to release."""

"""The port methods of a store, forwarded to its in-memory halves.

Both ``MemoryStore`` and ``HybridStore`` keep users, groups and credentials in process
memory: :class:`IdentitiesInMemory` forwards those port methods to their ``identities``
attribute. ``MemoryStore`` also keeps its token state there: :class:`TokenStateInMemory`
forwards codes, tokens and ephemeral state to its ``tokens`` attribute.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.memory.account_tokens import MemoryAccountTokens
from adapters.memory.clients import MemoryClients
from adapters.memory.consents import MemoryConsents
from adapters.memory.device import MemoryDevice
from adapters.memory.identities import MemoryIdentities
from adapters.memory.sessions import MemorySessions
from adapters.memory.token_state import MemoryTokenState
from domain.clients import Client, InitialAccessToken
from domain.consent import Consent, ConsentRecord
from domain.device import DeviceAuthorization, DeviceDecision, DevicePoll
from domain.entities import (
    AccessToken,
    AccountToken,
    AccountTokenKind,
    AuthorizationCode,
    ConsumedCode,
    Credentials,
    Group,
    Page,
    Passkey,
    RefreshTake,
    RefreshToken,
    User,
)
from domain.filters import ListQuery
from domain.records import Batch
from domain.sessions import Session, SessionGrant, SessionRecord


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

    async def get_group(self, group_id: str, *, members: bool = True) -> Group:
        """See :meth:`ports.store.GroupStore.get_group`."""
        return await self.identities.get_group(group_id, members=members)

    async def list_groups(self, query: ListQuery, *, members: bool = True) -> Page[Group]:
        """See :meth:`ports.store.GroupStore.list_groups`."""
        return await self.identities.list_groups(query, members=members)

    async def add_members(
        self, group_id: str, user_ids: tuple[str, ...], *, last_modified: int,
        expected_version: int | None = None,
    ) -> Group:
        """See :meth:`ports.store.GroupStore.add_members`."""
        return await self.identities.add_members(
            group_id, user_ids, last_modified=last_modified, expected_version=expected_version)

    async def remove_members(
        self, group_id: str, user_ids: tuple[str, ...], *, last_modified: int,
        expected_version: int | None = None,
    ) -> Group:
        """See :meth:`ports.store.GroupStore.remove_members`."""
        return await self.identities.remove_members(
            group_id, user_ids, last_modified=last_modified, expected_version=expected_version)

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

    async def set_verified_email(self, user_id: str, address: str | None) -> None:
        """See :meth:`ports.store.CredentialStore.set_verified_email`."""
        await self.identities.set_verified_email(user_id, address)

    async def add_passkey(self, passkey: Passkey) -> None:
        """See :meth:`ports.store.CredentialStore.add_passkey`."""
        await self.identities.add_passkey(passkey)

    async def list_passkeys(self, user_id: str) -> list[Passkey]:
        """See :meth:`ports.store.CredentialStore.list_passkeys`."""
        return await self.identities.list_passkeys(user_id)

    async def find_passkey(self, credential_id: str) -> Passkey | None:
        """See :meth:`ports.store.CredentialStore.find_passkey`."""
        return await self.identities.find_passkey(credential_id)

    async def record_passkey_use(self, credential_id: str, sign_count: int, now: int) -> bool:
        """See :meth:`ports.store.CredentialStore.record_passkey_use`."""
        return await self.identities.record_passkey_use(credential_id, sign_count, now)

    async def rename_passkey(self, user_id: str, credential_id: str, name: str) -> bool:
        """See :meth:`ports.store.CredentialStore.rename_passkey`."""
        return await self.identities.rename_passkey(user_id, credential_id, name)

    async def remove_passkey(self, user_id: str, credential_id: str) -> bool:
        """See :meth:`ports.store.CredentialStore.remove_passkey`."""
        return await self.identities.remove_passkey(user_id, credential_id)

    async def remove_passkeys(self, user_id: str) -> int:
        """See :meth:`ports.store.CredentialStore.remove_passkeys`."""
        return await self.identities.remove_passkeys(user_id)

    async def replace_recovery_codes(self, user_id: str, code_hashes: Sequence[str]) -> None:
        """See :meth:`ports.store.CredentialStore.replace_recovery_codes`."""
        await self.identities.replace_recovery_codes(user_id, code_hashes)

    async def use_recovery_code(self, user_id: str, code_hash: str) -> bool:
        """See :meth:`ports.store.CredentialStore.use_recovery_code`."""
        return await self.identities.use_recovery_code(user_id, code_hash)

    async def count_recovery_codes(self, user_id: str) -> int:
        """See :meth:`ports.store.CredentialStore.count_recovery_codes`."""
        return await self.identities.count_recovery_codes(user_id)


class TokenStateInMemory:
    """Forwards :class:`ports.store.CodeStore`, ``TokenStore`` and ``EphemeralStore`` to
    ``self.tokens``."""

    __slots__ = ()
    tokens: MemoryTokenState

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


class ClientsInMemory:
    """Forwards :class:`ports.store.ClientStore` and ``ClientTransfer`` to ``self.clients``."""

    __slots__ = ()
    clients: MemoryClients

    async def create_client(self, client: Client) -> Client:
        """See :meth:`ports.store.ClientStore.create_client`."""
        return await self.clients.create_client(client)

    async def get_client(self, client_id: str) -> Client | None:
        """See :meth:`ports.store.ClientStore.get_client`."""
        return await self.clients.get_client(client_id)

    async def find_client_by_resource(self, resource_uri: str) -> Client | None:
        """See :meth:`ports.store.ClientStore.find_client_by_resource`."""
        return await self.clients.find_client_by_resource(resource_uri)

    async def list_clients(self, cursor: str | None, limit: int) -> Batch[Client]:
        """See :meth:`ports.store.ClientStore.list_clients`."""
        return await self.clients.list_clients(cursor, limit)

    async def replace_client(self, client: Client, *, expected_version: int) -> Client:
        """See :meth:`ports.store.ClientStore.replace_client`."""
        return await self.clients.replace_client(client, expected_version=expected_version)

    async def delete_client(self, client_id: str) -> bool:
        """See :meth:`ports.store.ClientStore.delete_client`."""
        return await self.clients.delete_client(client_id)

    async def save_initial_access_token(self, token: InitialAccessToken, now: int) -> None:
        """See :meth:`ports.store.ClientStore.save_initial_access_token`."""
        await self.clients.save_initial_access_token(token, now)

    async def use_initial_access_token(self, digest: str, now: int) -> bool:
        """See :meth:`ports.store.ClientStore.use_initial_access_token`."""
        return await self.clients.use_initial_access_token(digest, now)

    async def export_clients(self, cursor: str | None, limit: int, now: int) -> Batch[Client]:
        """See :meth:`ports.store.ClientTransfer.export_clients`."""
        return await self.clients.export_clients(cursor, limit, now)

    async def import_clients(self, records: tuple[Client, ...], now: int) -> int:
        """See :meth:`ports.store.ClientTransfer.import_clients`."""
        return await self.clients.import_clients(records, now)

    async def export_initial_access_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[InitialAccessToken]:
        """See :meth:`ports.store.ClientTransfer.export_initial_access_tokens`."""
        return await self.clients.export_initial_access_tokens(cursor, limit, now)

    async def import_initial_access_tokens(
        self, records: tuple[InitialAccessToken, ...], now: int
    ) -> int:
        """See :meth:`ports.store.ClientTransfer.import_initial_access_tokens`."""
        return await self.clients.import_initial_access_tokens(records, now)


class SessionsInMemory:
    """Forwards :class:`ports.store.SessionStore` and ``SessionTransfer`` to
    ``self.sessions``."""

    __slots__ = ()
    sessions: MemorySessions

    async def create_session(self, session: Session, now: int) -> None:
        """See :meth:`ports.store.SessionStore.create_session`."""
        await self.sessions.create_session(session, now)

    async def get_session(self, id_hash: str, now: int) -> Session | None:
        """See :meth:`ports.store.SessionStore.get_session`."""
        return await self.sessions.get_session(id_hash, now)

    async def add_session_grant(
        self, id_hash: str, grant: SessionGrant, idle_exp: int, now: int
    ) -> Session | None:
        """See :meth:`ports.store.SessionStore.add_session_grant`."""
        return await self.sessions.add_session_grant(id_hash, grant, idle_exp, now)

    async def reauthenticate_session(
        self, id_hash: str, new_id_hash: str, *, auth_time: int, amr: tuple[str, ...],
        acr: str, idle_exp: int, now: int,
    ) -> Session | None:
        """See :meth:`ports.store.SessionStore.reauthenticate_session`."""
        return await self.sessions.reauthenticate_session(
            id_hash, new_id_hash, auth_time=auth_time, amr=amr, acr=acr, idle_exp=idle_exp,
            now=now)

    async def list_sessions(self, user_id: str, now: int) -> tuple[Session, ...]:
        """See :meth:`ports.store.SessionStore.list_sessions`."""
        return await self.sessions.list_sessions(user_id, now)

    async def end_session(self, id_hash: str, now: int) -> SessionRecord | None:
        """See :meth:`ports.store.SessionStore.end_session`."""
        return await self.sessions.end_session(id_hash, now)

    async def end_session_by_sid(self, sid: str, now: int) -> SessionRecord | None:
        """See :meth:`ports.store.SessionStore.end_session_by_sid`."""
        return await self.sessions.end_session_by_sid(sid, now)

    async def end_user_sessions(self, user_id: str, now: int) -> tuple[SessionRecord, ...]:
        """See :meth:`ports.store.SessionStore.end_user_sessions`."""
        return await self.sessions.end_user_sessions(user_id, now)

    async def export_sessions(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[SessionRecord]:
        """See :meth:`ports.store.SessionTransfer.export_sessions`."""
        return await self.sessions.export_sessions(cursor, limit, now)

    async def import_sessions(self, records: tuple[SessionRecord, ...], now: int) -> int:
        """See :meth:`ports.store.SessionTransfer.import_sessions`."""
        return await self.sessions.import_sessions(records, now)


class ConsentsInMemory:
    """Forwards :class:`ports.store.ConsentStore` and ``ConsentTransfer`` to
    ``self.consents``."""

    __slots__ = ()
    consents: MemoryConsents

    async def get_consent(self, user_id: str, client_id: str) -> Consent | None:
        """See :meth:`ports.store.ConsentStore.get_consent`."""
        return await self.consents.get_consent(user_id, client_id)

    async def grant_consent(
        self, user_id: str, client_id: str, scopes: tuple[str, ...], now: int
    ) -> Consent:
        """See :meth:`ports.store.ConsentStore.grant_consent`."""
        return await self.consents.grant_consent(user_id, client_id, scopes, now)

    async def list_consents(self, user_id: str) -> tuple[Consent, ...]:
        """See :meth:`ports.store.ConsentStore.list_consents`."""
        return await self.consents.list_consents(user_id)

    async def record_consent_grant(
        self, user_id: str, client_id: str, grant_id: str, exp: int, now: int
    ) -> bool:
        """See :meth:`ports.store.ConsentStore.record_consent_grant`."""
        return await self.consents.record_consent_grant(user_id, client_id, grant_id, exp, now)

    async def withdraw_consent(
        self, user_id: str, client_id: str, now: int
    ) -> ConsentRecord | None:
        """See :meth:`ports.store.ConsentStore.withdraw_consent`."""
        return await self.consents.withdraw_consent(user_id, client_id, now)

    async def export_consents(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ConsentRecord]:
        """See :meth:`ports.store.ConsentTransfer.export_consents`."""
        return await self.consents.export_consents(cursor, limit, now)

    async def import_consents(self, records: tuple[ConsentRecord, ...], now: int) -> int:
        """See :meth:`ports.store.ConsentTransfer.import_consents`."""
        return await self.consents.import_consents(records, now)


class DeviceInMemory:
    """Forwards :class:`ports.store.DeviceStore` and ``DeviceTransfer`` to ``self.device``."""

    __slots__ = ()
    device: MemoryDevice

    async def save_device_authorization(
        self, authorization: DeviceAuthorization, now: int
    ) -> bool:
        """See :meth:`ports.store.DeviceStore.save_device_authorization`."""
        return await self.device.save_device_authorization(authorization, now)

    async def find_device_authorization(
        self, user_code_hash: str, now: int
    ) -> DeviceAuthorization | None:
        """See :meth:`ports.store.DeviceStore.find_device_authorization`."""
        return await self.device.find_device_authorization(user_code_hash, now)

    async def decide_device_authorization(
        self, user_code_hash: str, decision: DeviceDecision, now: int
    ) -> DeviceAuthorization | None:
        """See :meth:`ports.store.DeviceStore.decide_device_authorization`."""
        return await self.device.decide_device_authorization(user_code_hash, decision, now)

    async def poll_device_authorization(self, device_code_hash: str, now: int) -> DevicePoll:
        """See :meth:`ports.store.DeviceStore.poll_device_authorization`."""
        return await self.device.poll_device_authorization(device_code_hash, now)

    async def export_device_authorizations(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[DeviceAuthorization]:
        """See :meth:`ports.store.DeviceTransfer.export_device_authorizations`."""
        return await self.device.export_device_authorizations(cursor, limit, now)

    async def import_device_authorizations(
        self, records: tuple[DeviceAuthorization, ...], now: int
    ) -> int:
        """See :meth:`ports.store.DeviceTransfer.import_device_authorizations`."""
        return await self.device.import_device_authorizations(records, now)


class AccountTokensInMemory:
    """Forwards :class:`ports.store.AccountTokenStore` and ``AccountTokenTransfer`` to
    ``self.account_tokens``."""

    __slots__ = ()
    account_tokens: MemoryAccountTokens

    async def save_account_token(self, token: AccountToken, now: int) -> None:
        """See :meth:`ports.store.AccountTokenStore.save_account_token`."""
        await self.account_tokens.save_account_token(token, now)

    async def take_account_token(
        self, kind: AccountTokenKind, token_hash: str, now: int
    ) -> AccountToken | None:
        """See :meth:`ports.store.AccountTokenStore.take_account_token`."""
        return await self.account_tokens.take_account_token(kind, token_hash, now)

    async def revoke_account_tokens(
        self, user_id: str, kind: AccountTokenKind, now: int
    ) -> int:
        """See :meth:`ports.store.AccountTokenStore.revoke_account_tokens`."""
        return await self.account_tokens.revoke_account_tokens(user_id, kind, now)

    async def export_account_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AccountToken]:
        """See :meth:`ports.store.AccountTokenTransfer.export_account_tokens`."""
        return await self.account_tokens.export_account_tokens(cursor, limit, now)

    async def import_account_tokens(self, records: tuple[AccountToken, ...], now: int) -> int:
        """See :meth:`ports.store.AccountTokenTransfer.import_account_tokens`."""
        return await self.account_tokens.import_account_tokens(records, now)

"""``filestore``: an auth-service Store backend that keeps everything in one local file.

Install the package and set ``STORE_BACKEND=filestore`` and ``STORE_URL=file:///path/to/
auth.store`` (or a plain path). ``auth-service migrate`` (or the first ``serve``) creates the
file; every process that opens the same path shares it, so ``auth-service user ...`` and
``auth-service purge`` work next to a running server, and ``serve --workers N`` is allowed.

How: the state is the memory adapter's (``adapters.memory.MemoryStore``). Every port call
takes an exclusive ``flock`` on ``<file>.lock``, reloads the file if another process wrote
it since, runs the call on the in-memory state and, if the call writes, saves the file
atomically (a temporary file renamed over it). Single-use operations are therefore atomic
across processes, as the contract requires. It is a small-deployment or test backend: each
write rewrites the whole file.

The file is a pickle of the memory adapter's objects. Unpickling runs code named in the
file, so the file and its directory must be writable only by the service's own user.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pickle
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from adapters.memory import MemoryStore
from adapters.memory.account_tokens import MemoryAccountTokens
from adapters.memory.clients import MemoryClients
from adapters.memory.consents import MemoryConsents
from adapters.memory.device import MemoryDevice
from adapters.memory.sessions import MemorySessions
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
    PurgeCounts,
    RefreshTake,
    RefreshToken,
    StoreCounts,
    User,
)
from domain.errors import StoreMisconfigured, StoreUnavailable
from domain.filters import ListQuery
from domain.records import Batch, Claim, ConsumedCodeRecord, ReuseMarker, UserRecord
from domain.sessions import Session, SessionGrant, SessionRecord
from ports.store_settings import StoreSettings

__all__ = ["FORMAT", "FileStore", "open_store", "store_path"]

_T = TypeVar("_T")

#: The version of the file's layout; ``migrate`` creates a file of this version.
FORMAT = 1
_MIGRATION = f"{FORMAT:04d}_create_store_file"


def store_path(url: str | None) -> Path:
    """The file named by ``STORE_URL``: ``file:///abs/path``, ``file:relative`` or a path."""
    if not url:
        raise StoreMisconfigured("is required when STORE_BACKEND=filestore (a file path)")
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StoreMisconfigured("must name a local file (file:///path/to/auth.store)")
        path = Path(unquote(parts.path))
    elif parts.scheme and len(parts.scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise StoreMisconfigured(f"must be a file path or file:// URL, not {parts.scheme}://")
    else:
        path = Path(url)
    if not path.name:
        raise StoreMisconfigured("must name a file, not a directory")
    if not path.parent.is_dir():
        raise StoreMisconfigured(f"names a file in a directory that does not exist: {path.parent}")
    return path


async def open_store(settings: StoreSettings) -> FileStore:
    """The ``filestore`` entry point (``ports.store_settings.OpenStore``).

    Only ``settings.url`` is used: there is no pool and nothing to wait for.
    """
    try:
        path = store_path(settings.url)
    except StoreMisconfigured as exc:
        raise StoreMisconfigured(str(exc), settings.url_variable) from None
    return FileStore(path)


class FileStore:
    """Implements ``ports.store.Store`` (and ``Migratable``) over one file; see the module."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._memory = MemoryStore()
        # The (inode, size, mtime) of the file the state was loaded from: a rename gives a
        # new inode, so any write by any process is noticed.
        self._loaded: tuple[int, int, int] | None = None
        # Serialises this process's calls: flock does not exclude calls of one process.
        self._calls = asyncio.Lock()
        self._lock_fd: int | None = None

    # The file

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            if self._lock_fd is None:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise StoreUnavailable(f"the store file cannot be locked: {exc.strerror}") from exc
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _load(self) -> None:
        seen = self._stat()
        if seen is None:
            raise StoreUnavailable("the store file does not exist yet: run auth-service migrate")
        if seen == self._loaded:
            return
        try:
            with open(self.path, "rb") as handle:
                state: dict[str, Any] = pickle.load(handle)  # our own file: see the module
        except (OSError, pickle.UnpicklingError, EOFError) as exc:
            raise StoreUnavailable("the store file cannot be read") from exc
        if state.get("format") != FORMAT:
            raise StoreMisconfigured(f"the store file has format {state.get('format')!r}, "
                                     f"not {FORMAT}")
        # A file written before clients (sessions, consents, device authorizations,
        # account tokens) were stored has none.
        self._memory = MemoryStore(state["identities"], state["tokens"],
                                   state.get("clients") or MemoryClients(),
                                   state.get("sessions") or MemorySessions(),
                                   state.get("consents") or MemoryConsents(),
                                   state.get("device") or MemoryDevice(),
                                   state.get("account_tokens") or MemoryAccountTokens())
        self._loaded = seen

    def _save(self, memory: MemoryStore) -> None:
        state = {"format": FORMAT, "identities": memory.identities, "tokens": memory.tokens,
                 "clients": memory.clients, "sessions": memory.sessions,
                 "consents": memory.consents, "device": memory.device,
                 "account_tokens": memory.account_tokens}
        try:
            fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".")
            with os.fdopen(fd, "wb") as handle:
                pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, self.path)
        except OSError as exc:
            raise StoreUnavailable(f"the store file cannot be written: {exc.strerror}") from exc
        self._loaded = self._stat()

    async def _read(self, call: Callable[[MemoryStore], Awaitable[_T]]) -> _T:
        async with self._calls:
            with self._locked():
                self._load()
                return await call(self._memory)

    async def _write(self, call: Callable[[MemoryStore], Awaitable[_T]]) -> _T:
        async with self._calls:
            with self._locked():
                self._load()
                # A call that raises (a conflict, say) has changed nothing: the memory
                # adapter checks before it writes, so there is nothing to save.
                result = await call(self._memory)
                self._save(self._memory)
                return result

    # Migratable

    async def migrate(self) -> list[str]:
        """Create the file, empty, when it does not exist; ``[]`` when it does."""
        async with self._calls:
            with self._locked():
                if self._stat() is not None:
                    self._load()  # checks the format
                    return []
                self._save(MemoryStore())
                return [_MIGRATION]

    # UserStore

    async def create_user(self, user: User, *, password_hash: str | None = None) -> User:
        return await self._write(lambda m: m.create_user(user, password_hash=password_hash))

    async def get_user(self, user_id: str) -> User:
        return await self._read(lambda m: m.get_user(user_id))

    async def find_user_by_name(self, user_name: str) -> User | None:
        return await self._read(lambda m: m.find_user_by_name(user_name))

    async def list_users(self, query: ListQuery) -> Page[User]:
        return await self._read(lambda m: m.list_users(query))

    async def replace_user(self, user: User, *, expected_version: int | None = None) -> User:
        return await self._write(lambda m: m.replace_user(user, expected_version=expected_version))

    async def delete_user(self, user_id: str, *, expected_version: int | None = None) -> None:
        await self._write(lambda m: m.delete_user(user_id, expected_version=expected_version))

    # GroupStore

    async def create_group(self, group: Group) -> Group:
        return await self._write(lambda m: m.create_group(group))

    async def get_group(self, group_id: str, *, members: bool = True) -> Group:
        return await self._read(lambda m: m.get_group(group_id, members=members))

    async def list_groups(self, query: ListQuery, *, members: bool = True) -> Page[Group]:
        return await self._read(lambda m: m.list_groups(query, members=members))

    async def add_members(
        self, group_id: str, user_ids: tuple[str, ...], *, last_modified: int,
        expected_version: int | None = None,
    ) -> Group:
        return await self._write(lambda m: m.add_members(
            group_id, user_ids, last_modified=last_modified, expected_version=expected_version))

    async def remove_members(
        self, group_id: str, user_ids: tuple[str, ...], *, last_modified: int,
        expected_version: int | None = None,
    ) -> Group:
        return await self._write(lambda m: m.remove_members(
            group_id, user_ids, last_modified=last_modified, expected_version=expected_version))

    async def replace_group(self, group: Group, *, expected_version: int | None = None) -> Group:
        return await self._write(
            lambda m: m.replace_group(group, expected_version=expected_version)
        )

    async def delete_group(self, group_id: str, *, expected_version: int | None = None) -> None:
        await self._write(lambda m: m.delete_group(group_id, expected_version=expected_version))

    # CredentialStore

    async def get_credentials(self, user_id: str) -> Credentials:
        return await self._read(lambda m: m.get_credentials(user_id))

    async def set_password_hash(self, user_id: str, password_hash: str | None) -> None:
        await self._write(lambda m: m.set_password_hash(user_id, password_hash))

    async def set_totp(self, user_id: str, secret: str | None, *, confirmed: bool) -> None:
        await self._write(lambda m: m.set_totp(user_id, secret, confirmed=confirmed))

    async def set_verified_email(self, user_id: str, address: str | None) -> None:
        await self._write(lambda m: m.set_verified_email(user_id, address))

    async def add_passkey(self, passkey: Passkey) -> None:
        await self._write(lambda m: m.add_passkey(passkey))

    async def list_passkeys(self, user_id: str) -> list[Passkey]:
        return await self._read(lambda m: m.list_passkeys(user_id))

    async def find_passkey(self, credential_id: str) -> Passkey | None:
        return await self._read(lambda m: m.find_passkey(credential_id))

    async def record_passkey_use(self, credential_id: str, sign_count: int, now: int) -> bool:
        return await self._write(lambda m: m.record_passkey_use(credential_id, sign_count, now))

    async def rename_passkey(self, user_id: str, credential_id: str, name: str) -> bool:
        return await self._write(lambda m: m.rename_passkey(user_id, credential_id, name))

    async def remove_passkey(self, user_id: str, credential_id: str) -> bool:
        return await self._write(lambda m: m.remove_passkey(user_id, credential_id))

    async def remove_passkeys(self, user_id: str) -> int:
        return await self._write(lambda m: m.remove_passkeys(user_id))

    async def replace_recovery_codes(self, user_id: str, code_hashes: Sequence[str]) -> None:
        await self._write(lambda m: m.replace_recovery_codes(user_id, code_hashes))

    async def use_recovery_code(self, user_id: str, code_hash: str) -> bool:
        return await self._write(lambda m: m.use_recovery_code(user_id, code_hash))

    async def count_recovery_codes(self, user_id: str) -> int:
        return await self._read(lambda m: m.count_recovery_codes(user_id))

    # CodeStore

    async def save_code(self, code: AuthorizationCode, now: int) -> None:
        await self._write(lambda m: m.save_code(code, now))

    async def take_code(
        self, code_hash: str, now: int, *, remember_until: int
    ) -> AuthorizationCode | ConsumedCode | None:
        return await self._write(
            lambda m: m.take_code(code_hash, now, remember_until=remember_until)
        )

    # TokenStore

    async def save_tokens(
        self, access: AccessToken, refresh: RefreshToken | None, now: int
    ) -> None:
        await self._write(lambda m: m.save_tokens(access, refresh, now))

    async def get_access_token(self, token_hash: str, now: int) -> AccessToken | None:
        return await self._read(lambda m: m.get_access_token(token_hash, now))

    async def revoke_access_token(self, token_hash: str, now: int) -> bool:
        return await self._write(lambda m: m.revoke_access_token(token_hash, now))

    async def get_refresh_token(self, token_hash: str, now: int) -> RefreshToken | None:
        return await self._read(lambda m: m.get_refresh_token(token_hash, now))

    async def take_refresh_token(self, token_hash: str, now: int) -> RefreshTake:
        return await self._write(lambda m: m.take_refresh_token(token_hash, now))

    async def revoke_grant(self, grant_id: str, now: int) -> int:
        return await self._write(lambda m: m.revoke_grant(grant_id, now))

    async def revoke_subject(self, sub: str, now: int) -> int:
        return await self._write(lambda m: m.revoke_subject(sub, now))

    # EphemeralStore

    async def claim_once(self, key: str, exp: int, now: int) -> bool:
        return await self._write(lambda m: m.claim_once(key, exp, now))

    async def hit(self, key: str, window_seconds: int, now: int, amount: int = 1) -> int:
        return await self._write(lambda m: m.hit(key, window_seconds, now, amount))

    # ClientStore

    async def create_client(self, client: Client) -> Client:
        return await self._write(lambda m: m.create_client(client))

    async def get_client(self, client_id: str) -> Client | None:
        return await self._read(lambda m: m.get_client(client_id))

    async def find_client_by_resource(self, resource_uri: str) -> Client | None:
        return await self._read(lambda m: m.find_client_by_resource(resource_uri))

    async def list_clients(self, cursor: str | None, limit: int) -> Batch[Client]:
        return await self._read(lambda m: m.list_clients(cursor, limit))

    async def replace_client(self, client: Client, *, expected_version: int) -> Client:
        return await self._write(
            lambda m: m.replace_client(client, expected_version=expected_version)
        )

    async def delete_client(self, client_id: str) -> bool:
        return await self._write(lambda m: m.delete_client(client_id))

    async def save_initial_access_token(self, token: InitialAccessToken, now: int) -> None:
        await self._write(lambda m: m.save_initial_access_token(token, now))

    async def use_initial_access_token(self, digest: str, now: int) -> bool:
        return await self._write(lambda m: m.use_initial_access_token(digest, now))

    # Transfer (``auth-service store copy``): the memory adapter's, under the file lock.

    async def export_users(self, cursor: str | None, limit: int, now: int) -> Batch[UserRecord]:
        return await self._read(lambda m: m.export_users(cursor, limit, now))

    async def import_users(self, records: tuple[UserRecord, ...], now: int) -> int:
        return await self._write(lambda m: m.import_users(records, now))

    async def export_groups(self, cursor: str | None, limit: int, now: int) -> Batch[Group]:
        return await self._read(lambda m: m.export_groups(cursor, limit, now))

    async def import_groups(self, records: tuple[Group, ...], now: int) -> int:
        return await self._write(lambda m: m.import_groups(records, now))

    async def export_codes(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AuthorizationCode]:
        return await self._read(lambda m: m.export_codes(cursor, limit, now))

    async def import_codes(self, records: tuple[AuthorizationCode, ...], now: int) -> int:
        return await self._write(lambda m: m.import_codes(records, now))

    async def export_consumed_codes(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ConsumedCodeRecord]:
        return await self._read(lambda m: m.export_consumed_codes(cursor, limit, now))

    async def import_consumed_codes(
        self, records: tuple[ConsumedCodeRecord, ...], now: int
    ) -> int:
        return await self._write(lambda m: m.import_consumed_codes(records, now))

    async def export_access_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AccessToken]:
        return await self._read(lambda m: m.export_access_tokens(cursor, limit, now))

    async def import_access_tokens(self, records: tuple[AccessToken, ...], now: int) -> int:
        return await self._write(lambda m: m.import_access_tokens(records, now))

    async def export_refresh_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[RefreshToken]:
        return await self._read(lambda m: m.export_refresh_tokens(cursor, limit, now))

    async def import_refresh_tokens(self, records: tuple[RefreshToken, ...], now: int) -> int:
        return await self._write(lambda m: m.import_refresh_tokens(records, now))

    async def export_reuse_markers(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ReuseMarker]:
        return await self._read(lambda m: m.export_reuse_markers(cursor, limit, now))

    async def import_reuse_markers(self, records: tuple[ReuseMarker, ...], now: int) -> int:
        return await self._write(lambda m: m.import_reuse_markers(records, now))

    async def export_claims(self, cursor: str | None, limit: int, now: int) -> Batch[Claim]:
        return await self._read(lambda m: m.export_claims(cursor, limit, now))

    async def import_claims(self, records: tuple[Claim, ...], now: int) -> int:
        return await self._write(lambda m: m.import_claims(records, now))

    # SessionStore

    async def create_session(self, session: Session, now: int) -> None:
        await self._write(lambda m: m.create_session(session, now))

    async def get_session(self, id_hash: str, now: int) -> Session | None:
        return await self._read(lambda m: m.get_session(id_hash, now))

    async def add_session_grant(
        self, id_hash: str, grant: SessionGrant, idle_exp: int, now: int
    ) -> Session | None:
        return await self._write(lambda m: m.add_session_grant(id_hash, grant, idle_exp, now))

    async def reauthenticate_session(
        self, id_hash: str, new_id_hash: str, *, auth_time: int, amr: tuple[str, ...],
        acr: str, idle_exp: int, now: int,
    ) -> Session | None:
        return await self._write(lambda m: m.reauthenticate_session(
            id_hash, new_id_hash, auth_time=auth_time, amr=amr, acr=acr, idle_exp=idle_exp,
            now=now))

    async def list_sessions(self, user_id: str, now: int) -> tuple[Session, ...]:
        return await self._read(lambda m: m.list_sessions(user_id, now))

    async def end_session(self, id_hash: str, now: int) -> SessionRecord | None:
        return await self._write(lambda m: m.end_session(id_hash, now))

    async def end_session_by_sid(self, sid: str, now: int) -> SessionRecord | None:
        return await self._write(lambda m: m.end_session_by_sid(sid, now))

    async def end_user_sessions(self, user_id: str, now: int) -> tuple[SessionRecord, ...]:
        return await self._write(lambda m: m.end_user_sessions(user_id, now))

    # ConsentStore

    async def get_consent(self, user_id: str, client_id: str) -> Consent | None:
        return await self._read(lambda m: m.get_consent(user_id, client_id))

    async def grant_consent(
        self, user_id: str, client_id: str, scopes: tuple[str, ...], now: int
    ) -> Consent:
        return await self._write(lambda m: m.grant_consent(user_id, client_id, scopes, now))

    async def list_consents(self, user_id: str) -> tuple[Consent, ...]:
        return await self._read(lambda m: m.list_consents(user_id))

    async def record_consent_grant(
        self, user_id: str, client_id: str, grant_id: str, exp: int, now: int
    ) -> bool:
        return await self._write(
            lambda m: m.record_consent_grant(user_id, client_id, grant_id, exp, now))

    async def withdraw_consent(
        self, user_id: str, client_id: str, now: int
    ) -> ConsentRecord | None:
        return await self._write(lambda m: m.withdraw_consent(user_id, client_id, now))

    # DeviceStore

    async def save_device_authorization(
        self, authorization: DeviceAuthorization, now: int
    ) -> bool:
        return await self._write(lambda m: m.save_device_authorization(authorization, now))

    async def find_device_authorization(
        self, user_code_hash: str, now: int
    ) -> DeviceAuthorization | None:
        return await self._read(lambda m: m.find_device_authorization(user_code_hash, now))

    async def decide_device_authorization(
        self, user_code_hash: str, decision: DeviceDecision, now: int
    ) -> DeviceAuthorization | None:
        return await self._write(
            lambda m: m.decide_device_authorization(user_code_hash, decision, now))

    async def poll_device_authorization(self, device_code_hash: str, now: int) -> DevicePoll:
        return await self._write(lambda m: m.poll_device_authorization(device_code_hash, now))

    async def export_device_authorizations(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[DeviceAuthorization]:
        return await self._read(lambda m: m.export_device_authorizations(cursor, limit, now))

    async def import_device_authorizations(
        self, records: tuple[DeviceAuthorization, ...], now: int
    ) -> int:
        return await self._write(lambda m: m.import_device_authorizations(records, now))

    # AccountTokenStore, AccountTokenTransfer

    async def save_account_token(self, token: AccountToken, now: int) -> None:
        await self._write(lambda m: m.save_account_token(token, now))

    async def take_account_token(
        self, kind: AccountTokenKind, token_hash: str, now: int
    ) -> AccountToken | None:
        return await self._write(lambda m: m.take_account_token(kind, token_hash, now))

    async def revoke_account_tokens(
        self, user_id: str, kind: AccountTokenKind, now: int
    ) -> int:
        return await self._write(lambda m: m.revoke_account_tokens(user_id, kind, now))

    async def export_account_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AccountToken]:
        return await self._read(lambda m: m.export_account_tokens(cursor, limit, now))

    async def import_account_tokens(self, records: tuple[AccountToken, ...], now: int) -> int:
        return await self._write(lambda m: m.import_account_tokens(records, now))

    # SessionTransfer, ConsentTransfer

    async def export_sessions(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[SessionRecord]:
        return await self._read(lambda m: m.export_sessions(cursor, limit, now))

    async def import_sessions(self, records: tuple[SessionRecord, ...], now: int) -> int:
        return await self._write(lambda m: m.import_sessions(records, now))

    async def export_consents(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ConsentRecord]:
        return await self._read(lambda m: m.export_consents(cursor, limit, now))

    async def import_consents(self, records: tuple[ConsentRecord, ...], now: int) -> int:
        return await self._write(lambda m: m.import_consents(records, now))

    async def export_clients(self, cursor: str | None, limit: int, now: int) -> Batch[Client]:
        return await self._read(lambda m: m.export_clients(cursor, limit, now))

    async def import_clients(self, records: tuple[Client, ...], now: int) -> int:
        return await self._write(lambda m: m.import_clients(records, now))

    async def export_initial_access_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[InitialAccessToken]:
        return await self._read(lambda m: m.export_initial_access_tokens(cursor, limit, now))

    async def import_initial_access_tokens(
        self, records: tuple[InitialAccessToken, ...], now: int
    ) -> int:
        return await self._write(lambda m: m.import_initial_access_tokens(records, now))

    # StoreAdmin

    async def health(self) -> dict[str, bool]:
        """``{"store": True}`` while the file exists and can be read. Never raises."""
        try:
            await self._read(lambda m: m.health())
        except (StoreUnavailable, StoreMisconfigured):
            return {"store": False}
        return {"store": True}

    async def counts(self, now: int) -> StoreCounts:
        return await self._read(lambda m: m.counts(now))

    async def purge_expired(self, now: int, batch_size: int = 1000) -> PurgeCounts:
        return await self._write(lambda m: m.purge_expired(now, batch_size))

    async def close(self) -> None:
        """Release the lock file. Idempotent; the data is already on disk."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

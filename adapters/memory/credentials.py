"""``MemoryCredentials``: the ``CredentialStore`` port in process memory."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from adapters.memory.state import IdentityState
from domain.entities import Credentials, Passkey
from domain.errors import Conflict, NotFound


class MemoryCredentials(IdentityState):
    """:class:`ports.store.CredentialStore` over one
    :class:`~adapters.memory.state.IdentityState`."""

    __slots__ = ()

    async def get_credentials(self, user_id: str) -> Credentials:
        """See :meth:`ports.store.CredentialStore.get_credentials`."""
        self._require_user(user_id)
        return self._credentials.get(user_id) or Credentials(user_id=user_id)

    async def set_password_hash(self, user_id: str, password_hash: str | None) -> None:
        """See :meth:`ports.store.CredentialStore.set_password_hash`."""
        self._require_user(user_id)
        current = self._credentials.get(user_id) or Credentials(user_id=user_id)
        self._put_credentials(msgspec.structs.replace(current, password_hash=password_hash))

    async def set_totp(self, user_id: str, secret: str | None, *, confirmed: bool) -> None:
        """See :meth:`ports.store.CredentialStore.set_totp`.

        Clearing the seed also clears ``totp_confirmed``: a factor without a seed cannot count.
        """
        self._require_user(user_id)
        current = self._credentials.get(user_id) or Credentials(user_id=user_id)
        updated = msgspec.structs.replace(
            current, totp_secret=secret, totp_confirmed=confirmed and secret is not None
        )
        self._put_credentials(updated)

    async def set_verified_email(self, user_id: str, address: str | None) -> None:
        """See :meth:`ports.store.CredentialStore.set_verified_email`."""
        self._require_user(user_id)
        current = self._credentials.get(user_id) or Credentials(user_id=user_id)
        self._put_credentials(msgspec.structs.replace(current, verified_email=address))

    # Passkeys

    async def add_passkey(self, passkey: Passkey) -> None:
        """See :meth:`ports.store.CredentialStore.add_passkey`."""
        self._require_user(passkey.user_id)
        if passkey.credential_id in self._passkeys:
            raise Conflict("that passkey is registered already", "credential_id")
        self._passkeys[passkey.credential_id] = passkey
        self._passkeys_of_user.setdefault(passkey.user_id, []).append(passkey.credential_id)

    async def list_passkeys(self, user_id: str) -> list[Passkey]:
        """See :meth:`ports.store.CredentialStore.list_passkeys`."""
        held = [self._passkeys[c] for c in self._passkeys_of_user.get(user_id, ())]
        return sorted(held, key=lambda p: (p.created_at, p.credential_id))

    async def find_passkey(self, credential_id: str) -> Passkey | None:
        """See :meth:`ports.store.CredentialStore.find_passkey`."""
        return self._passkeys.get(credential_id)

    async def record_passkey_use(self, credential_id: str, sign_count: int, now: int) -> bool:
        """See :meth:`ports.store.CredentialStore.record_passkey_use`."""
        held = self._passkeys.get(credential_id)
        if held is None or not counter_advances(held.sign_count, sign_count):
            return False
        self._passkeys[credential_id] = msgspec.structs.replace(
            held, sign_count=sign_count, last_used_at=now)
        return True

    async def rename_passkey(self, user_id: str, credential_id: str, name: str) -> bool:
        """See :meth:`ports.store.CredentialStore.rename_passkey`."""
        held = self._passkeys.get(credential_id)
        if held is None or held.user_id != user_id:
            return False
        self._passkeys[credential_id] = msgspec.structs.replace(held, name=name)
        return True

    async def remove_passkey(self, user_id: str, credential_id: str) -> bool:
        """See :meth:`ports.store.CredentialStore.remove_passkey`."""
        held = self._passkeys.get(credential_id)
        if held is None or held.user_id != user_id:
            return False
        del self._passkeys[credential_id]
        ids = self._passkeys_of_user[user_id]
        ids.remove(credential_id)
        if not ids:
            del self._passkeys_of_user[user_id]
        return True

    async def remove_passkeys(self, user_id: str) -> int:
        """See :meth:`ports.store.CredentialStore.remove_passkeys`."""
        return self._drop_passkeys(user_id)

    # Recovery codes

    async def replace_recovery_codes(self, user_id: str, code_hashes: Sequence[str]) -> None:
        """See :meth:`ports.store.CredentialStore.replace_recovery_codes`."""
        self._require_user(user_id)
        if code_hashes:
            self._recovery_codes[user_id] = set(code_hashes)
        else:
            self._recovery_codes.pop(user_id, None)

    async def use_recovery_code(self, user_id: str, code_hash: str) -> bool:
        """See :meth:`ports.store.CredentialStore.use_recovery_code`."""
        held = self._recovery_codes.get(user_id)
        if held is None or code_hash not in held:
            return False
        held.discard(code_hash)
        if not held:
            del self._recovery_codes[user_id]
        return True

    async def count_recovery_codes(self, user_id: str) -> int:
        """See :meth:`ports.store.CredentialStore.count_recovery_codes`."""
        return len(self._recovery_codes.get(user_id, ()))

    def _drop_passkeys(self, user_id: str) -> int:
        ids = self._passkeys_of_user.pop(user_id, [])
        for credential_id in ids:
            del self._passkeys[credential_id]
        return len(ids)

    def _require_user(self, user_id: str) -> None:
        if user_id not in self._users:
            raise NotFound(f"no user {user_id}")

    def _put_credentials(self, credentials: Credentials) -> None:
        if credentials == Credentials(user_id=credentials.user_id):
            self._credentials.pop(credentials.user_id, None)
        else:
            self._credentials[credentials.user_id] = credentials


def counter_advances(stored: int, presented: int) -> bool:
    """WebAuthn's sign-count rule (Level 2, 7.2 step 21): a counter must grow; 0 and 0 is
    an authenticator that keeps no counter."""
    return presented > stored or (stored == 0 and presented == 0)

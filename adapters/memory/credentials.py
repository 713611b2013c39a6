"""``MemoryCredentials``: the ``CredentialStore`` port in process memory."""

from __future__ import annotations

import msgspec

from adapters.memory.state import IdentityState
from domain.entities import Credentials
from domain.errors import NotFound


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

    def _require_user(self, user_id: str) -> None:
        if user_id not in self._users:
            raise NotFound(f"no user {user_id}")

    def _put_credentials(self, credentials: Credentials) -> None:
        if credentials.password_hash is None and credentials.totp_secret is None:
            self._credentials.pop(credentials.user_id, None)
        else:
            self._credentials[credentials.user_id] = credentials

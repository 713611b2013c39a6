"""``MemoryTokens``: the ``TokenStore`` port in process memory.

``take_refresh_token`` never awaits between reading and writing, so on one event loop it
is atomic.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import msgspec

from adapters.memory.state import TokenState, _Hashes, _ReuseMarker
from domain.entities import AccessToken, RefreshTake, RefreshToken, Reused, Taken, Unknown


class MemoryTokens(TokenState):
    """:class:`ports.store.TokenStore` over one :class:`~adapters.memory.state.TokenState`."""

    __slots__ = ()

    async def save_tokens(
        self, access: AccessToken, refresh: RefreshToken | None, now: int
    ) -> None:
        """See :meth:`ports.store.TokenStore.save_tokens`."""
        access = _compact_access(access)
        self._forget_access(access.token_hash)
        self._access[access.token_hash] = access
        self._index(access.token_hash, access.grant_id, access.sub)
        if refresh is not None:
            self._forget_refresh(refresh.token_hash)
            self._refresh[refresh.token_hash] = refresh
            self._index(refresh.token_hash, refresh.grant_id, refresh.sub)

    async def get_access_token(self, token_hash: str, now: int) -> AccessToken | None:
        """See :meth:`ports.store.TokenStore.get_access_token`."""
        token = self._access.get(token_hash)
        return token if token is not None and token.exp > now else None

    async def revoke_access_token(self, token_hash: str, now: int) -> bool:
        """See :meth:`ports.store.TokenStore.revoke_access_token`."""
        token = self._access.get(token_hash)
        if token is None or token.exp <= now:
            return False
        self._deactivate(token)
        return True

    async def get_refresh_token(self, token_hash: str, now: int) -> RefreshToken | None:
        """See :meth:`ports.store.TokenStore.get_refresh_token`."""
        token = self._refresh.get(token_hash)
        return token if token is not None and token.exp > now else None

    async def take_refresh_token(self, token_hash: str, now: int) -> RefreshTake:
        """See :meth:`ports.store.TokenStore.take_refresh_token`."""
        token = self._refresh.get(token_hash)
        if token is not None and token.exp > now:
            self._forget_refresh(token_hash)
            # The marker lives exactly as long as the token would have: no longer.
            self._reuse[token_hash] = _ReuseMarker(exp=token.exp, grant_id=token.grant_id)
            access = self._access.get(token.access_token_hash)
            if access is not None and access.active and access.exp > now:
                self._deactivate(access)
            return Taken(token)
        marker = self._reuse.get(token_hash)
        if marker is not None and marker.exp > now:
            self._revoke(self._by_grant, marker.grant_id, now, lambda t: t.grant_id)
            return Reused(marker.grant_id)
        return Unknown()

    async def revoke_grant(self, grant_id: str, now: int) -> int:
        """See :meth:`ports.store.TokenStore.revoke_grant`."""
        return self._revoke(self._by_grant, grant_id, now, lambda t: t.grant_id)

    async def revoke_subject(self, sub: str, now: int) -> int:
        """See :meth:`ports.store.TokenStore.revoke_subject`."""
        changed = self._revoke(self._by_sub, sub, now, lambda t: t.sub)
        entry = self._codes_by_sub.get(sub)
        hashes = [] if entry is None else [entry] if isinstance(entry, str) else list(entry)
        for code_hash in hashes:
            code = self._codes.get(code_hash)
            if code is not None and code.exp > now:
                changed += 1
            self._forget_code(code_hash)
        return changed

    def _revoke(
        self,
        index: dict[str, _Hashes],
        key: str,
        now: int,
        key_of: Callable[[AccessToken | RefreshToken], str | None],
    ) -> int:
        """Deactivate the live access tokens and drop the live refresh tokens under ``key``.

        Synchronous on purpose: a reuse detection must revoke the family in one step.
        """
        changed = 0
        entry = index.get(key)
        hashes = [] if entry is None else [entry] if isinstance(entry, str) else list(entry)
        for token_hash in hashes:
            access = self._access.get(token_hash)
            if access is not None and key_of(access) == key:
                if access.active and access.exp > now:
                    self._deactivate(access)
                    changed += 1
                continue
            refresh = self._refresh.get(token_hash)
            if refresh is not None and key_of(refresh) == key and refresh.exp > now:
                self._forget_refresh(token_hash)
                changed += 1
        return changed

    def _deactivate(self, token: AccessToken) -> None:
        # Same record with ``active`` false: ``exp`` is untouched, so the lifetime is kept.
        self._access[token.token_hash] = msgspec.structs.replace(token, active=False)


def _compact_access(token: AccessToken) -> AccessToken:
    """The record with its ``scope`` and ``client_id`` shared with every other record.

    Each request parses its own copy of these few distinct strings; sharing them saves
    about a hundred bytes per stored token.
    """
    scope, client_id = sys.intern(token.scope), sys.intern(token.client_id)
    if scope is token.scope and client_id is token.client_id:
        return token
    return msgspec.structs.replace(token, scope=scope, client_id=client_id)

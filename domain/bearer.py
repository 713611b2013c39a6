"""Resolving a bearer access token (RFC 6750) to its live record."""

from __future__ import annotations

from domain.entities import AccessToken
from domain.tokens import ACCESS_TOKEN_PREFIX, hash_token
from ports.store import TokenStore


async def resolve_bearer(store: TokenStore, token: str, now: int) -> AccessToken | None:
    """The record of an active, unexpired access token, else None.

    Raises ``StoreUnavailable`` when the store cannot answer (callers fail closed).
    """
    if not token.startswith(ACCESS_TOKEN_PREFIX) or len(token) > 512:
        return None
    record = await store.get_access_token(hash_token(token), now)
    if record is None or not record.is_active(now):
        return None
    return record


def has_scope(record: AccessToken, scope: str) -> bool:
    return scope in record.scope.split()

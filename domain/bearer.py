"""Resolving a bearer access token (RFC 6750) to its live record."""

from __future__ import annotations

from domain.entities import AccessToken
from domain.token_binding import bound_jkt
from domain.tokens import hash_token, is_access_token
from ports.store import TokenStore


async def resolve_bearer(
    store: TokenStore, token: str, now: int, *, allow_dpop_bound: bool = False
) -> AccessToken | None:
    """The record of an active, unexpired access token, else None.

    A DPoP-bound token is None too unless ``allow_dpop_bound``: only a caller that goes on
    to check its proof (``domain.dpop.check_presentation``) may accept one, so that an
    endpoint that knows nothing of DPoP never takes a bound token as a bearer token.
    Raises ``StoreUnavailable`` when the store cannot answer (callers fail closed).
    """
    if not is_access_token(token):
        return None
    record = await store.get_access_token(hash_token(token), now)
    if record is None or not record.is_active(now):
        return None
    if not allow_dpop_bound and bound_jkt(record.token_binding) is not None:
        return None
    return record


def has_scope(record: AccessToken, scope: str) -> bool:
    return scope in record.scope.split()

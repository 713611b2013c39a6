"""Use case: refresh (rotation, reuse detection, scope narrowing, fail closed)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from domain.entities import RefreshTake, RefreshToken
from domain.errors import StoreUnavailable
from domain.oauth import OAuthError, TokenResponse, exchange_authorization_code, refresh
from domain.tokens import hash_token
from tests.unit.oauth_doubles import (
    CONFIDENTIAL,
    OTHER,
    PUBLIC,
    REDIRECT,
    SERVICE,
    T0,
    VERIFIER,
    World,
)


async def _first_pair(world: World, **kwargs: Any) -> TokenResponse:
    client = kwargs.pop("client", CONFIDENTIAL)
    code = await world.code(client, **kwargs)
    response = await exchange_authorization_code(world.ports, client, code, REDIRECT, VERIFIER)
    assert response.refresh_token is not None
    return response


async def test_rotation_issues_a_new_pair_and_retires_the_old_one() -> None:
    world = World()
    first = await _first_pair(world, mfa_verified=True)
    assert first.refresh_token is not None
    world.clock.advance(10)
    now = T0 + 10
    second = await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)
    assert second.refresh_token is not None and second.refresh_token != first.refresh_token
    assert second.scope == first.scope
    old_access = await world.store.get_access_token(hash_token(first.access_token), now)
    assert old_access is not None and not old_access.active
    assert await world.store.get_refresh_token(hash_token(first.refresh_token), now) is None
    new_access = await world.store.get_access_token(hash_token(second.access_token), now)
    assert new_access is not None and new_access.is_active(now)
    assert new_access.sub == "user-1" and new_access.mfa_verified
    assert new_access.auth_time == T0 - 5
    assert new_access.grant_id == old_access.grant_id
    new_refresh = await world.store.get_refresh_token(hash_token(second.refresh_token), now)
    assert new_refresh is not None and new_refresh.exp == now + 86400
    assert ("token_issued", {"grant_type": "refresh_token", "client_id": "app"}) in (
        world.events.events
    )


async def test_scope_may_be_narrowed_for_the_access_token_only() -> None:
    world = World()
    first = await _first_pair(world)
    assert first.refresh_token is not None
    second = await refresh(world.ports, CONFIDENTIAL, first.refresh_token, "read")
    assert second.scope == "read"
    access = await world.store.get_access_token(hash_token(second.access_token), T0)
    assert access is not None and access.scope == "read"
    assert second.refresh_token is not None
    # RFC 6749 section 6: the new refresh token keeps the scope of the one presented.
    kept = await world.store.get_refresh_token(hash_token(second.refresh_token), T0)
    assert kept is not None and kept.scope == "openid offline_access read"


async def test_widening_the_scope_is_refused_without_burning_the_token() -> None:
    world = World()
    first = await _first_pair(world)
    assert first.refresh_token is not None
    with pytest.raises(OAuthError) as caught:
        await refresh(world.ports, CONFIDENTIAL, first.refresh_token, "read write")
    assert caught.value.error == "invalid_scope"
    again = await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)
    assert again.access_token


async def test_another_client_cannot_use_or_burn_the_token() -> None:
    world = World()
    first = await _first_pair(world)
    assert first.refresh_token is not None
    with pytest.raises(OAuthError) as caught:
        await refresh(world.ports, OTHER, first.refresh_token, None)
    assert caught.value.error == "invalid_grant"
    assert (await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)).access_token


async def test_reuse_revokes_the_whole_family() -> None:
    world = World()
    first = await _first_pair(world)
    assert first.refresh_token is not None
    second = await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)
    with pytest.raises(OAuthError) as caught:
        await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)
    assert caught.value.error == "invalid_grant"
    assert caught.value.event == "refresh_token_reused"
    assert "refresh_token_reused" in world.events.names()
    access = await world.store.get_access_token(hash_token(second.access_token), T0)
    assert access is not None and not access.active
    assert second.refresh_token is not None
    assert await world.store.get_refresh_token(hash_token(second.refresh_token), T0) is None
    with pytest.raises(OAuthError):
        await refresh(world.ports, CONFIDENTIAL, second.refresh_token, None)


async def test_reuse_marker_expires_with_the_token() -> None:
    world = World()
    first = await _first_pair(world)
    assert first.refresh_token is not None
    await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)
    world.clock.advance(86400)
    with pytest.raises(OAuthError) as caught:
        await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)
    assert caught.value.error == "invalid_grant" and caught.value.event is None


async def test_expired_refresh_token_is_invalid_grant() -> None:
    world = World()
    first = await _first_pair(world)
    assert first.refresh_token is not None
    world.clock.advance(86400)
    with pytest.raises(OAuthError) as caught:
        await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)
    assert caught.value.error == "invalid_grant"


@pytest.mark.parametrize("token", ["rt_unknown", "tk_not-a-refresh-token", "x" * 600])
async def test_unknown_token_is_invalid_grant(token: str) -> None:
    with pytest.raises(OAuthError) as caught:
        await refresh(World().ports, CONFIDENTIAL, token, None)
    assert caught.value.error == "invalid_grant"


async def test_client_without_the_grant_is_refused() -> None:
    with pytest.raises(OAuthError) as caught:
        await refresh(World().ports, SERVICE, "rt_x", None)
    assert caught.value.error == "unauthorized_client"


async def test_public_client_rotation() -> None:
    world = World()
    first = await _first_pair(world, client=PUBLIC)
    assert first.refresh_token is not None
    second = await refresh(world.ports, PUBLIC, first.refresh_token, None)
    assert second.refresh_token is not None


async def test_concurrent_rotations_one_wins_and_the_family_is_revoked() -> None:
    world = World()
    first = await _first_pair(world)
    assert first.refresh_token is not None
    token = first.refresh_token
    results = await asyncio.gather(
        *(refresh(world.ports, CONFIDENTIAL, token, None) for _ in range(30)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, TokenResponse)]
    losers = [r for r in results if isinstance(r, OAuthError)]
    assert len(winners) == 1 and len(losers) == 29
    assert all(e.error == "invalid_grant" for e in losers)
    access = await world.store.get_access_token(hash_token(winners[0].access_token), T0)
    assert access is not None and not access.active


class _FailingStore:
    """The memory store, except that refresh-token operations fail as an outage would."""

    def __init__(self, inner: Any, fail_on: str) -> None:
        self._inner = inner
        self._fail_on = fail_on

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def get_refresh_token(self, token_hash: str, now: int) -> RefreshToken | None:
        if self._fail_on == "get":
            raise StoreUnavailable("down")
        result: RefreshToken | None = await self._inner.get_refresh_token(token_hash, now)
        return result

    async def take_refresh_token(self, token_hash: str, now: int) -> RefreshTake:
        if self._fail_on == "take":
            raise StoreUnavailable("down")
        result: RefreshTake = await self._inner.take_refresh_token(token_hash, now)
        return result


@pytest.mark.parametrize("fail_on", ["get", "take"])
async def test_store_failure_during_the_reuse_check_fails_closed(fail_on: str) -> None:
    world = World()
    first = await _first_pair(world)
    assert first.refresh_token is not None
    world.store = _FailingStore(world.store, fail_on)
    with pytest.raises(StoreUnavailable):
        await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)
    assert "token_issued" not in world.events.names()[1:]


class _InterleavingStore:
    """The memory store, yielding to the event loop before every call, as a networked
    store would: concurrent rotations then interleave between their reads and writes."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            return await method(*args, **kwargs)

        return call


async def test_interleaved_rotations_revoke_the_winners_pair_too() -> None:
    world = World()
    first = await _first_pair(world)
    assert first.refresh_token is not None
    token = first.refresh_token
    world.store = _InterleavingStore(world.store)
    results = await asyncio.gather(
        *(refresh(world.ports, CONFIDENTIAL, token, None) for _ in range(30)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, TokenResponse)]
    assert len(winners) == 1
    assert all(isinstance(r, OAuthError) and r.error == "invalid_grant"
               for r in results if r is not winners[0])
    assert winners[0].refresh_token is not None
    assert await world.store.get_refresh_token(hash_token(winners[0].refresh_token), T0) is None
    access = await world.store.get_access_token(hash_token(winners[0].access_token), T0)
    assert access is not None and not access.active


# Absolute lifetime (REFRESH_TOKEN_MAX_LIFETIME_SECONDS)

MAX_LIFETIME = 216_000  # two and a half days; refresh tokens live one day each


def _capped_world() -> World:
    world = World()
    world.policy = msgspec.structs.replace(world.policy,
                                           refresh_max_lifetime_seconds=MAX_LIFETIME)
    return world


async def test_rotation_never_extends_the_grant_past_its_absolute_lifetime() -> None:
    world = _capped_world()
    first = await _first_pair(world)
    signed_in = T0 - 5  # world.code's auth_time
    end = signed_in + MAX_LIFETIME
    token = first.refresh_token
    assert token is not None
    for _ in range(2):
        world.clock.advance(86_000)
        pair = await refresh(world.ports, CONFIDENTIAL, token, None)
        assert pair.refresh_token is not None
        token = pair.refresh_token
        record = await world.store.get_refresh_token(hash_token(token), world.clock.now())
        assert record is not None and record.auth_time == signed_in  # carried, not renewed
        assert record.exp == min(world.clock.now() + 86_400, end)
    assert record.exp == end
    # An hour before the end, the access token gets what is left, not a full hour.
    world.clock.value = end - 1800
    last = await refresh(world.ports, CONFIDENTIAL, token, None)
    assert last.expires_in == 1800
    access = await world.store.get_access_token(hash_token(last.access_token), end - 1800)
    assert access is not None and access.exp == end and access.auth_time == signed_in
    assert last.refresh_token is not None
    world.clock.value = end
    with pytest.raises(OAuthError) as caught:
        await refresh(world.ports, CONFIDENTIAL, last.refresh_token, None)
    assert caught.value.error == "invalid_grant"


async def test_a_grant_older_than_a_lowered_limit_cannot_be_refreshed() -> None:
    world = World()
    first = await _first_pair(world)
    assert first.refresh_token is not None
    world.clock.advance(3000)
    world.policy = msgspec.structs.replace(world.policy, refresh_max_lifetime_seconds=3000)
    with pytest.raises(OAuthError) as caught:
        await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)
    assert caught.value.error == "invalid_grant"
    assert "sign in again" in caught.value.description


async def test_the_cap_counts_from_the_refresh_token_issue_time_when_auth_time_is_unknown() -> None:
    world = _capped_world()
    first = await _first_pair(world)
    assert first.refresh_token is not None
    record = await world.store.get_refresh_token(hash_token(first.refresh_token), T0)
    access = await world.store.get_access_token(record.access_token_hash, T0) if record else None
    assert record is not None and access is not None
    # A refresh token stored before auth_time was recorded.
    await world.store.save_tokens(access, msgspec.structs.replace(record, auth_time=None), T0)
    world.clock.advance(100)
    pair = await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)
    assert pair.refresh_token is not None
    rotated = await world.store.get_refresh_token(hash_token(pair.refresh_token), T0 + 100)
    assert rotated is not None and rotated.auth_time == record.iat == T0

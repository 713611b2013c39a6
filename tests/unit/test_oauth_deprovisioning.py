"""Deprovisioning (SCIM deactivation or deletion) ends every grant of the user: pending
codes, code exchange and refresh all refuse a missing or inactive user."""

from __future__ import annotations

import msgspec
import pytest

from adapters.memory.store import MemoryStore
from domain import identities
from domain.entities import User
from domain.oauth import OAuthError, exchange_authorization_code, refresh
from domain.tokens import hash_token
from tests.unit.oauth_doubles import CONFIDENTIAL, REDIRECT, T0, VERIFIER, World
from tests.unit.session_doubles import no_sessions

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
DEACTIVATE = {"schemas": [PATCH_OP],
              "Operations": [{"op": "replace", "path": "active", "value": False}]}


class _UnusedHasher:
    async def hash(self, password: str) -> str:
        raise AssertionError("no password in these requests")

    async def verify(self, password_hash: str | None, password: str) -> bool:
        raise AssertionError("no password in these requests")


async def _deactivate(world: World, user_id: str = "user-1") -> None:
    """What ``PATCH /scim/v2/Users/{id}`` with ``active: false`` does."""
    await identities.patch_user(world.store, world.clock, _UnusedHasher(), world.events,
                                user_id, DEACTIVATE, sessions=no_sessions)


async def _deactivate_in_store_only(world: World, user_id: str = "user-1") -> None:
    """A deactivation whose token revocation did not (yet) reach the grant."""
    user = await world.store.get_user(user_id)
    await world.store.replace_user(msgspec.structs.replace(user, active=False))


async def _is_active(world: World, access_token: str) -> bool:
    record = await world.store.get_access_token(hash_token(access_token), world.clock.now())
    return record is not None and record.is_active(world.clock.now())


async def test_a_code_issued_before_deactivation_gives_no_tokens() -> None:
    world = World()
    code = await world.code()
    await _deactivate(world)
    with pytest.raises(OAuthError) as caught:
        await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER)
    assert caught.value.error == "invalid_grant"
    assert world.store.tokens.count_access_tokens(T0) == 0


async def test_a_code_issued_before_deletion_gives_no_tokens() -> None:
    world = World()
    code = await world.code()
    await identities.delete_user(world.store, world.clock, world.events, "user-1",
                                 sessions=no_sessions)
    with pytest.raises(OAuthError) as caught:
        await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER)
    assert caught.value.error == "invalid_grant"


@pytest.mark.parametrize("gone", ["deactivated", "deleted"])
async def test_exchange_checks_the_user_even_when_the_code_survived(gone: str) -> None:
    # The code outlived the revocation (e.g. it was issued on a store that kept it): the
    # exchange itself reads the user, refuses and revokes what it issued.
    world = World()
    code = await world.code()
    if gone == "deactivated":
        await _deactivate_in_store_only(world)
    else:
        await world.store.delete_user("user-1")
    with pytest.raises(OAuthError) as caught:
        await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER)
    assert caught.value.error == "invalid_grant"
    assert caught.value.event == "grant_refused_inactive_user"
    assert world.store.tokens.count_refresh_tokens(T0) == 0
    assert world.store.tokens.count_access_tokens(T0) == 1  # saved, then revoked
    assert not any(record.active for record in world.store.tokens._access.values())


async def test_refresh_of_a_deactivated_user_is_refused_and_revokes_the_grant() -> None:
    world = World()
    code = await world.code()
    first = await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT,
                                              VERIFIER)
    assert first.refresh_token is not None
    await _deactivate_in_store_only(world)
    with pytest.raises(OAuthError) as caught:
        await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)
    assert caught.value.error == "invalid_grant"
    assert not await _is_active(world, first.access_token)
    assert world.store.tokens.count_refresh_tokens(T0) == 0
    assert not any(record.active for record in world.store.tokens._access.values())


async def test_refresh_of_a_deleted_user_is_refused() -> None:
    world = World()
    code = await world.code()
    first = await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT,
                                              VERIFIER)
    assert first.refresh_token is not None
    await world.store.delete_user("user-1")
    with pytest.raises(OAuthError) as caught:
        await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)
    assert caught.value.error == "invalid_grant"
    assert world.store.tokens.count_refresh_tokens(T0) == 0


async def test_a_reactivated_user_signs_in_again() -> None:
    world = World()
    stale = await world.code()
    await _deactivate(world)
    user = await world.store.get_user("user-1")
    await world.store.replace_user(msgspec.structs.replace(user, active=True))
    with pytest.raises(OAuthError):
        await exchange_authorization_code(world.ports, CONFIDENTIAL, stale, REDIRECT, VERIFIER)
    fresh = await world.code()
    issued = await exchange_authorization_code(world.ports, CONFIDENTIAL, fresh, REDIRECT,
                                               VERIFIER)
    assert await _is_active(world, issued.access_token)


class _DeactivatedWhileExchanging(MemoryStore):
    """A store where the user is deactivated (and its tokens revoked, as SCIM does) just
    after the exchange has read the user: the read saw an active user."""

    armed = True

    async def get_user(self, user_id: str) -> User:
        user = await super().get_user(user_id)
        if self.armed:
            self.armed = False
            await super().replace_user(msgspec.structs.replace(user, active=False))
            await self.revoke_subject(user_id, T0)
        return user


async def test_a_deactivation_racing_the_exchange_leaves_no_live_token() -> None:
    world = World(store=_DeactivatedWhileExchanging())
    world.store.armed = False
    code = await world.code()
    world.store.armed = True
    issued = await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT,
                                               VERIFIER)
    # The user was read as active, but only after the tokens were saved: the revocation
    # that came with the deactivation reached them.
    assert not await _is_active(world, issued.access_token)
    assert issued.refresh_token is not None
    with pytest.raises(OAuthError):
        await refresh(world.ports, CONFIDENTIAL, issued.refresh_token, None)

"""Use cases: introspect (RFC 7662) and revoke (RFC 7009)."""

from __future__ import annotations

import msgspec
import pytest

from domain.entities import AccessToken
from domain.oauth import (
    Introspection,
    exchange_authorization_code,
    introspect,
    issue_client_credentials,
    revoke,
)
from domain.tokens import hash_token
from tests.unit.oauth_doubles import CONFIDENTIAL, ISSUER, OTHER, REDIRECT, T0, VERIFIER, World


async def test_active_access_token() -> None:
    world = World()
    code = await world.code(mfa_verified=True)
    issued = await exchange_authorization_code(
        world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER
    )
    result = await introspect(world.ports, CONFIDENTIAL, issued.access_token, None)
    assert msgspec.to_builtins(result) == {
        "active": True,
        "scope": "openid offline_access read",
        "client_id": "app",
        "sub": "user-1",
        "exp": T0 + 3600,
        "iat": T0,
        "iss": ISSUER,
        "token_type": "Bearer",
        "mfa_verified": True,
    }
    assert ("token_introspected", {"active": True}) in world.events.events


async def test_client_credentials_token_has_the_client_as_sub() -> None:
    # RFC 9068 section 2.2: a token a client got for itself has the client as subject.
    world = World()
    issued = await issue_client_credentials(world.ports, CONFIDENTIAL, "read")
    result = msgspec.to_builtins(
        await introspect(world.ports, CONFIDENTIAL, issued.access_token, None)
    )
    assert result["active"] is True and result["mfa_verified"] is False
    assert result["sub"] == CONFIDENTIAL.client_id == result["client_id"]
    # The record still says "no user", which is what the service guards check.
    record = await world.store.get_access_token(hash_token(issued.access_token), T0)
    assert record is not None and record.sub is None


async def test_bound_token_has_cnf() -> None:
    world = World()
    await world.store.save_tokens(
        AccessToken(token_hash=hash_token("tk_bound"), token_display="tk_b...", active=True,
                    scope="read", client_id="app", exp=T0 + 60, iat=T0, token_binding="abc"),
        None, T0,
    )
    result = await introspect(world.ports, CONFIDENTIAL, "tk_bound", None)
    assert result.cnf == {"x5t#S256": "abc"}


@pytest.mark.parametrize("token", ["tk_unknown", "rt_unknown", "garbage", "tk_" + "a" * 600])
async def test_unknown_token_is_inactive(token: str) -> None:
    world = World()
    result = await introspect(world.ports, CONFIDENTIAL, token, None)
    assert msgspec.to_builtins(result) == {"active": False}
    assert ("token_introspected", {"active": False}) in world.events.events


async def test_expired_token_is_inactive() -> None:
    world = World()
    issued = await issue_client_credentials(world.ports, CONFIDENTIAL, "read")
    world.clock.advance(3600)
    result = await introspect(world.ports, CONFIDENTIAL, issued.access_token, None)
    assert result == Introspection(active=False)


async def test_revoked_token_is_inactive() -> None:
    world = World()
    issued = await issue_client_credentials(world.ports, CONFIDENTIAL, "read")
    assert await revoke(world.ports, CONFIDENTIAL, issued.access_token, None)
    result = await introspect(world.ports, CONFIDENTIAL, issued.access_token, None)
    assert result == Introspection(active=False)
    assert "token_revoked" in world.events.names()


@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token"])
async def test_refresh_token_is_introspectable_by_its_client(hint: str | None) -> None:
    world = World()
    code = await world.code()
    issued = await exchange_authorization_code(
        world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER
    )
    assert issued.refresh_token is not None
    result = await introspect(world.ports, CONFIDENTIAL, issued.refresh_token, hint)
    assert result.active and result.token_type == "refresh_token"
    assert result.client_id == "app" and result.sub == "user-1" and result.exp == T0 + 86400
    hidden = await introspect(world.ports, OTHER, issued.refresh_token, hint)
    assert hidden == Introspection(active=False)


async def test_revoking_a_refresh_token_revokes_its_family() -> None:
    world = World()
    code = await world.code()
    issued = await exchange_authorization_code(
        world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER
    )
    assert issued.refresh_token is not None
    assert await revoke(world.ports, CONFIDENTIAL, issued.refresh_token, "access_token")
    assert (await introspect(world.ports, CONFIDENTIAL, issued.access_token, None)).active is False
    assert await world.store.get_refresh_token(hash_token(issued.refresh_token), T0) is None


async def test_a_client_cannot_revoke_another_clients_tokens() -> None:
    world = World()
    code = await world.code()
    issued = await exchange_authorization_code(
        world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER
    )
    assert issued.refresh_token is not None
    assert not await revoke(world.ports, OTHER, issued.access_token, None)
    assert not await revoke(world.ports, OTHER, issued.refresh_token, None)
    assert (await introspect(world.ports, CONFIDENTIAL, issued.access_token, None)).active
    assert await world.store.get_refresh_token(hash_token(issued.refresh_token), T0) is not None


@pytest.mark.parametrize("token", ["tk_unknown", "rt_unknown", "garbage"])
async def test_revoking_an_unknown_token_is_a_no_op(token: str) -> None:
    world = World()
    assert not await revoke(world.ports, CONFIDENTIAL, token, None)
    assert "token_revoked" not in world.events.names()

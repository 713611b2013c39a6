"""Use case: issue_client_credentials (RFC 6749 section 4.4)."""

from __future__ import annotations

import pytest

from domain.oauth import OAuthError, issue_client_credentials, parse_scope
from domain.tokens import hash_token
from tests.unit.oauth_doubles import CONFIDENTIAL, PUBLIC, SERVICE, T0, World


async def test_issues_an_access_token_and_no_refresh_token() -> None:
    world = World()
    response = await issue_client_credentials(world.ports, SERVICE, "read")
    assert response.access_token.startswith("tk_")
    assert response.refresh_token is None and response.id_token is None
    assert response.token_type == "Bearer"
    assert response.expires_in == 3600
    assert response.scope == "read"
    record = await world.store.get_access_token(hash_token(response.access_token), T0)
    assert record is not None and record.is_active(T0)
    assert record.client_id == "svc" and record.sub is None and record.grant_id is None
    assert record.exp == T0 + 3600 and record.iat == T0
    assert ("token_issued", {"grant_type": "client_credentials", "client_id": "svc"}) in (
        world.events.events
    )


async def test_token_value_has_at_least_256_bits() -> None:
    response = await issue_client_credentials(World().ports, SERVICE, None)
    # 32 random bytes, URL-safe base64 without padding: 43 characters after the prefix.
    assert len(response.access_token) - len("tk_") >= 43


async def test_token_is_stored_only_as_its_hash() -> None:
    world = World()
    response = await issue_client_credentials(world.ports, SERVICE, None)
    assert await world.store.get_access_token(response.access_token, T0) is None


async def test_default_scope_is_every_client_scope_without_user_scopes() -> None:
    response = await issue_client_credentials(World().ports, SERVICE, None)
    assert response.scope == "read write"


async def test_scope_beyond_the_client_is_refused() -> None:
    with pytest.raises(OAuthError) as caught:
        await issue_client_credentials(World().ports, SERVICE, "read admin")
    assert caught.value.error == "invalid_scope"


async def test_user_scope_is_refused_without_a_user() -> None:
    with pytest.raises(OAuthError) as caught:
        await issue_client_credentials(World().ports, SERVICE, "openid")
    assert caught.value.error == "invalid_scope"


async def test_client_without_the_grant_is_refused() -> None:
    with pytest.raises(OAuthError) as caught:
        await issue_client_credentials(World().ports, PUBLIC, None)
    assert caught.value.error == "unauthorized_client"


async def test_token_expires_after_its_lifetime() -> None:
    world = World()
    response = await issue_client_credentials(world.ports, CONFIDENTIAL, "read")
    token_hash = hash_token(response.access_token)
    assert await world.store.get_access_token(token_hash, T0 + 3599) is not None
    assert await world.store.get_access_token(token_hash, T0 + 3600) is None


def test_parse_scope() -> None:
    assert parse_scope(None) is None
    assert parse_scope("") is None
    assert parse_scope("read  write read") == ("read", "write")
    with pytest.raises(OAuthError) as caught:
        parse_scope('read "quoted"')
    assert caught.value.error == "invalid_scope"

"""Scope kinds in the OAuth use cases: service scopes only through client_credentials, to
the client itself; user scopes only on behalf of a signed-in user."""

from __future__ import annotations

import msgspec
import pytest

from domain.entities import AccessToken, AuthorizationCode, RefreshToken
from domain.oauth import (
    OAuthError,
    exchange_authorization_code,
    issue_client_credentials,
    pkce_s256,
    refresh,
)
from domain.scopes import SERVICE_SCOPES, allows_service
from domain.tokens import hash_token
from tests.unit.oauth_doubles import CONFIDENTIAL, REDIRECT, SCOPES, T0, VERIFIER, World

#: A client that may use every grant and holds user and service scopes (the old demo client).
MIXED = msgspec.structs.replace(CONFIDENTIAL, client_id="mixed",
                                scopes=SCOPES | SERVICE_SCOPES)


@pytest.mark.parametrize("scope", ["openid scim:write", "scim:read", "read admin"])
async def test_a_user_cannot_delegate_a_service_scope(scope: str) -> None:
    world = World()
    with pytest.raises(OAuthError) as caught:
        await world.code(MIXED, scope=scope)
    assert caught.value.error == "invalid_scope"
    assert world.store.tokens.count_codes(T0) == 0


async def test_a_code_minted_with_a_service_scope_before_the_fix_is_refused() -> None:
    world = World()
    await world.ensure_user("user-1")
    value = "ac_" + "legacy" * 8
    await world.store.save_code(AuthorizationCode(
        code_hash=hash_token(value), client_id=MIXED.client_id, redirect_uri=REDIRECT,
        scope="openid scim:write", exp=T0 + 600, grant_id="gr_legacy", user_id="user-1",
        pkce_challenge=pkce_s256(VERIFIER), pkce_method="S256", auth_time=T0,
    ), T0)
    with pytest.raises(OAuthError) as caught:
        await exchange_authorization_code(world.ports, MIXED, value, REDIRECT, VERIFIER)
    assert caught.value.error == "invalid_scope"
    assert world.store.tokens.count_access_tokens(T0) == 0


async def test_the_same_client_gets_service_scopes_for_itself() -> None:
    world = World()
    response = await issue_client_credentials(world.ports, MIXED, "scim:write read")
    assert response.scope == "scim:write read"
    record = await world.store.get_access_token(hash_token(response.access_token), T0)
    assert record is not None and record.sub is None
    assert allows_service(record, "scim:write")


async def test_client_credentials_default_scope_holds_service_and_api_scopes_only() -> None:
    response = await issue_client_credentials(World().ports, MIXED, None)
    assert response.scope.split() == sorted({"read", "write"} | SERVICE_SCOPES)


@pytest.mark.parametrize("identity", ["openid", "profile", "email", "offline_access",
                                      "groups", "mfa"])
async def test_client_credentials_never_grants_an_identity_scope(identity: str) -> None:
    client = msgspec.structs.replace(MIXED, scopes=MIXED.scopes | {identity})
    with pytest.raises(OAuthError) as caught:
        await issue_client_credentials(World().ports, client, f"read {identity}")
    assert caught.value.error == "invalid_scope"


async def _user_grant(world: World, scope: str) -> tuple[str, str]:
    """A refresh token (and its access token) of a user grant with ``scope``, stored as a
    grant issued before scope kinds existed would be."""
    await world.ensure_user("user-1")
    access_value, refresh_value = "tk_" + "old" * 15, "rt_" + "old" * 15
    access = AccessToken(
        token_hash=hash_token(access_value), token_display="tk_old...", active=True,
        scope=scope, client_id=MIXED.client_id, exp=T0 + 3600, iat=T0, sub="user-1",
        grant_id="gr_old", auth_time=T0,
    )
    token = RefreshToken(
        token_hash=hash_token(refresh_value), access_token_hash=access.token_hash,
        exp=T0 + 86400, iat=T0, grant_id="gr_old", client_id=MIXED.client_id, scope=scope,
        sub="user-1", auth_time=T0,
    )
    await world.store.save_tokens(access, token, T0)
    # The user consented to it then (MIXED is not first-party).
    await world.store.grant_consent("user-1", MIXED.client_id, tuple(scope.split()), T0)
    return access_value, refresh_value


async def test_a_service_scope_in_a_refresh_request_is_invalid_scope() -> None:
    world = World()
    code = await world.code(MIXED, scope="openid offline_access read")
    first = await exchange_authorization_code(world.ports, MIXED, code, REDIRECT, VERIFIER)
    assert first.refresh_token is not None
    with pytest.raises(OAuthError) as caught:
        await refresh(world.ports, MIXED, first.refresh_token, "read scim:write")
    assert caught.value.error == "invalid_scope"
    # Refused before the take: the refresh token still works.
    assert (await refresh(world.ports, MIXED, first.refresh_token, None)).scope == first.scope


async def test_an_old_grant_holding_a_service_scope_must_be_narrowed() -> None:
    world = World()
    _, old_refresh = await _user_grant(world, "openid offline_access scim:write")
    with pytest.raises(OAuthError) as caught:
        await refresh(world.ports, MIXED, old_refresh, None)
    assert caught.value.error == "invalid_scope"
    narrowed = await refresh(world.ports, MIXED, old_refresh, "openid offline_access")
    assert narrowed.scope == "openid offline_access"


def test_a_service_guard_refuses_a_users_token_whatever_its_scope() -> None:
    user_token = AccessToken(
        token_hash="h", token_display="tk_x...", active=True, scope="scim:write",
        client_id="mixed", exp=T0 + 60, iat=T0, sub="user-1",
    )
    assert not allows_service(user_token, "scim:write")
    service_token = msgspec.structs.replace(user_token, sub=None)
    assert allows_service(service_token, "scim:write")
    assert not allows_service(service_token, "scim:read")


"""Per-client policy in the token use cases: lifetimes, require_mfa, the client's scopes."""

from __future__ import annotations

import msgspec
import pytest

from domain.oauth import (
    OAuthError,
    TokenPolicy,
    exchange_authorization_code,
    issue_client_credentials,
    refresh,
)
from domain.tokens import hash_token
from tests.unit.oauth_doubles import CONFIDENTIAL, ISSUER, REDIRECT, SERVICE, VERIFIER, World

SHORT = msgspec.structs.replace(CONFIDENTIAL, access_token_lifetime=300,
                                refresh_token_lifetime=7200)
MFA = msgspec.structs.replace(CONFIDENTIAL, require_mfa=True)


async def test_an_authorization_code_grant_uses_the_clients_lifetimes() -> None:
    world = World()
    code = await world.code(SHORT)
    response = await exchange_authorization_code(world.ports, SHORT, code, REDIRECT, VERIFIER)
    assert response.expires_in == 300
    now = world.clock.now()
    access = await world.store.get_access_token(hash_token(response.access_token), now)
    assert access is not None and access.exp == now + 300
    assert response.refresh_token is not None
    held = await world.store.get_refresh_token(hash_token(response.refresh_token), now)
    assert held is not None and held.exp == now + 7200


async def test_a_refresh_uses_the_clients_lifetimes_as_they_are_now() -> None:
    world = World()
    code = await world.code(CONFIDENTIAL)
    first = await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT,
                                              VERIFIER)
    assert first.expires_in == 3600 and first.refresh_token is not None
    # The operator shortened the client's lifetimes after the sign-in.
    second = await refresh(world.ports, SHORT, first.refresh_token, None)
    assert second.expires_in == 300
    now = world.clock.now()
    assert second.refresh_token is not None
    held = await world.store.get_refresh_token(hash_token(second.refresh_token), now)
    assert held is not None and held.exp == now + 7200


async def test_client_credentials_use_the_clients_access_token_lifetime() -> None:
    world = World()
    client = msgspec.structs.replace(SERVICE, access_token_lifetime=120)
    response = await issue_client_credentials(world.ports, client, "read")
    assert response.expires_in == 120
    now = world.clock.now()
    access = await world.store.get_access_token(hash_token(response.access_token), now)
    assert access is not None and access.exp == now + 120
    default = await issue_client_credentials(world.ports, SERVICE, "read")
    assert default.expires_in == 3600


async def test_no_client_lifetime_goes_past_the_grants_absolute_lifetime() -> None:
    world = World(policy=TokenPolicy(issuer=ISSUER, refresh_max_lifetime_seconds=5000))
    long_lived = msgspec.structs.replace(CONFIDENTIAL, access_token_lifetime=86_400,
                                         refresh_token_lifetime=31_536_000)
    code = await world.code(long_lived)  # signed in 5 seconds ago
    response = await exchange_authorization_code(world.ports, long_lived, code, REDIRECT,
                                                 VERIFIER)
    now = world.clock.now()
    assert response.expires_in == 5000 - 5
    assert response.refresh_token is not None
    held = await world.store.get_refresh_token(hash_token(response.refresh_token), now)
    assert held is not None and held.exp == now - 5 + 5000


def test_the_policy_falls_back_to_the_server_defaults_and_caps_refresh_lifetimes() -> None:
    policy = TokenPolicy(issuer=ISSUER, access_token_seconds=900, refresh_token_seconds=3600,
                         refresh_max_lifetime_seconds=10_000)
    assert policy.access_lifetime(CONFIDENTIAL) == 900
    assert policy.refresh_lifetime(CONFIDENTIAL) == 3600
    assert policy.access_lifetime(SHORT) == 300
    assert policy.refresh_lifetime(SHORT) == 7200
    huge = msgspec.structs.replace(CONFIDENTIAL, refresh_token_lifetime=50_000)
    assert policy.refresh_lifetime(huge) == 10_000


async def test_a_client_that_requires_mfa_gets_no_code_from_a_password_only_sign_in() -> None:
    world = World()
    with pytest.raises(OAuthError) as refused:
        await world.code(MFA, mfa_verified=False)
    assert refused.value.error == "access_denied" and refused.value.event == "mfa_required"
    assert "two-factor" in refused.value.description
    assert ("mfa_required", {"client_id": "app", "user_id": "user-1"}) in world.events.events
    assert await world.code(MFA, mfa_verified=True)


async def test_a_code_from_before_the_client_required_mfa_is_refused_at_the_exchange() -> None:
    world = World()
    code = await world.code(CONFIDENTIAL, mfa_verified=False)
    with pytest.raises(OAuthError) as refused:
        await exchange_authorization_code(world.ports, MFA, code, REDIRECT, VERIFIER)
    assert refused.value.error == "invalid_grant"


async def test_a_password_only_grant_cannot_refresh_once_the_client_requires_mfa() -> None:
    world = World()
    code = await world.code(CONFIDENTIAL, mfa_verified=False)
    first = await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT,
                                              VERIFIER)
    assert first.refresh_token is not None
    with pytest.raises(OAuthError) as refused:
        await refresh(world.ports, MFA, first.refresh_token, None)
    assert refused.value.error == "invalid_grant"
    # Refused before the rotation: the token was not burnt.
    held = await world.store.get_refresh_token(hash_token(first.refresh_token),
                                               world.clock.now())
    assert held is not None
    verified = await world.code(MFA, mfa_verified=True)
    pair = await exchange_authorization_code(world.ports, MFA, verified, REDIRECT, VERIFIER)
    assert pair.refresh_token is not None
    assert (await refresh(world.ports, MFA, pair.refresh_token, None)).access_token


async def test_scopes_taken_from_the_client_stop_at_the_next_refresh() -> None:
    world = World()
    code = await world.code(CONFIDENTIAL, scope="openid offline_access read")
    first = await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT,
                                              VERIFIER)
    assert first.refresh_token is not None
    narrowed = msgspec.structs.replace(CONFIDENTIAL,
                                       scopes=frozenset({"openid", "offline_access"}))
    with pytest.raises(OAuthError) as refused:
        await refresh(world.ports, narrowed, first.refresh_token, "read")
    assert refused.value.error == "invalid_scope"
    second = await refresh(world.ports, narrowed, first.refresh_token, None)
    assert second.scope == "openid offline_access"
    access = await world.store.get_access_token(hash_token(second.access_token),
                                                world.clock.now())
    assert access is not None and access.scope == "openid offline_access"
    # The grant keeps its scope: given back to the client, it comes back.
    assert second.refresh_token is not None
    third = await refresh(world.ports, CONFIDENTIAL, second.refresh_token, None)
    assert third.scope == "openid offline_access read"


async def test_a_grant_left_with_no_allowed_scope_cannot_refresh() -> None:
    world = World()
    code = await world.code(CONFIDENTIAL, scope="offline_access read")
    first = await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT,
                                              VERIFIER)
    assert first.refresh_token is not None
    stripped = msgspec.structs.replace(CONFIDENTIAL, scopes=frozenset({"openid"}))
    with pytest.raises(OAuthError) as refused:
        await refresh(world.ports, stripped, first.refresh_token, None)
    assert refused.value.error == "invalid_grant"


async def test_a_code_whose_scope_the_client_lost_meanwhile_is_refused() -> None:
    world = World()
    code = await world.code(CONFIDENTIAL, scope="openid read")
    narrowed = msgspec.structs.replace(CONFIDENTIAL, scopes=frozenset({"openid"}))
    with pytest.raises(OAuthError) as refused:
        await exchange_authorization_code(world.ports, narrowed, code, REDIRECT, VERIFIER)
    assert refused.value.error == "invalid_grant"

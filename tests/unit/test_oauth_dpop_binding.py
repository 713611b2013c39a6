"""Use cases with a DPoP binding: what is bound, token_type, refresh with the same key only,
and introspection's cnf (domain.oauth with domain.token_binding)."""

from __future__ import annotations

import pytest

from domain.oauth import (
    OAuthError,
    exchange_authorization_code,
    introspect,
    issue_client_credentials,
    refresh,
)
from domain.token_binding import dpop_binding
from domain.tokens import hash_token
from tests.unit.oauth_doubles import CONFIDENTIAL, PUBLIC, REDIRECT, SERVICE, T0, VERIFIER, World

KEY = dpop_binding("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
OTHER_KEY = dpop_binding("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")


async def test_a_bound_client_credentials_token_is_dpop_and_introspects_with_cnf_jkt() -> None:
    world = World()
    response = await issue_client_credentials(world.ports, SERVICE, "read", binding=KEY)
    assert response.token_type == "DPoP"
    record = await world.store.get_access_token(hash_token(response.access_token), T0)
    assert record is not None and record.token_binding == KEY
    info = await introspect(world.ports, SERVICE, response.access_token, None)
    assert info.token_type == "DPoP" and info.cnf == {"jkt": KEY.removeprefix("jkt:")}
    unbound = await issue_client_credentials(world.ports, SERVICE, "read")
    assert unbound.token_type == "Bearer"
    assert (await introspect(world.ports, CONFIDENTIAL, unbound.access_token, None)).cnf is None


async def test_a_public_clients_refresh_token_is_bound_a_confidential_clients_is_not() -> None:
    world = World()
    public = await exchange_authorization_code(
        world.ports, PUBLIC, await world.code(PUBLIC), REDIRECT, VERIFIER, binding=KEY)
    confidential = await exchange_authorization_code(
        world.ports, CONFIDENTIAL, await world.code(CONFIDENTIAL), REDIRECT, VERIFIER, binding=KEY)
    assert public.token_type == confidential.token_type == "DPoP"
    assert public.refresh_token and confidential.refresh_token
    public_refresh = await world.store.get_refresh_token(hash_token(public.refresh_token), T0)
    assert public_refresh is not None and public_refresh.binding == KEY
    info = await introspect(world.ports, PUBLIC, public.refresh_token, None)
    assert info.cnf == {"jkt": KEY.removeprefix("jkt:")}
    held = await world.store.get_refresh_token(hash_token(confidential.refresh_token), T0)
    assert held is not None and held.binding is None


@pytest.mark.parametrize("binding", [None, OTHER_KEY])
async def test_a_bound_refresh_token_needs_the_same_key_and_is_not_burnt_otherwise(
    binding: str | None,
) -> None:
    world = World()
    first = await exchange_authorization_code(
        world.ports, PUBLIC, await world.code(PUBLIC), REDIRECT, VERIFIER, binding=KEY)
    assert first.refresh_token is not None
    with pytest.raises(OAuthError) as raised:
        await refresh(world.ports, PUBLIC, first.refresh_token, None, binding=binding)
    assert raised.value.error == "invalid_dpop_proof"
    # Refused before the take: the holder of the key can still refresh, and stays bound.
    second = await refresh(world.ports, PUBLIC, first.refresh_token, None, binding=KEY)
    assert second.token_type == "DPoP" and second.refresh_token is not None
    rotated = await world.store.get_refresh_token(hash_token(second.refresh_token), T0)
    assert rotated is not None and rotated.binding == KEY


async def test_a_confidential_client_may_refresh_a_dpop_grant_with_or_without_a_proof() -> None:
    world = World()
    first = await exchange_authorization_code(
        world.ports, CONFIDENTIAL, await world.code(CONFIDENTIAL), REDIRECT, VERIFIER, binding=KEY)
    assert first.refresh_token is not None
    second = await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)
    assert second.token_type == "Bearer" and second.refresh_token is not None
    third = await refresh(world.ports, CONFIDENTIAL, second.refresh_token, None, binding=OTHER_KEY)
    assert third.token_type == "DPoP"


async def test_an_old_certificate_binding_still_reads_as_x5t() -> None:
    import msgspec

    world = World()
    response = await issue_client_credentials(world.ports, SERVICE, "read")
    record = await world.store.get_access_token(hash_token(response.access_token), T0)
    await world.store.save_tokens(msgspec.structs.replace(record, token_binding="abc"), None, T0)
    info = await introspect(world.ports, SERVICE, response.access_token, None)
    assert info.cnf == {"x5t#S256": "abc"} and info.token_type == "Bearer"

"""The code exchange and the refresh refuse a grant whose consent was withdrawn (a code
issued just before the withdrawal, a refresh token not recorded under the consent)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from domain.consent import Consent
from domain.oauth import OAuthError, exchange_authorization_code, refresh
from domain.tokens import hash_token
from tests.unit.oauth_doubles import CONFIDENTIAL, REDIRECT, VERIFIER, World

FIRST_PARTY = msgspec.structs.replace(CONFIDENTIAL, client_id="intranet", first_party=True)


class CountingStore:
    """The memory store, counting consent reads."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.consent_reads = 0

    async def get_consent(self, user_id: str, client_id: str) -> Consent | None:
        self.consent_reads += 1
        result: Consent | None = await self._inner.get_consent(user_id, client_id)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_a_code_issued_before_the_withdrawal_gives_no_tokens() -> None:
    world = World()
    code = await world.code()
    await world.store.withdraw_consent("user-1", "app", world.clock.now())
    with pytest.raises(OAuthError) as caught:
        await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER)
    assert caught.value.error == "invalid_grant"
    assert caught.value.event == "grant_refused_no_consent"
    [event] = world.events.named("grant_refused_no_consent")
    assert event["client_id"] == "app"
    # The tokens saved before the check were revoked with the grant.
    assert await world.store.revoke_grant(str(event["grant_id"]), world.clock.now()) == 0
    assert world.events.named("token_issued") == []


async def test_a_consent_that_does_not_cover_the_codes_scopes_is_refused() -> None:
    world = World()
    code = await world.code(scope="openid offline_access read")
    await world.store.withdraw_consent("user-1", "app", world.clock.now())
    # Consented again, but to less than the code carries.
    await world.store.grant_consent("user-1", "app", ("openid", "read"), world.clock.now())
    with pytest.raises(OAuthError) as caught:
        await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER)
    assert caught.value.event == "grant_refused_no_consent"


async def test_a_consent_covering_the_scopes_lets_the_code_through() -> None:
    world = World()
    code = await world.code(scope="openid read")
    await world.store.grant_consent("user-1", "app", ("email",), world.clock.now())
    response = await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT,
                                                 VERIFIER)
    assert response.scope == "openid read"


async def test_a_refresh_after_the_withdrawal_is_refused_and_revokes_the_grant() -> None:
    world = World()
    first = await exchange_authorization_code(world.ports, CONFIDENTIAL, await world.code(),
                                              REDIRECT, VERIFIER)
    assert first.refresh_token is not None
    # Not recorded under the consent: the withdrawal itself revokes nothing of it.
    record = await world.store.withdraw_consent("user-1", "app", world.clock.now())
    assert record is not None and record.grants == ()
    with pytest.raises(OAuthError) as caught:
        await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)
    assert caught.value.error == "invalid_grant"
    assert caught.value.event == "grant_refused_no_consent"
    now = world.clock.now()
    access = await world.store.get_access_token(hash_token(first.access_token), now)
    assert access is not None and not access.is_active(now)
    # The pair saved before the check is gone too: nothing of the grant is left.
    assert world.events.named("token_issued") == [
        {"grant_type": "authorization_code", "client_id": "app"}]
    [event] = world.events.named("grant_refused_no_consent")
    assert await world.store.revoke_grant(str(event["grant_id"]), now) == 0


async def test_a_refresh_with_the_consent_in_place_rotates() -> None:
    world = World()
    first = await exchange_authorization_code(world.ports, CONFIDENTIAL, await world.code(),
                                              REDIRECT, VERIFIER)
    assert first.refresh_token is not None
    second = await refresh(world.ports, CONFIDENTIAL, first.refresh_token, "read")
    assert second.scope == "read"


async def test_a_first_party_client_needs_no_consent_and_costs_no_read() -> None:
    world = World()
    world.store = CountingStore(world.store)
    code = await world.code(FIRST_PARTY)
    assert await world.store.get_consent("user-1", "intranet") is None
    world.store.consent_reads = 0
    first = await exchange_authorization_code(world.ports, FIRST_PARTY, code, REDIRECT, VERIFIER)
    assert first.refresh_token is not None
    await refresh(world.ports, FIRST_PARTY, first.refresh_token, None)
    assert world.store.consent_reads == 0


async def test_a_third_party_exchange_and_refresh_read_the_consent_once_each() -> None:
    world = World()
    world.store = CountingStore(world.store)
    code = await world.code()
    world.store.consent_reads = 0
    first = await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT,
                                              VERIFIER)
    assert world.store.consent_reads == 1
    assert first.refresh_token is not None
    await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)
    assert world.store.consent_reads == 2

"""The consent part of the Store contract: what users allowed third-party clients, and the
grants issued under it (the ``ConsentStore`` port)."""

from __future__ import annotations

import asyncio

from adapters.testing.contract.fixtures import CONCURRENCY, StoreFixtures
from domain.consent import Consent, ConsentGrant
from ports.store import Store


class ConsentContract(StoreFixtures):
    """Consents: one per (user, client), scopes merged atomically, grants remembered until
    they expire, withdrawn once."""

    async def test_a_consent_is_created_with_sorted_scopes_and_found(
        self, store: Store, now: int
    ) -> None:
        consent = await store.grant_consent("user-1", "app", ("profile", "openid", "openid"),
                                            now)
        assert consent == Consent(user_id="user-1", client_id="app",
                                  scopes=("openid", "profile"), created_at=now, updated_at=now)
        assert await store.get_consent("user-1", "app") == consent
        assert await store.get_consent("user-1", "other") is None
        assert await store.get_consent("user-2", "app") is None

    async def test_granting_again_adds_scopes_and_keeps_the_creation_time(
        self, store: Store, now: int
    ) -> None:
        await store.grant_consent("user-1", "app", ("openid",), now)
        consent = await store.grant_consent("user-1", "app", ("email", "openid"), now + 10)
        assert consent.scopes == ("email", "openid")
        assert (consent.created_at, consent.updated_at) == (now, now + 10)
        assert await store.get_consent("user-1", "app") == consent

    async def test_concurrent_grants_of_different_scopes_all_land(
        self, store: Store, other_instance: Store, now: int
    ) -> None:
        self._require_concurrency()
        await asyncio.gather(*(
            (store if n % 2 else other_instance).grant_consent(
                "user-1", "app", (f"scope{n:02}",), now)
            for n in range(CONCURRENCY)))
        consent = await other_instance.get_consent("user-1", "app")
        assert consent is not None
        assert consent.scopes == tuple(f"scope{n:02}" for n in range(CONCURRENCY))

    async def test_a_users_consents_are_listed_by_client(
        self, store: Store, now: int
    ) -> None:
        for client in ("zeta", "alpha", "mid"):
            await store.grant_consent("user-1", client, ("openid",), now)
        await store.grant_consent("user-10", "alpha", ("openid",), now)
        listed = await store.list_consents("user-1")
        assert [c.client_id for c in listed] == ["alpha", "mid", "zeta"]
        assert all(c.user_id == "user-1" for c in listed)
        assert await store.list_consents("nobody") == ()

    async def test_withdrawing_returns_the_consent_with_its_live_grants_once(
        self, store: Store, now: int
    ) -> None:
        consent = await store.grant_consent("user-1", "app", ("openid",), now)
        assert await store.record_consent_grant("user-1", "app", "gr_old", now + 10, now)
        assert await store.record_consent_grant("user-1", "app", "gr_live", now + 1000, now)
        await store.grant_consent("user-1", "other", ("openid",), now)
        record = await store.withdraw_consent("user-1", "app", now + 10)
        assert record is not None
        assert record.consent == consent
        assert record.grants == (ConsentGrant("gr_live", now + 1000),)
        assert await store.get_consent("user-1", "app") is None
        assert await store.withdraw_consent("user-1", "app", now + 10) is None
        assert [c.client_id for c in await store.list_consents("user-1")] == ["other"]

    async def test_no_grant_is_recorded_without_a_consent(
        self, store: Store, now: int
    ) -> None:
        assert not await store.record_consent_grant("user-1", "app", "gr_1", now + 100, now)
        await store.grant_consent("user-1", "app", ("openid",), now)
        record = await store.withdraw_consent("user-1", "app", now)
        assert record is not None and record.grants == ()
        # A grant arriving after the withdrawal is refused, not kept for a later consent.
        assert not await store.record_consent_grant("user-1", "app", "gr_2", now + 100, now)
        await store.grant_consent("user-1", "app", ("openid",), now)
        again = await store.withdraw_consent("user-1", "app", now)
        assert again is not None and again.grants == ()

    async def test_a_consent_given_again_starts_without_the_old_grants(
        self, store: Store, now: int
    ) -> None:
        await store.grant_consent("user-1", "app", ("openid", "email"), now)
        await store.record_consent_grant("user-1", "app", "gr_1", now + 100, now)
        await store.withdraw_consent("user-1", "app", now)
        fresh = await store.grant_consent("user-1", "app", ("openid",), now + 5)
        assert fresh.scopes == ("openid",) and fresh.created_at == now + 5
        record = await store.withdraw_consent("user-1", "app", now + 5)
        assert record is not None and record.grants == ()

    async def test_concurrent_withdrawals_across_instances_return_the_consent_once(
        self, store: Store, other_instance: Store, now: int
    ) -> None:
        self._require_concurrency()
        await store.grant_consent("user-1", "app", ("openid",), now)
        await store.record_consent_grant("user-1", "app", "gr_1", now + 100, now)
        results = await asyncio.gather(*(
            (store if n % 2 else other_instance).withdraw_consent("user-1", "app", now)
            for n in range(CONCURRENCY)))
        won = [r for r in results if r is not None]
        assert len(won) == 1 and won[0].grants == (ConsentGrant("gr_1", now + 100),)

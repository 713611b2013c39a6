"""The token part of the Store contract: access and refresh tokens (the ``TokenStore``
port)."""

from __future__ import annotations

import asyncio

import msgspec

from adapters.testing.contract.fixtures import (
    CONCURRENCY,
    DAY,
    StoreFixtures,
    _access,
    _code,
    _pair,
    _refresh,
)
from domain.entities import ConsumedCode, Reused, Taken, Unknown
from domain.tokens import hash_token
from ports.store import Store


class TokenContract(StoreFixtures):
    """Access and refresh tokens: expiry, revocation that keeps lifetimes, revocation by
    grant and by subject, rotation with reuse detection, one winner among concurrent takes.

    Revoking a subject also drops its pending codes, so one test saves and takes codes
    (``CodeStore``).
    """

    # Access tokens

    async def test_get_access_token_returns_the_saved_record(
        self, store: Store, now: int
    ) -> None:
        access = _access("tk_one", now, grant_id="grant-1", sub="user-1")
        await store.save_tokens(access, None, now)
        assert await store.get_access_token(access.token_hash, now) == access

    async def test_a_refresh_tokens_dpop_binding_is_kept_through_a_take(
        self, store: Store, now: int
    ) -> None:
        access = _access("tk_bound", now, grant_id="grant-b", sub="user-1")
        refresh = msgspec.structs.replace(_refresh("rt_bound", access, now, grant_id="grant-b"),
                                          binding="jkt:0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
        await store.save_tokens(access, refresh, now)
        assert await store.get_refresh_token(refresh.token_hash, now) == refresh
        taken = await store.take_refresh_token(refresh.token_hash, now)
        assert isinstance(taken, Taken) and taken.token.binding == refresh.binding

    async def test_tokens_keep_their_audience_and_resources(
        self, store: Store, now: int
    ) -> None:
        resources = ("https://api.example/v1", "urn:example:reports")
        access = msgspec.structs.replace(
            _access("tk_aud", now, grant_id="grant-aud", sub="user-1"), audience=resources[:1],
            act=("orders-api", "gateway"))
        refresh = msgspec.structs.replace(
            _refresh("rt_aud", access, now, grant_id="grant-aud"), resources=resources)
        await store.save_tokens(access, refresh, now)
        assert await store.get_access_token(access.token_hash, now) == access
        assert await store.get_refresh_token(refresh.token_hash, now) == refresh
        taken = await store.take_refresh_token(refresh.token_hash, now)
        assert isinstance(taken, Taken) and taken.token == refresh

    async def test_get_unknown_access_token_returns_none(self, store: Store, now: int) -> None:
        assert await store.get_access_token(hash_token("tk_none"), now) is None

    async def test_an_expired_access_token_is_never_returned(
        self, store: Store, now: int
    ) -> None:
        access = _access("tk_old", now, ttl=60)
        await store.save_tokens(access, None, now)
        assert await store.get_access_token(access.token_hash, now + 59) is not None
        assert await store.get_access_token(access.token_hash, now + 60) is None

    async def test_revoke_access_token_keeps_the_record_inactive_with_its_expiry(
        self, store: Store, now: int
    ) -> None:
        access = _access("tk_rev", now)
        await store.save_tokens(access, None, now)
        assert await store.revoke_access_token(access.token_hash, now) is True
        revoked = await store.get_access_token(access.token_hash, now + 1)
        assert revoked is not None
        assert revoked.active is False
        assert revoked.exp == access.exp

    async def test_revoke_unknown_access_token_returns_false(
        self, store: Store, now: int
    ) -> None:
        assert await store.revoke_access_token(hash_token("tk_none"), now) is False

    async def test_revoke_expired_access_token_returns_false(
        self, store: Store, now: int
    ) -> None:
        access = _access("tk_exp", now, ttl=60)
        await store.save_tokens(access, None, now)
        assert await store.revoke_access_token(access.token_hash, now + 60) is False

    async def test_revoking_does_not_extend_an_access_token_lifetime(
        self, store: Store, now: int
    ) -> None:
        access = _access("tk_life", now, ttl=60)
        await store.save_tokens(access, None, now)
        await store.revoke_access_token(access.token_hash, now + 30)
        assert await store.get_access_token(access.token_hash, now + 60) is None

    async def test_revoke_grant_revokes_every_token_of_the_grant(
        self, store: Store, now: int
    ) -> None:
        first_access, first_refresh = await _pair(store, 1, now, grant_id="grant-1")
        second_access, second_refresh = await _pair(store, 2, now, grant_id="grant-1")
        other_access, other_refresh = await _pair(store, 1, now, grant_id="grant-2")
        assert await store.revoke_grant("grant-1", now) == 4
        for access in (first_access, second_access):
            record = await store.get_access_token(access.token_hash, now)
            assert record is not None and record.active is False
        for refresh in (first_refresh, second_refresh):
            assert await store.get_refresh_token(refresh.token_hash, now) is None
        other = await store.get_access_token(other_access.token_hash, now)
        assert other is not None and other.active is True
        assert await store.get_refresh_token(other_refresh.token_hash, now) == other_refresh

    async def test_revoke_grant_is_idempotent(self, store: Store, now: int) -> None:
        await _pair(store, 1, now, grant_id="grant-1")
        await store.revoke_grant("grant-1", now)
        assert await store.revoke_grant("grant-1", now) == 0
        assert await store.revoke_grant("no-such-grant", now) == 0

    async def test_revoke_grant_keeps_lifetimes(self, store: Store, now: int) -> None:
        access, _ = await _pair(store, 1, now, grant_id="grant-1")
        await store.revoke_grant("grant-1", now)
        assert await store.get_access_token(access.token_hash, access.exp) is None

    async def test_rotation_and_subject_revocation_keep_lifetimes(
        self, store: Store, now: int
    ) -> None:
        rotated_access, rotated = await _pair(store, 1, now, grant_id="grant-1", sub="user-1")
        await store.take_refresh_token(rotated.token_hash, now + 10)
        subject_access = _access("tk_subject_life", now, sub="user-1")
        await store.save_tokens(subject_access, None, now)
        await store.revoke_subject("user-1", now + 10)
        for access in (rotated_access, subject_access):
            record = await store.get_access_token(access.token_hash, access.exp - 1)
            assert record is not None and record.active is False
            assert record.exp == access.exp
            assert await store.get_access_token(access.token_hash, access.exp) is None

    async def test_each_token_of_a_pair_lives_until_its_own_exp(
        self, store: Store, now: int
    ) -> None:
        access = _access("tk_brief", now, ttl=60, grant_id="grant-1", sub="user-1")
        refresh = _refresh("rt_lasting", access, now, ttl=DAY)
        await store.save_tokens(access, refresh, now)
        assert await store.get_access_token(access.token_hash, now + 60) is None
        assert await store.get_refresh_token(refresh.token_hash, now + 60) == refresh
        assert await store.take_refresh_token(refresh.token_hash, now + 60) == Taken(refresh)

    async def test_revoke_subject_revokes_only_that_subjects_tokens(
        self, store: Store, now: int
    ) -> None:
        alice_access, alice_refresh = await _pair(store, 1, now, grant_id="g-a", sub="alice")
        alice_other = _access("tk_alice_cc", now, sub="alice")
        await store.save_tokens(alice_other, None, now)
        bob_access, bob_refresh = await _pair(store, 1, now, grant_id="g-b", sub="bob")
        assert await store.revoke_subject("alice", now) == 3
        for access in (alice_access, alice_other):
            record = await store.get_access_token(access.token_hash, now)
            assert record is not None and record.active is False
        assert await store.get_refresh_token(alice_refresh.token_hash, now) is None
        bob = await store.get_access_token(bob_access.token_hash, now)
        assert bob is not None and bob.active is True
        assert await store.get_refresh_token(bob_refresh.token_hash, now) == bob_refresh

    async def test_revoke_subject_drops_that_users_pending_codes(
        self, store: Store, now: int
    ) -> None:
        alice = msgspec.structs.replace(_code("ac_alice", now + 600, grant_id="g-a"),
                                        user_id="alice")
        alice_taken = msgspec.structs.replace(_code("ac_alice_used", now + 600, grant_id="g-u"),
                                              user_id="alice")
        bob = msgspec.structs.replace(_code("ac_bob", now + 600, grant_id="g-b"), user_id="bob")
        for code in (alice, alice_taken, bob):
            await store.save_code(code, now)
        await store.take_code(alice_taken.code_hash, now, remember_until=now + 600)
        assert await store.revoke_subject("alice", now + 1) == 1
        assert await store.take_code(alice.code_hash, now + 1, remember_until=now + 600) is None
        # A replay of the code taken before is still recognised, so it still revokes its grant.
        replayed = await store.take_code(alice_taken.code_hash, now + 1, remember_until=now + 600)
        assert replayed == ConsumedCode(alice_taken.code_hash, "g-u", "client-a")
        assert await store.take_code(bob.code_hash, now + 1, remember_until=now + 600) == bob
        # A code issued after the revocation (the user was reactivated) is not affected.
        again = msgspec.structs.replace(_code("ac_alice_new", now + 700, grant_id="g-n"),
                                        user_id="alice")
        await store.save_code(again, now + 2)
        assert await store.take_code(again.code_hash, now + 2, remember_until=now + 700) == again

    async def test_a_token_without_grant_or_subject_survives_revocations(
        self, store: Store, now: int
    ) -> None:
        service = _access("tk_service", now)
        await store.save_tokens(service, None, now)
        await _pair(store, 1, now, grant_id="grant-1", sub="user-1")
        await store.revoke_grant("grant-1", now)
        await store.revoke_subject("user-1", now)
        record = await store.get_access_token(service.token_hash, now)
        assert record is not None and record.active is True

    # Refresh tokens

    async def test_get_refresh_token_returns_the_saved_record(
        self, store: Store, now: int
    ) -> None:
        _, refresh = await _pair(store, 1, now)
        assert await store.get_refresh_token(refresh.token_hash, now) == refresh
        assert await store.get_refresh_token(refresh.token_hash, now) == refresh

    async def test_an_expired_refresh_token_is_never_returned(
        self, store: Store, now: int
    ) -> None:
        _, refresh = await _pair(store, 1, now)
        assert await store.get_refresh_token(refresh.token_hash, refresh.exp) is None
        assert isinstance(await store.take_refresh_token(refresh.token_hash, refresh.exp), Unknown)

    async def test_take_refresh_token_returns_it_and_revokes_its_access_token(
        self, store: Store, now: int
    ) -> None:
        access, refresh = await _pair(store, 1, now)
        assert await store.take_refresh_token(refresh.token_hash, now) == Taken(refresh)
        assert await store.get_refresh_token(refresh.token_hash, now) is None
        old = await store.get_access_token(access.token_hash, now)
        assert old is not None and old.active is False

    async def test_take_unknown_refresh_token_returns_unknown(
        self, store: Store, now: int
    ) -> None:
        assert isinstance(await store.take_refresh_token(hash_token("rt_none"), now), Unknown)

    async def test_second_take_of_a_refresh_token_is_reuse_and_revokes_the_family(
        self, store: Store, now: int
    ) -> None:
        _, refresh = await _pair(store, 1, now, grant_id="grant-1")
        await store.take_refresh_token(refresh.token_hash, now)
        new_access, new_refresh = await _pair(store, 2, now + 1, grant_id="grant-1")
        result = await store.take_refresh_token(refresh.token_hash, now + 2)
        assert result == Reused("grant-1")
        record = await store.get_access_token(new_access.token_hash, now + 2)
        assert record is not None and record.active is False
        assert await store.get_refresh_token(new_refresh.token_hash, now + 2) is None
        assert isinstance(await store.take_refresh_token(new_refresh.token_hash, now + 2), Unknown)

    async def test_reuse_leaves_other_grants_alone(self, store: Store, now: int) -> None:
        _, refresh = await _pair(store, 1, now, grant_id="grant-1")
        other_access, other_refresh = await _pair(store, 1, now, grant_id="grant-2")
        await store.take_refresh_token(refresh.token_hash, now)
        await store.take_refresh_token(refresh.token_hash, now)
        other = await store.get_access_token(other_access.token_hash, now)
        assert other is not None and other.active is True
        assert await store.get_refresh_token(other_refresh.token_hash, now) == other_refresh

    async def test_reuse_marker_expires_with_the_refresh_token(
        self, store: Store, now: int
    ) -> None:
        _, refresh = await _pair(store, 1, now)
        await store.take_refresh_token(refresh.token_hash, now)
        before = await store.take_refresh_token(refresh.token_hash, refresh.exp - 1)
        assert isinstance(before, Reused)
        assert isinstance(await store.take_refresh_token(refresh.token_hash, refresh.exp), Unknown)

    async def test_a_revoked_refresh_token_cannot_be_taken(self, store: Store, now: int) -> None:
        _, refresh = await _pair(store, 1, now, grant_id="grant-1")
        await store.revoke_grant("grant-1", now)
        assert isinstance(await store.take_refresh_token(refresh.token_hash, now), Unknown)

    async def test_concurrent_takes_of_a_refresh_token_have_exactly_one_winner(
        self, store: Store, now: int
    ) -> None:
        self._require_concurrency()
        _, refresh = await _pair(store, 1, now)
        results = await asyncio.gather(
            *(store.take_refresh_token(refresh.token_hash, now) for _ in range(CONCURRENCY))
        )
        assert [r for r in results if isinstance(r, Taken)] == [Taken(refresh)]
        losers = [r for r in results if not isinstance(r, Taken)]
        assert losers == [Reused(refresh.grant_id)] * (CONCURRENCY - 1)

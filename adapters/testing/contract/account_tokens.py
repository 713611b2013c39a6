"""The account-tokens part of the Store contract: single-use links mailed to users for a
password reset or an email verification (the ``AccountTokenStore`` port)."""

from __future__ import annotations

import asyncio
import hashlib

import msgspec

from adapters.testing.contract.fixtures import StoreFixtures
from domain.entities import AccountToken, AccountTokenKind
from ports.store import Store

TAKERS = 20


def _token(name: str, now: int, kind: AccountTokenKind = "password_reset",
           **changes: object) -> AccountToken:
    token = AccountToken(
        token_hash=hashlib.sha256(name.encode()).hexdigest(), kind=kind, user_id="user-1",
        email="alice@example.com", created_at=now, exp=now + 1800)
    return msgspec.structs.replace(token, **changes)


class AccountTokenContract(StoreFixtures):
    """Account tokens: kept until their expiry, taken once (of concurrent takers on any
    instance exactly one), only by their kind, and revoked per user and kind."""

    async def test_a_token_is_taken_once(self, store: Store, now: int) -> None:
        token = _token("a", now)
        await store.save_account_token(token, now)
        assert await store.take_account_token("password_reset", token.token_hash, now) == token
        assert await store.take_account_token("password_reset", token.token_hash, now) is None

    async def test_an_unknown_token_is_none(self, store: Store, now: int) -> None:
        assert await store.take_account_token("password_reset", "0" * 64, now) is None

    async def test_an_expired_token_is_not_taken(self, store: Store, now: int) -> None:
        token = _token("a", now)
        await store.save_account_token(token, now)
        assert await store.take_account_token(
            "password_reset", token.token_hash, token.exp) is None
        assert await store.take_account_token(
            "password_reset", token.token_hash, token.exp - 1) == token

    async def test_a_token_of_another_kind_is_left_alone(self, store: Store, now: int) -> None:
        token = _token("a", now, kind="email_verification")
        await store.save_account_token(token, now)
        assert await store.take_account_token("password_reset", token.token_hash, now) is None
        assert await store.take_account_token(
            "email_verification", token.token_hash, now) == token

    async def test_revoke_forgets_one_kind_of_one_user(self, store: Store, now: int) -> None:
        first = _token("a", now)
        second = _token("b", now)
        verification = _token("c", now, kind="email_verification")
        bobs = _token("d", now, user_id="user-2")
        for token in (first, second, verification, bobs):
            await store.save_account_token(token, now)
        assert await store.revoke_account_tokens("user-1", "password_reset", now) == 2
        assert await store.revoke_account_tokens("user-1", "password_reset", now) == 0
        assert await store.take_account_token("password_reset", first.token_hash, now) is None
        assert await store.take_account_token("password_reset", second.token_hash, now) is None
        assert await store.take_account_token(
            "email_verification", verification.token_hash, now) == verification
        assert await store.take_account_token("password_reset", bobs.token_hash, now) == bobs

    async def test_concurrent_takes_across_instances_have_one_winner(
        self, store: Store, other_instance: Store, now: int
    ) -> None:
        self._require_concurrency()
        token = _token("a", now)
        await store.save_account_token(token, now)
        results = await asyncio.gather(*(
            (store if n % 2 else other_instance).take_account_token(
                "password_reset", token.token_hash, now)
            for n in range(TAKERS)))
        assert [r for r in results if r is not None] == [token]

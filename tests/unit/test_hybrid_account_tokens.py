"""``hybrid`` without Redis: account tokens in this process's memory, counted and purged
with the rest (with Redis: tests/integration/test_hybrid_redis.py)."""

from __future__ import annotations

from adapters.hybrid import open_hybrid_store
from domain.entities import AccountToken
from domain.tokens import hash_token

NOW = 1_700_000_000


def _token(name: str, exp: int) -> AccountToken:
    return AccountToken(token_hash=hash_token(name), kind="email_verification",
                        user_id="user-1", email="a@example.com", created_at=NOW, exp=exp)


async def test_account_tokens_are_counted_live_and_purged_once_expired() -> None:
    store = await open_hybrid_store(None)
    try:
        await store.save_account_token(_token("short", NOW + 10), NOW)
        await store.save_account_token(_token("long", NOW + 1800), NOW)
        assert (await store.counts(NOW)).account_tokens == 2
        assert (await store.counts(NOW + 10)).account_tokens == 1
        assert (await store.purge_expired(NOW + 10)).account_tokens == 1
        assert (await store.purge_expired(NOW + 10)).account_tokens == 0
        assert "account_tokens" in store.process_local_parts()
    finally:
        await store.close()

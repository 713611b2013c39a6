"""Fixed-window rate limits over the store's shared counters."""

from __future__ import annotations

import pytest

from adapters.memory.store import MemoryStore
from domain.errors import StoreUnavailable
from domain.ratelimit import RateLimit, check_rate, rate_key

T0 = 1_700_000_020  # 40 seconds into a minute (1_699_999_980 is a multiple of 60)


async def test_allows_up_to_the_limit_then_refuses_until_the_window_ends() -> None:
    store, rule, key = MemoryStore(), RateLimit(3), rate_key("token_client", "svc")
    verdicts = [await check_rate(store, key, rule, T0) for _ in range(4)]

    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert verdicts[-1].retry_after == 20
    assert (await check_rate(store, key, rule, T0 + 19)).allowed is False
    assert (await check_rate(store, key, rule, T0 + 20)).allowed is True


async def test_subjects_and_rules_count_separately() -> None:
    store, rule = MemoryStore(), RateLimit(1)
    assert (await check_rate(store, rate_key("token_client", "a"), rule, T0)).allowed
    assert (await check_rate(store, rate_key("token_client", "b"), rule, T0)).allowed
    assert (await check_rate(store, rate_key("token_ip", "a"), rule, T0)).allowed
    assert not (await check_rate(store, rate_key("token_client", "a"), rule, T0)).allowed


async def test_instances_sharing_a_store_share_the_count() -> None:
    shared, rule, key = MemoryStore(), RateLimit(2), rate_key("signin_ip", "10.0.0.1")
    assert (await check_rate(shared, key, rule, T0)).allowed  # instance one
    assert (await check_rate(shared, key, rule, T0)).allowed  # instance two
    assert not (await check_rate(shared, key, rule, T0)).allowed


def test_keys_are_short_and_carry_no_request_text() -> None:
    key = rate_key("token_client", "x' OR 1=1 --" + "a" * 5000)
    assert key.startswith("rl:token_client:") and len(key) < 64
    assert "OR" not in key and rate_key("r", "a") != rate_key("r", "b")


def test_a_zero_limit_is_off() -> None:
    assert not RateLimit(0).enabled and RateLimit(1).enabled


async def test_store_failure_is_raised_not_read_as_allowed() -> None:
    class Down(MemoryStore):
        async def hit(self, key: str, window_seconds: int, now: int, amount: int = 1) -> int:
            raise StoreUnavailable("down")

    with pytest.raises(StoreUnavailable):
        await check_rate(Down(), rate_key("r", "s"), RateLimit(5), T0)

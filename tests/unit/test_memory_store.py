"""Memory-adapter specifics the contract suite cannot see: memory use and cleanup."""

from __future__ import annotations

import asyncio
import gc
import secrets
import tracemalloc

from adapters.memory import MemoryIdentities, MemoryStore, MemoryTokenState
from domain.entities import AccessToken, RefreshToken, User
from domain.tokens import hash_token, token_display
from ports.store import Store

NOW = 1_700_000_000


def _access(value: str, *, ttl: int = 3600, grant_id: str | None = None,
            sub: str | None = None) -> AccessToken:
    # Joined at run time so that each record has its own copies, as parsed requests do.
    return AccessToken(
        token_hash=hash_token(value),
        token_display=token_display(value),
        active=True,
        scope=" ".join(["openid", "read"]),
        client_id="-".join(["client", "a"]),
        exp=NOW + ttl,
        iat=NOW,
        grant_id=grant_id,
        sub=sub,
    )


def _refresh(value: str, access: AccessToken, grant_id: str) -> RefreshToken:
    return RefreshToken(
        token_hash=hash_token(value), access_token_hash=access.token_hash, exp=access.exp,
        iat=NOW, grant_id=grant_id, client_id=access.client_id, scope=access.scope,
        sub=access.sub,
    )


def test_memory_store_satisfies_the_store_port() -> None:
    store: Store = MemoryStore()  # checked by mypy
    assert isinstance(store, MemoryStore)


async def test_memory_store_uses_the_halves_it_is_given() -> None:
    identities, tokens = MemoryIdentities(), MemoryTokenState()
    store = MemoryStore(identities=identities, tokens=tokens)
    created = await store.create_user(User(user_name="alice"))
    await store.save_tokens(_access("tk_shared"), None, NOW)
    assert await identities.get_user(created.id) == created
    assert tokens.count_access_tokens(NOW) == 1


async def test_a_stored_access_token_costs_at_most_600_bytes() -> None:
    tokens = MemoryTokenState()
    subjects = [f"user-{n}" for n in range(100)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(10_000):
            record = _access(f"tk_{secrets.token_urlsafe(32)}", sub=subjects[n % 100])
            await tokens.save_tokens(record, None, NOW)
        del record
        gc.collect()
        per_token = (tracemalloc.get_traced_memory()[0] - before) / 10_000
    finally:
        tracemalloc.stop()
    assert per_token <= 600, per_token


async def test_scope_and_client_id_are_shared_between_records() -> None:
    tokens = MemoryTokenState()
    await tokens.save_tokens(_access("tk_a"), None, NOW)
    await tokens.save_tokens(_access("tk_b"), None, NOW)
    first = await tokens.get_access_token(hash_token("tk_a"), NOW)
    second = await tokens.get_access_token(hash_token("tk_b"), NOW)
    assert first is not None and second is not None
    assert first.scope is second.scope
    assert first.client_id is second.client_id


async def test_purge_leaves_no_index_entries_behind() -> None:
    store = MemoryStore()
    for n in range(10):
        access = _access(f"tk_{n}", ttl=60, grant_id=f"grant-{n % 3}", sub=f"user-{n % 2}")
        await store.save_tokens(access, _refresh(f"rt_{n}", access, f"grant-{n % 3}"), NOW)
    await store.take_refresh_token(hash_token("rt_0"), NOW)
    await store.revoke_subject("user-1", NOW)
    purged = await store.purge_expired(NOW + 60, batch_size=3)
    assert (purged.access_tokens, purged.refresh_tokens, purged.reuse_markers) == (10, 4, 1)
    state = store.tokens
    assert not state._by_grant and not state._by_sub
    assert not state._access and not state._refresh and not state._reuse


async def test_revocation_still_finds_tokens_after_index_shrinks() -> None:
    store = MemoryStore()
    first = _access("tk_1", ttl=60, grant_id="g", sub="alice")
    second = _access("tk_2", ttl=3600, grant_id="g", sub="alice")
    await store.save_tokens(first, None, NOW)
    await store.save_tokens(second, None, NOW)
    await store.purge_expired(NOW + 60)
    assert await store.revoke_grant("g", NOW + 60) == 1
    record = await store.get_access_token(second.token_hash, NOW + 60)
    assert record is not None and record.active is False


async def test_purge_lets_other_tasks_run_between_batches() -> None:
    store = MemoryStore()
    for n in range(6):
        await store.save_tokens(_access(f"tk_{n}", ttl=10), None, NOW)
    events: list[str] = []

    async def other() -> None:
        events.append("other ran")

    async def purge() -> None:
        await store.purge_expired(NOW + 10, batch_size=2)
        events.append("purge done")

    await asyncio.gather(purge(), other())
    assert events == ["other ran", "purge done"]


async def test_reading_a_counter_does_not_store_it() -> None:
    tokens = MemoryTokenState()
    assert await tokens.hit("login:alice", 60, NOW, amount=0) == 0
    assert (await tokens.purge_expired(NOW + 3600)).other == 0


async def test_clearing_the_totp_seed_clears_its_confirmation() -> None:
    store = MemoryStore()
    user = await store.create_user(User(user_name="alice"))
    await store.set_totp(user.id, "JBSWY3DPEHPK3PXP", confirmed=True)
    await store.set_totp(user.id, None, confirmed=True)
    assert (await store.get_credentials(user.id)).totp_confirmed is False

"""``hybrid`` without Redis: sessions and consents are this process's, and its counts and
purge include them (with Redis: tests/integration/test_hybrid_redis.py)."""

from __future__ import annotations

import hashlib

from adapters.hybrid import open_hybrid_store
from domain.sessions import Session

NOW = 1_700_000_000


def _session(name: str, *, idle: int) -> Session:
    return Session(
        id_hash=hashlib.sha256(name.encode()).hexdigest(), sid=f"sid_{name}", user_id="u-1",
        auth_time=NOW, amr=("pwd",), acr="pwd", created_at=NOW, idle_exp=NOW + idle,
        exp=NOW + 3600,
    )


async def test_counts_and_purge_include_sessions_and_consent_grants() -> None:
    store = await open_hybrid_store(None)
    try:
        await store.create_session(_session("live", idle=600), NOW)
        await store.create_session(_session("idle", idle=10), NOW)
        await store.grant_consent("u-1", "app", ("openid",), NOW)
        await store.record_consent_grant("u-1", "app", "gr_short", NOW + 10, NOW)
        await store.record_consent_grant("u-1", "app", "gr_long", NOW + 600, NOW)
        counts = await store.counts(NOW + 10)
        assert (counts.sessions, counts.consents) == (1, 1)
        purged = await store.purge_expired(NOW + 10)
        assert (purged.sessions, purged.consent_grants) == (1, 1)
        assert (await store.purge_expired(NOW + 10)).total == 0
    finally:
        await store.close()

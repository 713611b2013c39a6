"""``hybrid`` without Redis: device authorizations in this process's memory, counted and
purged with the rest (with Redis: tests/integration/test_hybrid_redis.py)."""

from __future__ import annotations

import msgspec

from adapters.hybrid import open_hybrid_store
from domain.device import DeviceAuthorization
from domain.tokens import hash_token

NOW = 1_700_000_000


def _device(name: str, **changes: object) -> DeviceAuthorization:
    authorization = DeviceAuthorization(
        device_code_hash=hash_token(f"dc_{name}"), user_code_hash=hash_token(f"uc_{name}"),
        client_id="tv", scope="openid", exp=NOW + 600, interval=5, created_at=NOW,
    )
    return msgspec.structs.replace(authorization, **changes)


async def test_device_authorizations_are_counted_live_and_purged_once_expired() -> None:
    store = await open_hybrid_store(None)
    try:
        await store.save_device_authorization(_device("short", exp=NOW + 10), NOW)
        await store.save_device_authorization(_device("long"), NOW)
        assert (await store.counts(NOW)).device_authorizations == 2
        assert (await store.counts(NOW + 10)).device_authorizations == 1
        assert (await store.purge_expired(NOW + 10)).device_authorizations == 1
        assert (await store.purge_expired(NOW + 10)).device_authorizations == 0
        assert "device" in store.process_local_parts()
    finally:
        await store.close()

"""The device part of the Store contract: device authorizations of RFC 8628 (the
``DeviceStore`` port)."""

from __future__ import annotations

import asyncio
import hashlib

import msgspec

from adapters.testing.contract.fixtures import StoreFixtures
from domain.device import (
    SLOW_DOWN_SECONDS,
    DeviceAuthorization,
    DeviceDecision,
    PollApproved,
    PollDenied,
    PollExpired,
    PollPending,
    PollSlowDown,
)
from ports.store import Store

#: RFC 8628's typical poll interval, and the number of pollers the issue asks to race.
INTERVAL = 5
POLLERS = 50

APPROVE = DeviceDecision(status="approved", user_id="user-1", auth_time=1, amr=("pwd",),
                         acr="pwd", sid="sid_1")


def _authorization(name: str, now: int, **changes: object) -> DeviceAuthorization:
    authorization = DeviceAuthorization(
        device_code_hash=hashlib.sha256(f"dc-{name}".encode()).hexdigest(),
        user_code_hash=hashlib.sha256(f"uc-{name}".encode()).hexdigest(),
        client_id="tv", scope="openid offline_access", exp=now + 600, interval=INTERVAL,
        created_at=now, resources=("https://api.example",),
    )
    return msgspec.structs.replace(authorization, **changes)


class DeviceContract(StoreFixtures):
    """Device authorizations: saved once per code, decided once, polled with slow_down,
    and an approval handed to exactly one poll, across instances too."""

    async def test_a_saved_authorization_is_found_by_its_user_code(
        self, store: Store, now: int
    ) -> None:
        authorization = _authorization("a", now)
        assert await store.save_device_authorization(authorization, now)
        assert await store.find_device_authorization(authorization.user_code_hash, now) == \
            authorization
        assert await store.find_device_authorization("0" * 64, now) is None

    async def test_a_live_code_cannot_be_saved_twice(self, store: Store, now: int) -> None:
        first = _authorization("a", now)
        assert await store.save_device_authorization(first, now)
        same_user_code = _authorization("b", now, user_code_hash=first.user_code_hash)
        same_device_code = _authorization("c", now, device_code_hash=first.device_code_hash)
        assert not await store.save_device_authorization(same_user_code, now)
        assert not await store.save_device_authorization(same_device_code, now)
        assert await store.find_device_authorization(first.user_code_hash, now) == first

    async def test_an_expired_authorization_is_absent_and_its_codes_free_again(
        self, store: Store, now: int
    ) -> None:
        old = _authorization("a", now, exp=now + 10)
        await store.save_device_authorization(old, now)
        later = now + 10
        assert await store.find_device_authorization(old.user_code_hash, later) is None
        assert await store.decide_device_authorization(old.user_code_hash, APPROVE,
                                                       later) is None
        assert await store.poll_device_authorization(old.device_code_hash, later) == \
            PollExpired()
        fresh = _authorization("a", later)
        assert await store.save_device_authorization(fresh, later)
        assert await store.find_device_authorization(fresh.user_code_hash, later) == fresh

    async def test_polls_are_pending_until_decided_and_too_early_is_slow_down(
        self, store: Store, now: int
    ) -> None:
        authorization = _authorization("a", now)
        await store.save_device_authorization(authorization, now)
        key = authorization.device_code_hash
        assert await store.poll_device_authorization(key, now) == PollPending()
        assert await store.poll_device_authorization(key, now + INTERVAL - 1) == \
            PollSlowDown(INTERVAL + SLOW_DOWN_SECONDS)
        # The longer interval counts from the slow poll.
        slow = now + INTERVAL - 1
        assert await store.poll_device_authorization(key, slow + INTERVAL) == \
            PollSlowDown(INTERVAL + 2 * SLOW_DOWN_SECONDS)
        assert await store.poll_device_authorization(
            key, slow + INTERVAL + INTERVAL + 2 * SLOW_DOWN_SECONDS) == PollPending()

    async def test_an_approval_is_taken_by_one_poll_with_who_approved(
        self, store: Store, now: int
    ) -> None:
        authorization = _authorization("a", now)
        await store.save_device_authorization(authorization, now)
        decided = await store.decide_device_authorization(authorization.user_code_hash,
                                                          APPROVE, now + 1)
        assert decided is not None and decided.status == "approved"
        assert (decided.user_id, decided.amr, decided.acr, decided.sid) == \
            ("user-1", ("pwd",), "pwd", "sid_1")
        assert await store.find_device_authorization(authorization.user_code_hash,
                                                     now + 1) == decided
        outcome = await store.poll_device_authorization(authorization.device_code_hash, now + 2)
        assert isinstance(outcome, PollApproved)
        assert outcome.authorization.user_id == "user-1"
        assert outcome.authorization.scope == authorization.scope
        assert outcome.authorization.resources == authorization.resources
        assert await store.poll_device_authorization(
            authorization.device_code_hash, now + 20) == PollExpired()
        assert await store.find_device_authorization(authorization.user_code_hash,
                                                     now + 20) is None

    async def test_a_denial_is_answered_once(self, store: Store, now: int) -> None:
        authorization = _authorization("a", now)
        await store.save_device_authorization(authorization, now)
        assert await store.decide_device_authorization(
            authorization.user_code_hash, DeviceDecision(status="denied"), now) is not None
        assert await store.poll_device_authorization(authorization.device_code_hash, now) == \
            PollDenied()
        assert await store.poll_device_authorization(
            authorization.device_code_hash, now + 60) == PollExpired()

    async def test_a_decision_is_taken_once(self, store: Store, now: int) -> None:
        authorization = _authorization("a", now)
        await store.save_device_authorization(authorization, now)
        assert await store.decide_device_authorization(
            authorization.user_code_hash, DeviceDecision(status="denied"), now) is not None
        assert await store.decide_device_authorization(authorization.user_code_hash,
                                                       APPROVE, now) is None
        held = await store.find_device_authorization(authorization.user_code_hash, now)
        assert held is not None and held.status == "denied"

    async def test_concurrent_decisions_across_instances_have_one_winner(
        self, store: Store, other_instance: Store, now: int
    ) -> None:
        self._require_concurrency()
        authorization = _authorization("a", now)
        await store.save_device_authorization(authorization, now)
        decisions = [msgspec.structs.replace(APPROVE, user_id=f"user-{n}") for n in range(10)]
        results = await asyncio.gather(*(
            (store if n % 2 else other_instance).decide_device_authorization(
                authorization.user_code_hash, decision, now)
            for n, decision in enumerate(decisions)))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert await other_instance.find_device_authorization(
            authorization.user_code_hash, now) == winners[0]

    async def test_an_approval_is_taken_once_under_50_concurrent_pollers(
        self, store: Store, other_instance: Store, now: int
    ) -> None:
        self._require_concurrency()
        authorization = _authorization("a", now)
        await store.save_device_authorization(authorization, now)
        await store.decide_device_authorization(authorization.user_code_hash, APPROVE, now)
        results = await asyncio.gather(*(
            (store if n % 2 else other_instance).poll_device_authorization(
                authorization.device_code_hash, now + 1)
            for n in range(POLLERS)))
        assert sum(isinstance(r, PollApproved) for r in results) == 1
        assert all(isinstance(r, PollApproved | PollSlowDown | PollExpired) for r in results)

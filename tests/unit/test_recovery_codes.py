"""Recovery codes through the use cases (domain/recovery.py, domain/account_security.py,
domain/mfa.py, domain/signin.py), on the memory store and on PostgreSQL: single use, a
regenerated set ends the old one, what is typed is normalised, the count, and the codes
going with the last second factor.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator

import pyotp
import pytest

from adapters.memory.store import MemoryStore
from adapters.sealed_state import JoseSealer
from adapters.secret_sealing import AesGcmSecretSealer
from adapters.totp import PyotpTotp
from domain.account_security import NoSecondFactor, regenerate_recovery_codes
from domain.entities import User
from domain.mfa import (
    InvalidCurrentCode,
    begin_totp_enrolment,
    complete_totp_enrolment,
    remove_totp,
)
from domain.recovery import (
    RECOVERY_CODE_COUNT,
    ensure_recovery_codes,
    issue_recovery_codes,
    looks_like_recovery_code,
    recovery_code_hash,
    spend_recovery_code,
)
from domain.signin import Rejected, Throttled, TotpAccepted, check_recovery_code
from ports.store import Store
from tests.doubles import RecordingEvents

NOW = 1_700_000_010
TOTP = PyotpTotp()
SEEDS = AesGcmSecretSealer([os.urandom(32)])
SEALER = JoseSealer(os.urandom(32))
_SHAPE = re.compile(r"[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}")


@pytest.fixture(params=["memory", pytest.param("sql", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    from adapters.sql import open_sql_store
    from tests.services.postgres_server import empty_migrated_database

    sql = await open_sql_store(await empty_migrated_database(), migrate=False, pool_size=2)
    try:
        yield sql
    finally:
        await sql.close()


async def _user(store: Store, name: str = "alice") -> User:
    return await store.create_user(User(user_name=name))


async def _spend(store: Store, events: RecordingEvents, user: User, code: str) -> bool:
    return await spend_recovery_code(store, events, user.id, code, client_ip="192.0.2.1")


async def test_a_set_has_ten_distinct_codes_stored_only_hashed(store: Store) -> None:
    user = await _user(store)
    events = RecordingEvents()
    codes = await issue_recovery_codes(store, events, user.id, reason="enrolment")
    assert len(codes) == RECOVERY_CODE_COUNT == len(set(codes))
    assert all(_SHAPE.fullmatch(code) for code in codes)
    assert await store.count_recovery_codes(user.id) == 10
    assert events.named("recovery_codes_generated") == [
        {"user_id": user.id, "count": 10, "reason": "enrolment"}]
    # The store keeps hashes: the transfer record of the user holds no code.
    exported = await store.export_users(None, 10, NOW)
    record = next(r for r in exported.records if r.user.id == user.id)
    assert sorted(record.recovery_codes) == sorted(recovery_code_hash(c) for c in codes)
    assert not set(codes) & set(record.recovery_codes)


async def test_each_code_works_once_and_the_count_goes_down(store: Store) -> None:
    user = await _user(store)
    events = RecordingEvents()
    codes = await issue_recovery_codes(store, events, user.id, reason="enrolment")
    assert await _spend(store, events, user, codes[0])
    assert not await _spend(store, events, user, codes[0])
    assert await store.count_recovery_codes(user.id) == 9
    assert events.named("recovery_code_used") == [
        {"user_id": user.id, "remaining": 9, "client_ip": "192.0.2.1"}]
    for code in codes[1:]:
        assert await _spend(store, events, user, code)
    assert await store.count_recovery_codes(user.id) == 0
    assert events.named("recovery_code_used")[-1]["remaining"] == 0


async def test_a_code_is_only_its_users(store: Store) -> None:
    alice, bob = await _user(store), await _user(store, "bob")
    events = RecordingEvents()
    codes = await issue_recovery_codes(store, events, alice.id, reason="enrolment")
    assert not await _spend(store, events, bob, codes[0])
    assert await _spend(store, events, alice, codes[0])


@pytest.mark.parametrize("typed", [
    lambda c: c.upper(),
    lambda c: c.replace("-", ""),
    lambda c: c.replace("-", " "),
    lambda c: f"  {c}\t",
    lambda c: " - ".join(c.split("-")).upper(),
])
async def test_what_is_typed_is_normalised(store: Store, typed: object) -> None:
    user = await _user(store)
    events = RecordingEvents()
    code = (await issue_recovery_codes(store, events, user.id, reason="enrolment"))[0]
    variant = typed(code)  # type: ignore[operator]
    assert variant != code and looks_like_recovery_code(variant)
    assert await _spend(store, events, user, variant)
    assert not await _spend(store, events, user, code)


@pytest.mark.parametrize("typed", ["123456", "", "abcd-efgh-ijkl-mno", "abcd-efgh-ijkl-mnop1",
                                   "0000-1111-8888-9999", "abcd\x00efgh-ijkl-mnop"])
async def test_what_is_no_code_is_refused_without_a_lookup(store: Store, typed: str) -> None:
    user = await _user(store)
    events = RecordingEvents()
    await issue_recovery_codes(store, events, user.id, reason="enrolment")
    assert not looks_like_recovery_code(typed) or "\x00" in typed
    assert not await _spend(store, events, user, typed)
    assert await store.count_recovery_codes(user.id) == 10


async def test_regenerating_ends_the_old_set_at_once(store: Store) -> None:
    user = await _user(store)
    events = RecordingEvents()
    await store.set_totp(user.id, "sealed-seed", confirmed=True)
    old = await issue_recovery_codes(store, events, user.id, reason="enrolment")
    assert await _spend(store, events, user, old[0])
    issued = await regenerate_recovery_codes(store, events, user_id=user.id)
    assert issued.replaced and len(issued.codes) == 10 and not set(issued.codes) & set(old)
    assert await store.count_recovery_codes(user.id) == 10
    for code in old[1:]:
        assert not await _spend(store, events, user, code)
    assert await _spend(store, events, user, issued.codes[0])
    assert events.named("recovery_codes_generated")[-1]["reason"] == "regenerated"


async def test_regenerating_needs_a_second_factor(store: Store) -> None:
    user = await _user(store)
    events = RecordingEvents()
    with pytest.raises(NoSecondFactor):
        await regenerate_recovery_codes(store, events, user_id=user.id)
    assert await store.count_recovery_codes(user.id) == 0
    assert events.named("recovery_codes_generated") == []


async def test_a_first_factor_brings_a_first_set_and_keeps_an_existing_one(
    store: Store,
) -> None:
    user = await _user(store)
    events = RecordingEvents()
    enrolment = await begin_totp_enrolment(store, TOTP, SEALER, SEEDS, user_id=user.id,
                                           issuer="iss", current_code=None, now=NOW)
    confirmed = await complete_totp_enrolment(
        store, TOTP, SEALER, SEEDS, events, user_id=user.id, enrollment=enrolment.enrollment,
        code=pyotp.TOTP(enrolment.secret).at(NOW), now=NOW)
    assert confirmed is not None and len(confirmed.recovery_codes) == 10
    assert await ensure_recovery_codes(store, events, user.id) == ()
    # Replacing the factor keeps the set in force.
    later = NOW + 30
    again = await begin_totp_enrolment(
        store, TOTP, SEALER, SEEDS, user_id=user.id, issuer="iss",
        current_code=pyotp.TOTP(enrolment.secret).at(later), now=later)
    replaced = await complete_totp_enrolment(
        store, TOTP, SEALER, SEEDS, events, user_id=user.id, enrollment=again.enrollment,
        code=pyotp.TOTP(again.secret).at(later + 30), now=later + 30)
    assert replaced is not None and replaced.recovery_codes == ()
    assert await _spend(store, events, user, confirmed.recovery_codes[0])


async def test_removing_the_last_factor_with_a_recovery_code_clears_the_set(
    store: Store,
) -> None:
    user = await _user(store)
    events = RecordingEvents()
    await store.set_totp(user.id, SEEDS.seal(pyotp.random_base32(), f"totp:{user.id}"),
                         confirmed=True)
    codes = await issue_recovery_codes(store, events, user.id, reason="enrolment")
    with pytest.raises(InvalidCurrentCode):
        await remove_totp(store, TOTP, SEEDS, events, user_id=user.id, code="000000",
                          client_ip="192.0.2.1", now=NOW)
    removed = await remove_totp(store, TOTP, SEEDS, events, user_id=user.id, code=codes[0],
                                client_ip="192.0.2.1", now=NOW)
    assert removed.recovery_codes_cleared
    credentials = await store.get_credentials(user.id)
    assert credentials.totp_secret is None and not credentials.totp_confirmed
    assert await store.count_recovery_codes(user.id) == 0
    assert not await _spend(store, events, user, codes[1])


async def test_the_sign_in_step_takes_a_code_once_and_limits_guesses(store: Store) -> None:
    user = await _user(store)
    events = RecordingEvents()
    codes = await issue_recovery_codes(store, events, user.id, reason="enrolment")

    async def step(code: str) -> object:
        return await check_recovery_code(store, events, user_id=user.id, code=code,
                                         client_ip="192.0.2.1", now=NOW)

    assert isinstance(await step(codes[0]), TotpAccepted)
    assert isinstance(await step(codes[0]), Rejected)
    outcomes = [await step("aaaa-bbbb-cccc-dddd") for _ in range(6)]
    assert isinstance(outcomes[-1], Throttled)
    # While throttled, even a good code is not checked (and not spent).
    assert isinstance(await step(codes[1]), Throttled)
    assert await store.count_recovery_codes(user.id) == 9


async def test_concurrent_uses_of_one_code_succeed_once(store: Store) -> None:
    user = await _user(store)
    events = RecordingEvents()
    code = (await issue_recovery_codes(store, events, user.id, reason="enrolment"))[0]
    results = await asyncio.gather(*(_spend(store, events, user, code) for _ in range(8)))
    assert results.count(True) == 1
    assert await store.count_recovery_codes(user.id) == 9

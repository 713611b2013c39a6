"""Sign-in use cases: password step, TOTP step, throttling, set_password.

Throttling: failures per (address, user name) are a hard limit for that pair only; failures
per user name across addresses delay the addresses that have failures of their own; a
fresh address (the account's owner, elsewhere) is always checked.
"""

from __future__ import annotations

import asyncio
import os

import pyotp
import pytest
from argon2 import PasswordHasher

from adapters.memory.store import MemoryStore
from adapters.passwords import Argon2PasswordHasher
from adapters.secret_sealing import AesGcmSecretSealer
from adapters.totp import PyotpTotp
from domain.entities import Credentials, User
from domain.errors import InvalidValue, NotFound
from domain.signin import (
    PasswordAccepted,
    Rejected,
    Throttled,
    ThrottlePolicy,
    TotpAccepted,
    check_password,
    check_totp,
    set_password,
)
from tests.unit.oauth_doubles import RecordingEvents
from tests.unit.session_doubles import no_sessions

NOW = 1_700_000_010
PW = "s3cret pass"
HASHER = Argon2PasswordHasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
SECRET = pyotp.random_base32()
SEEDS = AesGcmSecretSealer([os.urandom(32)])


class SpyHasher:
    """Records what was verified, to prove unknown users cost a verification too."""

    def __init__(self) -> None:
        self.verified: list[str | None] = []

    async def hash(self, password: str) -> str:
        return await HASHER.hash(password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        self.verified.append(password_hash)
        return await HASHER.verify(password_hash, password)


async def _store(*, active: bool = True, totp: bool = False) -> tuple[MemoryStore, User]:
    store = MemoryStore()
    user = await store.create_user(User(user_name="Alice", active=active),
                                   password_hash=await HASHER.hash(PW))
    if totp:
        await store.set_totp(user.id, SECRET, confirmed=True)
    return store, user


async def _password(store: MemoryStore, events: RecordingEvents, name: str = "alice",
                    password: str = PW, ip: str = "10.0.0.1", now: int = NOW,
                    hasher: object = HASHER) -> object:
    return await check_password(store, hasher, events, user_name=name,  # type: ignore[arg-type]
                                password=password, client_ip=ip, now=now)


async def test_right_password_is_accepted_case_insensitively() -> None:
    store, user = await _store()
    outcome = await _password(store, RecordingEvents(), name="ALICE")
    assert outcome == PasswordAccepted(user_id=user.id, auth_time=NOW, totp_required=False)


async def test_confirmed_totp_factor_is_required_after_the_password() -> None:
    store, _ = await _store(totp=True)
    outcome = await _password(store, RecordingEvents())
    assert isinstance(outcome, PasswordAccepted) and outcome.totp_required


async def test_unconfirmed_totp_factor_is_not_required() -> None:
    store, user = await _store()
    await store.set_totp(user.id, SECRET, confirmed=False)
    outcome = await _password(store, RecordingEvents())
    assert isinstance(outcome, PasswordAccepted) and not outcome.totp_required


async def test_wrong_password_is_rejected_and_reported() -> None:
    store, user = await _store()
    events = RecordingEvents()
    assert await _password(store, events, password="wrong") == Rejected()
    assert events.events == [("signin_failed", {"reason": "bad_password", "user_id": user.id,
                                                "client_ip": "10.0.0.1"})]


async def test_unknown_user_costs_a_verification_against_no_hash() -> None:
    store, _ = await _store()
    spy = SpyHasher()
    assert await _password(store, RecordingEvents(), name="mallory", hasher=spy) == Rejected()
    assert spy.verified == [None]


async def test_inactive_user_is_rejected_even_with_the_right_password() -> None:
    store, _ = await _store(active=False)
    spy = SpyHasher()
    events = RecordingEvents()
    assert await _password(store, events, hasher=spy) == Rejected()
    assert spy.verified != [None]  # the same work as an active user
    assert events.events[0][1]["reason"] == "inactive"


async def test_user_without_password_cannot_sign_in() -> None:
    store = MemoryStore()
    await store.create_user(User(user_name="alice"))
    assert await _password(store, RecordingEvents(), password="") == Rejected()


async def test_fifth_failure_locks_that_address_out_of_that_user_until_the_window_ends(
) -> None:
    store, _ = await _store()
    events = RecordingEvents()
    for _ in range(5):
        assert await _password(store, events, password="wrong") == Rejected()
    locked = await _password(store, events)
    assert locked == Throttled(retry_after=900 - NOW % 900)
    assert "signin_locked" in events.names()
    next_window = NOW - NOW % 900 + 900
    assert isinstance(await _password(store, events, now=next_window), PasswordAccepted)


async def test_failures_at_one_address_never_lock_the_user_out_at_another() -> None:
    # The confirmed attack: six requests naming a user locked that user out everywhere.
    store, user = await _store()
    events = RecordingEvents()
    for _ in range(50):
        await _password(store, events, password="wrong", ip="203.0.113.9")
    owner = await _password(store, events, ip="198.51.100.7")
    assert owner == PasswordAccepted(user_id=user.id, auth_time=NOW, totp_required=False)


async def test_a_guesser_at_one_address_is_held_to_five_checks_per_window() -> None:
    store, _ = await _store()
    spy = SpyHasher()
    minute = [await _password(store, RecordingEvents(), password=f"guess{i}", now=NOW + i,
                              hasher=spy) for i in range(60)]
    assert len(spy.verified) == 5
    assert all(isinstance(o, Throttled) for o in minute[5:])
    # Refused attempts are not counted, so the next window starts afresh, with five more.
    next_window = NOW - NOW % 900 + 900
    for i in range(10):
        await _password(store, RecordingEvents(), password="x", now=next_window + i, hasher=spy)
    assert len(spy.verified) == 10


def test_delays_double_from_the_sixth_failure_and_are_capped() -> None:
    policy = ThrottlePolicy()
    assert [policy.delay(n) for n in range(4, 13)] == [0, 1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.delay(10**9) == 60


async def test_a_distributed_guesser_is_slowed_and_the_owner_still_gets_in() -> None:
    store, user = await _store()
    spy = SpyHasher()
    bots = [f"203.0.113.{n}" for n in range(40)]

    async def guess(ip: str, now: int) -> object:
        return await _password(store, RecordingEvents(), password="guess", ip=ip, now=now,
                               hasher=spy)

    # A first guess from each address is checked: it could be the owner's right password.
    assert [await guess(ip, NOW) for ip in bots] == [Rejected()] * 40
    # Then every address that has failed shares one delayed slot.
    second = [await guess(ip, NOW + 1) for ip in bots]
    assert second.count(Rejected()) == 1
    assert set(second) - {Rejected()} == {Throttled(retry_after=60)}
    checked = len(spy.verified)
    for second_of_minute in range(2, 62):
        for ip in bots:
            await guess(ip, NOW + second_of_minute)
    assert len(spy.verified) - checked <= 2  # one per 60-second delay
    owner = await _password(store, RecordingEvents(), ip="198.51.100.7", now=NOW + 62)
    assert owner == PasswordAccepted(user_id=user.id, auth_time=NOW + 62, totp_required=False)


async def test_an_address_with_failures_of_its_own_waits_out_the_delay_then_is_checked(
) -> None:
    store, user = await _store()
    events = RecordingEvents()
    for n in range(6):  # six other addresses: user failures past the free five
        await _password(store, events, password="wrong", ip=f"203.0.113.{n}")
    assert await _password(store, events, password="typo", ip="10.9.9.9") == Rejected()
    # The delayed slot is free: this retry is checked, and holds the slot for the delay.
    assert await _password(store, events, password="typo2", ip="10.9.9.9") == Rejected()
    waited = await _password(store, events, ip="10.9.9.9", now=NOW + 1)
    assert waited == Throttled(retry_after=ThrottlePolicy().delay(8))
    assert "signin_locked" in events.names()
    later = await _password(store, events, ip="10.9.9.9", now=NOW + ThrottlePolicy().delay(7))
    assert isinstance(later, PasswordAccepted) and later.user_id == user.id


async def test_a_success_clears_that_address_failures_for_the_user() -> None:
    store, _ = await _store()
    no_delays = ThrottlePolicy(user_free=1000)

    async def attempt(password: str) -> object:
        return await check_password(store, HASHER, RecordingEvents(), user_name="alice",
                                    password=password, client_ip="ip", now=NOW,
                                    policy=no_delays)

    for _ in range(4):
        assert await attempt("typo") == Rejected()
    assert isinstance(await attempt(PW), PasswordAccepted)
    # Five more failures before that address is locked out of that user, not one.
    for _ in range(5):
        assert await attempt("typo") == Rejected()
    assert isinstance(await attempt(PW), Throttled)


async def test_failures_from_one_address_across_users_lock_the_address() -> None:
    store, _ = await _store()
    events = RecordingEvents()
    for i in range(20):
        await _password(store, events, name=f"user{i}", password="x")
    assert isinstance(await _password(store, events), Throttled)
    assert isinstance(await _password(store, events, ip="10.0.0.2"), PasswordAccepted)


async def test_the_address_limit_is_configurable_and_can_be_switched_off() -> None:
    store, _ = await _store()
    off = ThrottlePolicy(ip_limit=0)
    for i in range(100):
        await check_password(store, HASHER, RecordingEvents(), user_name=f"user{i}",
                             password="x", client_ip="10.0.0.1", now=NOW, policy=off)
    accepted = await check_password(store, HASHER, RecordingEvents(), user_name="alice",
                                    password=PW, client_ip="10.0.0.1", now=NOW, policy=off)
    assert isinstance(accepted, PasswordAccepted)


async def test_successes_do_not_count_towards_the_limit() -> None:
    store, _ = await _store()
    for _ in range(10):
        assert isinstance(await _password(store, RecordingEvents()), PasswordAccepted)


async def test_concurrent_failures_cannot_slip_under_the_limit() -> None:
    # Each verification awaits a thread, so 30 parallel guesses all start before the first
    # one fails: only the five the limit allows may be checked.
    store, _ = await _store()
    spy = SpyHasher()
    outcomes = await asyncio.gather(*(
        _password(store, RecordingEvents(), password=f"guess{i}", hasher=spy)
        for i in range(30)))
    assert len(spy.verified) == 5
    assert sum(isinstance(o, Throttled) for o in outcomes) == 25
    assert isinstance(await _password(store, RecordingEvents()), Throttled)


class _RemoteStore(MemoryStore):
    """A store whose reads suspend, as a network round trip to Redis or PostgreSQL does."""

    async def get_credentials(self, user_id: str) -> Credentials:
        await asyncio.sleep(0)
        return await super().get_credentials(user_id)


async def test_concurrent_totp_guesses_cannot_slip_under_the_limit() -> None:
    store = _RemoteStore()
    user = await store.create_user(User(user_name="alice"), password_hash=await HASHER.hash(PW))
    await store.set_totp(user.id, SECRET, confirmed=True)
    valid = {pyotp.TOTP(SECRET).at(NOW + d) for d in (-30, 0, 30)}
    guesses = [f"{n:06d}" for n in range(60) if f"{n:06d}" not in valid][:50]
    outcomes = await asyncio.gather(*(
        check_totp(store, PyotpTotp(), RecordingEvents(), user_id=user.id, code=guess,
                   seeds=SEEDS, client_ip=f"10.0.0.{i}", now=NOW)
        for i, guess in enumerate(guesses)))
    assert sum(o == Rejected() for o in outcomes) == 5
    assert sum(isinstance(o, Throttled) for o in outcomes) == 45


async def test_policy_is_configurable() -> None:
    store, _ = await _store()
    policy = ThrottlePolicy(pair_limit=1, ip_limit=100, window_seconds=60)
    events = RecordingEvents()
    await check_password(store, HASHER, events, user_name="alice", password="x",
                         client_ip="ip", now=NOW, policy=policy)
    outcome = await check_password(store, HASHER, events, user_name="alice", password=PW,
                                   client_ip="ip", now=NOW, policy=policy)
    assert outcome == Throttled(retry_after=60 - NOW % 60)


async def test_totp_step_accepts_a_valid_code_once() -> None:
    store, user = await _store(totp=True)
    events = RecordingEvents()
    code = pyotp.TOTP(SECRET).at(NOW)
    first = await check_totp(store, PyotpTotp(), events, user_id=user.id, code=code,
                             seeds=SEEDS, client_ip="ip", now=NOW)
    assert first == TotpAccepted(user_id=user.id)
    replay = await check_totp(store, PyotpTotp(), events, user_id=user.id, code=code,
                              seeds=SEEDS, client_ip="ip", now=NOW + 5)
    assert replay == Rejected()


async def test_totp_failures_lock_the_second_factor_of_the_user_everywhere() -> None:
    # Only someone who knows the password reaches this step, so its limit is per user.
    store, user = await _store(totp=True)
    events = RecordingEvents()
    wrong = next(f"{n:06d}" for n in range(10) if not any(
        pyotp.TOTP(SECRET).at(NOW + d) == f"{n:06d}" for d in (-30, 0, 30)))
    for _ in range(5):
        assert await check_totp(store, PyotpTotp(), events, user_id=user.id, code=wrong,
                                seeds=SEEDS, client_ip="ip", now=NOW) == Rejected()
    code = pyotp.TOTP(SECRET).at(NOW)
    for ip in ("ip", "10.1.1.1"):
        outcome = await check_totp(store, PyotpTotp(), events, user_id=user.id, code=code,
                                   seeds=SEEDS, client_ip=ip, now=NOW)
        assert isinstance(outcome, Throttled)
    # The failing address may not try the password either; another address may.
    assert isinstance(await _password(store, events, ip="ip"), Throttled)
    assert isinstance(await _password(store, events, ip="10.1.1.1"), PasswordAccepted)


async def test_totp_step_refuses_a_user_without_a_confirmed_factor() -> None:
    store, user = await _store()
    await store.set_totp(user.id, SECRET, confirmed=False)
    outcome = await check_totp(store, PyotpTotp(), RecordingEvents(), user_id=user.id,
                               code=pyotp.TOTP(SECRET).at(NOW), seeds=SEEDS, client_ip="ip",
                               now=NOW)
    assert outcome == Rejected()


async def test_set_password_hashes_with_argon2id() -> None:
    store, user = await _store()
    await set_password(store, HASHER, user_name="ALICE", password="new password", now=NOW,
                       sessions=no_sessions)
    stored = (await store.get_credentials(user.id)).password_hash
    assert stored is not None and stored.startswith("$argon2id$")
    assert isinstance(await _password(store, RecordingEvents(), password="new password"),
                      PasswordAccepted)


async def test_set_password_refuses_unknown_users_and_empty_passwords() -> None:
    store, _ = await _store()
    with pytest.raises(NotFound):
        await set_password(store, HASHER, user_name="nobody", password="long enough", now=NOW,
                           sessions=no_sessions)
    with pytest.raises(InvalidValue):
        await set_password(store, HASHER, user_name="alice", password="", now=NOW,
                           sessions=no_sessions)

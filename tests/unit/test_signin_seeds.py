"""The TOTP step of a sign-in reads the seed sealed at rest: clear seeds from before sealing
and seeds sealed with an older key are accepted and sealed again; one that does not open
fails closed."""

from __future__ import annotations

import os

import pyotp

from adapters.memory.store import MemoryStore
from adapters.secret_sealing import AesGcmSecretSealer, key_id
from adapters.totp import PyotpTotp
from domain.entities import User
from domain.signin import Rejected, TotpAccepted, check_totp
from tests.doubles import RecordingEvents

NOW = 1_700_000_010
SECRET = pyotp.random_base32()
OLD_KEY, NEW_KEY = os.urandom(32), os.urandom(32)
SEEDS = AesGcmSecretSealer([NEW_KEY, OLD_KEY])


async def _user(store: MemoryStore, stored_seed: str | None = None) -> User:
    user = await store.create_user(User(user_name="alice"))
    await store.set_totp(user.id, stored_seed or SEEDS.seal(SECRET, f"totp:{user.id}"),
                         confirmed=True)
    return user


async def _sign_in(store: MemoryStore, user: User, code: str, *,
                   seeds: AesGcmSecretSealer = SEEDS,
                   events: RecordingEvents | None = None) -> object:
    return await check_totp(store, PyotpTotp(), events or RecordingEvents(), seeds=seeds,
                            user_id=user.id, code=code, client_ip="ip", now=NOW)


async def _stored(store: MemoryStore, user: User) -> str:
    stored = (await store.get_credentials(user.id)).totp_secret
    assert stored is not None
    return stored


async def test_a_sealed_seed_signs_in_and_is_left_as_it_is() -> None:
    store = MemoryStore()
    user = await _user(store)
    before = await _stored(store, user)
    assert await _sign_in(store, user, pyotp.TOTP(SECRET).at(NOW)) == TotpAccepted(user.id)
    assert await _stored(store, user) == before


async def test_a_clear_seed_from_before_sealing_signs_in_and_is_sealed() -> None:
    store = MemoryStore()
    user = await store.create_user(User(user_name="alice"))
    await store.set_totp(user.id, SECRET, confirmed=True)  # as an earlier version stored it
    assert await _sign_in(store, user, "000000") == Rejected()
    assert await _stored(store, user) == SECRET  # a failure writes nothing
    assert await _sign_in(store, user, pyotp.TOTP(SECRET).at(NOW)) == TotpAccepted(user.id)
    stored = await _stored(store, user)
    assert SECRET not in stored and key_id(NEW_KEY) in stored
    assert SEEDS.open(stored, f"totp:{user.id}").plaintext == SECRET


async def test_a_seed_sealed_with_an_older_key_is_sealed_again_with_the_current_one() -> None:
    store = MemoryStore()
    user = await store.create_user(User(user_name="alice"))
    await store.set_totp(user.id, AesGcmSecretSealer([OLD_KEY]).seal(SECRET, f"totp:{user.id}"),
                         confirmed=True)
    assert await _sign_in(store, user, pyotp.TOTP(SECRET).at(NOW)) == TotpAccepted(user.id)
    # The old key can now be retired.
    new_only = AesGcmSecretSealer([NEW_KEY])
    assert new_only.open(await _stored(store, user), f"totp:{user.id}").plaintext == SECRET


async def test_a_seed_that_does_not_open_fails_closed_and_is_reported() -> None:
    store = MemoryStore()
    user = await _user(store)
    before = await _stored(store, user)
    events = RecordingEvents()
    outcome = await _sign_in(store, user, pyotp.TOTP(SECRET).at(NOW),
                             seeds=AesGcmSecretSealer([os.urandom(32)]), events=events)
    assert outcome == Rejected()
    assert [e["user_id"] for e in events.named("totp_seed_unreadable")] == [user.id]
    assert await _stored(store, user) == before


async def test_a_seed_copied_from_another_user_does_not_open() -> None:
    store = MemoryStore()
    attacker = await store.create_user(User(user_name="mallory"))
    their_seed = SEEDS.seal(SECRET, f"totp:{attacker.id}")
    victim = await _user(store, stored_seed=their_seed)  # a row written by database access
    assert await _sign_in(store, victim, pyotp.TOTP(SECRET).at(NOW)) == Rejected()

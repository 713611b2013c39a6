"""domain.account_admin over the memory store: what each use case changes, the events it
logs (with the actor), and what it refuses."""

from __future__ import annotations

import pytest

from adapters.memory.store import MemoryStore
from domain.account_admin import (
    list_user_passkeys,
    mark_email_verified,
    remove_user_passkey,
    reset_user_mfa,
)
from domain.entities import Email, Passkey, User
from domain.errors import Conflict, InvalidValue, NotFound
from domain.recovery import recovery_code_hash
from tests.doubles import RecordingEvents
from tests.unit.session_doubles import RecordingSessionEnder

NOW = 1_700_000_000


async def _user(store: MemoryStore, name: str, *emails: Email) -> User:
    return await store.create_user(User(user_name=name, emails=emails))


async def _passkey(store: MemoryStore, owner: User, credential_id: str, at: int) -> Passkey:
    key = Passkey(credential_id=credential_id, user_id=owner.id, public_key="pQEC",
                  name=credential_id, created_at=at)
    await store.add_passkey(key)
    return key


async def test_listing_needs_an_existing_user() -> None:
    store = MemoryStore()
    alice = await _user(store, "alice")
    second = await _passkey(store, alice, "c2Vjb25k", NOW + 1)
    first = await _passkey(store, alice, "Zmlyc3Q", NOW)
    assert await list_user_passkeys(store, alice.id) == [first, second]
    with pytest.raises(NotFound):
        await list_user_passkeys(store, "nobody")


async def test_removing_a_passkey_logs_the_actor_and_spares_other_users() -> None:
    store, events = MemoryStore(), RecordingEvents()
    alice, bob = await _user(store, "alice"), await _user(store, "bob")
    mine = await _passkey(store, alice, "bWluZQ", NOW)
    theirs = await _passkey(store, bob, "dGhlaXJz", NOW)
    await store.replace_recovery_codes(alice.id, [recovery_code_hash("aaaa-bbbb")])
    with pytest.raises(NotFound):
        await remove_user_passkey(store, events, user_id=alice.id,
                                  credential_id=theirs.credential_id, actor="ops")
    with pytest.raises(InvalidValue):
        await remove_user_passkey(store, events, user_id=alice.id, credential_id="a/b",
                                  actor="ops")
    assert events.events == [] and await store.find_passkey(theirs.credential_id) == theirs
    done = await remove_user_passkey(store, events, user_id=alice.id,
                                     credential_id=mine.credential_id, actor="ops")
    assert done.passkey == mine and done.passkeys_left == 0
    assert done.recovery_codes_removed == 1
    assert await store.count_recovery_codes(alice.id) == 0
    assert events.named("admin_passkey_removed") == [{
        "actor": "ops", "user_id": alice.id, "credential_id": mine.credential_id,
        "passkey_name": mine.name, "passkeys_left": 0, "recovery_codes_removed": 1}]


async def test_the_reset_counts_what_it_removed_and_ends_sign_ins() -> None:
    store, events, sessions = MemoryStore(), RecordingEvents(), RecordingSessionEnder(ended=2)
    alice = await _user(store, "alice")
    await store.set_totp(alice.id, "SEED", confirmed=True)
    await _passkey(store, alice, "b25l", NOW)
    await store.replace_recovery_codes(alice.id, [recovery_code_hash("aaaa-bbbb"),
                                                  recovery_code_hash("cccc-dddd")])
    done = await reset_user_mfa(store, events, user_id=alice.id, actor="cli",
                                sessions=sessions, now=NOW)
    assert (done.totp_removed, done.passkeys_removed, done.recovery_codes_removed,
            done.sessions_ended) == (True, 1, 2, 2)
    assert sessions.calls == [(alice.id, "mfa_reset")]
    (event,) = events.named("admin_mfa_reset")
    assert event["actor"] == "cli" and event["passkeys_removed"] == 1
    with pytest.raises(NotFound):
        await reset_user_mfa(store, events, user_id="nobody", actor="cli",
                             sessions=sessions, now=NOW)


async def test_verifying_records_the_current_primary_address_lower_cased() -> None:
    store, events = MemoryStore(), RecordingEvents()
    alice = await _user(store, "alice", Email(value="first@example.com"),
                        Email(value="Main@Example.COM", primary=True))
    done = await mark_email_verified(store, events, user_id=alice.id, actor="ops")
    assert done.email == "Main@Example.COM" and not done.already
    assert (await store.get_credentials(alice.id)).verified_email == "main@example.com"
    again = await mark_email_verified(store, events, user_id=alice.id, actor="ops")
    assert again.already
    assert [e["already"] for e in events.named("admin_email_verified")] == [False, True]
    bob = await _user(store, "bob")
    with pytest.raises(Conflict):
        await mark_email_verified(store, events, user_id=bob.id, actor="ops")
    assert (await store.get_credentials(bob.id)).verified_email is None

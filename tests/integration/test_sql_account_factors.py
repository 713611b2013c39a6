"""Passkeys, recovery codes, the verified email and account tokens on PostgreSQL (migration
0020), beyond the contract: the upgrade of a database holding 0019 data, values
PostgreSQL cannot hold, the transfer of a user's factors (and its agreement with the
memory adapter), account-token transfer, counts and purge, races across two stores, and
the one statement each single-use step is."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pytest
from sqlalchemy import event

from adapters.memory import MemoryStore
from adapters.sql import SqlStore, open_sql_store
from adapters.testing.contract.transfer import drain
from domain.entities import AccountToken, Passkey, User
from domain.errors import Conflict, InvalidValue, StoreUnavailable
from domain.records import UserRecord
from migrations import runner
from migrations.runner import asyncpg_dsn, load_migrations, migrate
from ports.store import Store
from tests.services.postgres_server import empty_migrated_database

pytestmark = pytest.mark.postgres

NOW = 1_700_000_000
UNSTORABLE = ["a\x00b", "lone \ud800 surrogate"]


@pytest.fixture
async def url() -> str:
    return await empty_migrated_database()


@pytest.fixture
async def store(url: str) -> AsyncIterator[SqlStore]:
    sql = await open_sql_store(url, migrate=False, pool_size=10)
    yield sql
    await sql.close()


@pytest.fixture
async def other(url: str, store: SqlStore) -> AsyncIterator[SqlStore]:
    """A second store (its own pool) on the same database: a second instance."""
    sql = await open_sql_store(url, migrate=False, pool_size=10)
    yield sql
    await sql.close()


def _passkey(user_id: str, key: str, **changes: Any) -> Passkey:
    passkey = Passkey(
        credential_id=f"cred-{key}", user_id=user_id, public_key=f"pk-{key}",
        sign_count=0, transports=("usb", "nfc"), name=f"Key {key}", synced=False,
        created_at=NOW,
    )
    return msgspec.structs.replace(passkey, **changes)


def _code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _token(name: str, **changes: Any) -> AccountToken:
    token = AccountToken(
        token_hash=_code(name), kind="password_reset", user_id="u-1",
        email="alice@example.com", created_at=NOW, exp=NOW + 1800,
    )
    return msgspec.structs.replace(token, **changes)


def _statements(store: SqlStore) -> list[str]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(store._engine.sync_engine, "before_cursor_execute", record)
    return seen


# The upgrade from 0019


async def test_the_upgrade_keeps_existing_credentials_with_no_verified_email(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = [m for m in load_migrations() if m.version < "0020"]
    monkeypatch.setattr(runner, "load_migrations", lambda: before)
    await runner.migrate(empty_database_url)
    conn = await asyncpg.connect(asyncpg_dsn(empty_database_url))
    try:
        # Rows as a 0019 store wrote them (the columns of that schema only).
        await conn.execute(
            "INSERT INTO users (id, user_name, active, emails, created, last_modified, "
            "version, active_assigned, phone_numbers, addresses, photos, x509_certificates) "
            "VALUES ('u-a', 'alice', true, '[]', $1, $1, 1, true, '[]', '[]', '[]', '[]'), "
            "('u-b', 'bob', true, '[]', $1, $1, 1, true, '[]', '[]', '[]', '[]')", NOW)
        await conn.execute(
            "INSERT INTO user_credentials (user_id, password_hash, totp_secret, totp_confirmed)"
            " VALUES ('u-a', '$argon2id$a', 'SEED', true)")
    finally:
        await conn.close()
    monkeypatch.undo()
    assert await migrate(empty_database_url) == ["0020"]
    store = await open_sql_store(empty_database_url, migrate=False)
    try:
        alice = await store.get_credentials("u-a")
        assert (alice.password_hash, alice.totp_secret, alice.totp_confirmed,
                alice.verified_email) == ("$argon2id$a", "SEED", True, None)
        assert (await store.get_credentials("u-b")).verified_email is None
        assert await store.list_passkeys("u-a") == []
        assert await store.count_recovery_codes("u-a") == 0
        await store.add_passkey(_passkey("u-a", "a"))
        await store.replace_recovery_codes("u-a", [_code("one")])
        await store.set_verified_email("u-a", "alice@example.com")
        assert (await store.get_credentials("u-a")).password_hash == "$argon2id$a"
        assert (await store.counts(NOW)).account_tokens == 0
    finally:
        await store.close()


# Values PostgreSQL cannot hold: the caller's error (InvalidValue), never StoreUnavailable


@pytest.mark.parametrize("value", UNSTORABLE)
async def test_writes_of_a_value_postgresql_cannot_hold_are_invalid_value(
    store: SqlStore, value: str
) -> None:
    alice = await store.create_user(User(id="u-a", user_name="alice"))
    await store.add_passkey(_passkey(alice.id, "held"))
    await store.replace_recovery_codes(alice.id, [_code("held")])
    await store.save_account_token(_token("held"), NOW)
    attempts = [
        store.add_passkey(_passkey(alice.id, "n1", name=value)),
        store.add_passkey(_passkey(alice.id, "n2", public_key=value)),
        store.add_passkey(_passkey(alice.id, "n3", transports=("usb", value))),
        store.rename_passkey(alice.id, "cred-held", value),
        store.set_verified_email(alice.id, value),
        store.replace_recovery_codes(alice.id, [_code("new"), value]),
        store.save_account_token(_token("new", email=value), NOW),
        store.import_account_tokens((_token("copied", user_id=value),), NOW),
        store.import_users((UserRecord(
            user=User(id="u-a", user_name="alice"),
            passkeys=(_passkey(alice.id, "held", name=value),)),), NOW),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidValue) as caught:
            await attempt
        assert not isinstance(caught.value, StoreUnavailable)
        for name in ("asyncpg", "sqlalchemy"):
            assert name not in str(caught.value).lower()
    # Nothing was written, and the pool is fine.
    assert await store.list_passkeys(alice.id) == [_passkey(alice.id, "held")]
    assert await store.count_recovery_codes(alice.id) == 1
    assert (await store.get_credentials(alice.id)).verified_email is None
    assert (await store.counts(NOW)).account_tokens == 1
    assert (await store.health())["store"]


@pytest.mark.parametrize("value", UNSTORABLE)
async def test_lookups_by_a_value_postgresql_cannot_hold_find_nothing(
    store: SqlStore, value: str
) -> None:
    alice = await store.create_user(User(id="u-a", user_name="alice"))
    await store.add_passkey(_passkey(alice.id, "held"))
    await store.replace_recovery_codes(alice.id, [_code("held")])
    assert await store.find_passkey(value) is None
    assert await store.list_passkeys(value) == []
    assert not await store.record_passkey_use(value, 1, NOW)
    assert not await store.rename_passkey(value, "cred-held", "x")
    assert not await store.rename_passkey(alice.id, value, "x")
    assert not await store.remove_passkey(alice.id, value)
    assert await store.remove_passkeys(value) == 0
    assert not await store.use_recovery_code(alice.id, value)
    assert not await store.use_recovery_code(value, _code("held"))
    assert await store.count_recovery_codes(value) == 0
    assert await store.take_account_token("password_reset", value, NOW) is None
    assert await store.revoke_account_tokens(value, "password_reset", NOW) == 0
    # Inside a unit too: the lookup must not abort the unit's transaction.
    assert await store.atomically(lambda: store.find_passkey(value)) is None
    assert await store.list_passkeys(alice.id) == [_passkey(alice.id, "held")]


# Transfer of a user's factors


async def _alice_with_every_factor(store: Store) -> None:
    await store.create_user(User(id="u-a", user_name="alice"), password_hash="$argon2id$a")
    await store.set_verified_email("u-a", "alice@example.com")
    await store.add_passkey(_passkey("u-a", "old", sign_count=3, created_at=NOW - 10))
    await store.add_passkey(_passkey("u-a", "new", synced=True, transports=()))
    assert await store.record_passkey_use("cred-old", 4, NOW + 1)
    await store.replace_recovery_codes("u-a", [_code(f"c{n}") for n in range(3)])
    await store.create_user(User(id="u-b", user_name="bob"))


async def test_users_travel_with_their_verified_email_passkeys_and_codes(
    store: SqlStore,
) -> None:
    await _alice_with_every_factor(store)
    exported = await drain(store.export_users, NOW, limit=1)
    alice = exported[0]
    assert alice.verified_email == "alice@example.com"
    assert [p.credential_id for p in alice.passkeys] == ["cred-old", "cred-new"]
    assert alice.passkeys[0].sign_count == 4 and alice.passkeys[0].last_used_at == NOW + 1
    assert alice.recovery_codes == tuple(sorted(_code(f"c{n}") for n in range(3)))
    assert exported[1] == UserRecord(user=exported[1].user)
    # The same operations on the memory adapter export the same records: a copy between
    # backends keeps every factor.
    memory = MemoryStore()
    await _alice_with_every_factor(memory)
    assert await drain(memory.export_users, NOW) == exported

    await store.delete_user("u-a")
    assert await store.find_passkey("cred-old") is None
    assert await store.import_users(tuple(exported), NOW) == 1
    assert await drain(store.export_users, NOW) == exported
    assert await store.import_users(tuple(exported), NOW) == 0
    assert await store.use_recovery_code("u-a", _code("c1"))
    assert not await store.record_passkey_use("cred-old", 4, NOW + 2)


async def test_an_import_replaces_the_users_passkeys_and_codes_with_the_records(
    store: SqlStore,
) -> None:
    await _alice_with_every_factor(store)
    record = (await drain(store.export_users, NOW))[0]
    kept = msgspec.structs.replace(record.passkeys[1], name="Renamed")
    added = _passkey("u-a", "added", created_at=NOW + 5)
    changed = msgspec.structs.replace(
        record, passkeys=(kept, added), recovery_codes=(_code("fresh"),))
    assert await store.import_users((changed,), NOW) == 1
    assert await store.list_passkeys("u-a") == [kept, added]
    assert await store.find_passkey("cred-old") is None
    assert not await store.use_recovery_code("u-a", _code("c0"))
    assert await store.count_recovery_codes("u-a") == 1
    cleared = msgspec.structs.replace(changed, passkeys=(), recovery_codes=(),
                                      verified_email=None)
    assert await store.import_users((cleared,), NOW) == 1
    assert await store.list_passkeys("u-a") == []
    assert await store.count_recovery_codes("u-a") == 0
    assert (await store.get_credentials("u-a")).verified_email is None
    assert (await store.get_credentials("u-a")).password_hash == "$argon2id$a"


async def test_an_import_of_a_passkey_another_user_holds_is_a_conflict_and_writes_nothing(
    store: SqlStore,
) -> None:
    await _alice_with_every_factor(store)
    held = (await store.list_passkeys("u-a"))[0]
    carol = User(id="u-c", user_name="carol")
    batches = [
        # Bob's record holds Alice's credential (with his user id, or hers).
        (UserRecord(user=User(id="u-c", user_name="carol")),
         UserRecord(user=User(id="u-b", user_name="bob"),
                    passkeys=(msgspec.structs.replace(held, user_id="u-b"),))),
        (UserRecord(user=carol, passkeys=(held,)),),
        # Two records of the batch claim one new credential.
        (UserRecord(user=carol, passkeys=(_passkey("u-c", "twice"),)),
         UserRecord(user=User(id="u-b", user_name="bob"),
                    passkeys=(_passkey("u-b", "twice"),))),
    ]
    for batch in batches:
        with pytest.raises(Conflict) as caught:
            await store.import_users(batch, NOW)
        assert caught.value.attribute == "credential_id"
    assert [r.user.id for r in await drain(store.export_users, NOW)] == ["u-a", "u-b"]
    assert await store.list_passkeys("u-b") == []
    assert (await store.find_passkey("cred-old")) == held


# Account tokens: transfer, counts, purge


async def test_account_tokens_travel_live_only_by_hash(store: SqlStore) -> None:
    live = [_token(f"t{n}") for n in range(5)]
    for token in live:
        await store.save_account_token(token, NOW)
    await store.save_account_token(_token("expired", exp=NOW), NOW - 10)
    exported = await drain(store.export_account_tokens, NOW, limit=2)
    assert exported == sorted(live, key=lambda token: token.token_hash)


async def test_an_import_keeps_a_live_stored_token_and_replaces_an_expired_one(
    store: SqlStore,
) -> None:
    await store.save_account_token(_token("live", email="stored@example.com"), NOW)
    await store.save_account_token(_token("dead", exp=NOW - 1, email="old@example.com"), NOW)
    records = (
        _token("live", email="copied@example.com"),
        _token("dead", kind="email_verification"),
        _token("new"),
        _token("new", email="second@example.com"),  # the first record of a hash wins
        _token("gone", exp=NOW),
    )
    assert await store.import_account_tokens(records, NOW) == 2
    assert await store.take_account_token(
        "password_reset", _code("live"), NOW) == _token("live", email="stored@example.com")
    assert await store.take_account_token(
        "email_verification", _code("dead"), NOW) == _token("dead", kind="email_verification")
    assert await store.take_account_token("password_reset", _code("new"), NOW) == _token("new")
    assert await store.take_account_token("password_reset", _code("gone"), NOW - 1) is None
    assert await store.import_account_tokens((), NOW) == 0


async def test_account_tokens_are_counted_live_and_purged_in_batches(store: SqlStore) -> None:
    for n in range(5):
        await store.save_account_token(_token(f"short{n}", exp=NOW + 10), NOW)
    await store.save_account_token(_token("long"), NOW)
    assert (await store.counts(NOW)).account_tokens == 6
    assert (await store.counts(NOW + 10)).account_tokens == 1
    seen = _statements(store)
    assert (await store.purge_expired(NOW + 10, batch_size=2)).account_tokens == 5
    assert len([s for s in seen if s.startswith("DELETE FROM account_tokens")]) == 3
    assert (await store.purge_expired(NOW + 10)).account_tokens == 0
    assert await store.take_account_token("password_reset", _code("long"), NOW + 10) \
        == _token("long")


# Races across two instances, and one statement per single-use step


async def test_uses_across_two_stores_have_one_winner(store: SqlStore, other: SqlStore) -> None:
    await store.create_user(User(id="u-a", user_name="alice"))
    await store.add_passkey(_passkey("u-a", "a", sign_count=7))
    await store.replace_recovery_codes("u-a", [_code("one")])
    uses = await asyncio.gather(*(
        (store if n % 2 else other).record_passkey_use("cred-a", 8, NOW) for n in range(50)))
    assert uses.count(True) == 1
    codes = await asyncio.gather(*(
        (store if n % 2 else other).use_recovery_code("u-a", _code("one")) for n in range(50)))
    assert codes.count(True) == 1


async def test_concurrent_replacements_of_the_codes_never_mix(
    store: SqlStore, other: SqlStore
) -> None:
    await store.create_user(User(id="u-a", user_name="alice"))
    sets = [[_code(f"set{s}-{n}") for n in range(10)] for s in range(10)]
    await asyncio.gather(*(
        (store if s % 2 else other).replace_recovery_codes("u-a", codes)
        for s, codes in enumerate(sets)))
    assert await store.count_recovery_codes("u-a") == 10
    survivors = [codes for codes in sets if await store.use_recovery_code("u-a", codes[0])]
    assert len(survivors) == 1


async def test_each_single_use_step_is_one_statement(store: SqlStore) -> None:
    await store.create_user(User(id="u-a", user_name="alice"))
    await store.add_passkey(_passkey("u-a", "a"))
    await store.replace_recovery_codes("u-a", [_code("one")])
    await store.save_account_token(_token("t"), NOW)
    seen = _statements(store)
    assert await store.record_passkey_use("cred-a", 1, NOW)
    assert await store.use_recovery_code("u-a", _code("one"))
    assert await store.take_account_token("password_reset", _code("t"), NOW) == _token("t")
    assert [s.split()[0] for s in seen] == ["UPDATE", "DELETE", "DELETE"]

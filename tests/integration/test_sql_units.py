"""``SqlStore.atomically`` (the optional ``Atomic`` part of the port) and the SCIM writes
that run in it: a write of several store calls is kept whole or not at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.sql import SqlStore, open_sql_store
from domain.entities import AccessToken, User
from domain.errors import Conflict, NotFound, StoreUnavailable
from domain.scim import writes
from domain.scim.bulk import read_bulk_request, run_bulk
from domain.tokens import hash_token
from ports.store import Atomic
from tests.doubles import FakeClock, RecordingEvents
from tests.services.postgres_server import empty_migrated_database
from tests.unit.session_doubles import logout_ports

pytestmark = pytest.mark.postgres

NOW = 1_700_000_000
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


class FakeHasher:
    async def hash(self, password: str) -> str:
        return "hashed:" + password

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return password_hash == "hashed:" + password


@pytest.fixture
async def store() -> AsyncIterator[SqlStore]:
    sql = await open_sql_store(await empty_migrated_database(), migrate=False, pool_size=5)
    yield sql
    await sql.close()


def _ports(store: SqlStore) -> writes.WritePorts:
    clock, events = FakeClock(NOW), RecordingEvents()
    return writes.WritePorts(store, clock, FakeHasher(), events,
                             logout_ports(store, clock, events))


async def test_the_sql_store_has_units(store: SqlStore) -> None:
    assert isinstance(store, Atomic)


async def test_a_unit_that_raises_keeps_nothing(store: SqlStore) -> None:
    async def work() -> None:
        await store.create_user(User(id="u1", user_name="alice"))
        assert (await store.get_user("u1")).user_name == "alice"  # seen inside the unit
        raise RuntimeError("the process dies here")

    with pytest.raises(RuntimeError):
        await store.atomically(work)
    with pytest.raises(NotFound):
        await store.get_user("u1")


async def test_a_conflict_in_a_unit_undoes_its_earlier_writes(store: SqlStore) -> None:
    await store.create_user(User(id="taken", user_name="bob"))

    async def work() -> None:
        await store.create_user(User(id="u1", user_name="alice"))
        await store.create_user(User(id="u2", user_name="BOB"))

    with pytest.raises(Conflict):
        await store.atomically(work)
    with pytest.raises(NotFound):
        await store.get_user("u1")
    # The connection went back to the pool usable: the next unit works.
    assert (await store.atomically(lambda: store.create_user(
        User(id="u3", user_name="carol")))).id == "u3"


async def test_a_unit_that_returns_keeps_everything_and_nested_units_join(
    store: SqlStore,
) -> None:
    async def inner() -> None:
        await store.create_user(User(id="u2", user_name="bob"))

    async def work() -> str:
        await store.create_user(User(id="u1", user_name="alice"))
        await store.atomically(inner)
        return "done"

    assert await store.atomically(work) == "done"
    assert {(await store.get_user(i)).user_name for i in ("u1", "u2")} == {"alice", "bob"}


async def test_a_put_whose_revocation_fails_leaves_the_user_as_it_was(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The PUT sets a password and revokes the user's tokens in three store calls: a failure
    at the last one (a crash, a lost database) leaves neither the new attributes nor the
    new password."""
    ports = _ports(store)
    user = await writes.create_user(ports, {"userName": "alice", "password": "old-pass-1234"})
    token = AccessToken(token_hash=hash_token("tk_a"), token_display="tk_a...", active=True,
                        scope="openid", client_id="c", exp=NOW + 3600, iat=NOW, sub=user.id)
    await store.save_tokens(token, None, NOW)

    async def fails(*args: Any, **kwargs: Any) -> int:
        raise StoreUnavailable("the database went away")

    monkeypatch.setattr(store, "revoke_subject", fails)
    with pytest.raises(StoreUnavailable):
        await writes.replace_user(ports, user.id, {
            "userName": "alice", "displayName": "New Name", "password": "new-pass-1234",
        }, None)
    monkeypatch.undo()
    kept = await store.get_user(user.id)
    assert (kept.display_name, kept.version) == (None, 1)
    assert (await store.get_credentials(user.id)).password_hash == "hashed:old-pass-1234"


async def test_each_bulk_operation_is_its_own_transaction(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An operation that fails half-way is undone; the ones before it stay done."""
    ports = _ports(store)
    first = await writes.create_user(ports, {"userName": "alice"})
    real = store.revoke_subject

    async def fails_for_bob(sub: str, now: int) -> int:
        if (await store.get_user(sub)).user_name == "bob":
            raise StoreUnavailable("the database went away")
        return await real(sub, now)

    monkeypatch.setattr(store, "revoke_subject", fails_for_bob)
    request = read_bulk_request({"Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"userName": "bob"}},
        {"method": "PUT", "path": f"/Users/{first.id}",
         "data": {"userName": "alice", "active": False}},
        {"method": "PUT", "path": "/Users/bulkId:b",
         "data": {"userName": "bob", "active": False}},
    ]})
    outcomes = await run_bulk(ports, request, may_write=True)
    assert [o.status for o in outcomes[:2]] == [201, 200]
    assert isinstance(outcomes[2].error, StoreUnavailable)
    assert (await store.get_user(first.id)).active is False
    bob = await store.find_user_by_name("bob")
    assert bob is not None and bob.active is True and bob.version == 1

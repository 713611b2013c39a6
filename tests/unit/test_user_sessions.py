"""Sessions end when a user's sign-in is withdrawn (domain.user_sessions): SCIM
deactivation, deletion and passwords (single writes and Bulk), set_password, reset_mfa; the
back-channel logouts go out once the write is done, never for one that failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from adapters.memory.store import MemoryStore
from domain.clients import Client
from domain.entities import User
from domain.errors import NotFound, StoreUnavailable
from domain.mfa import reset_mfa
from domain.scim import writes
from domain.scim.bulk import read_bulk_request, run_bulk
from domain.sessions import SessionGrant
from domain.signin import set_password
from domain.user_sessions import ending_sessions_after, session_view, user_session_ender
from tests.doubles import FakeClock, RecordingEvents
from tests.unit.session_doubles import RecordingSender, logout_ports, signed_in
from tests.unit.test_scim_identities import NOW, FakeHasher, is_active, ops, save_token

LISTENER = Client(client_id="rp", name="RP", backchannel_logout_uri="https://rp.example/bcl")
QUIET = Client(client_id="quiet", name="Quiet")
DEACTIVATE = ops({"op": "replace", "path": "active", "value": False})


@dataclass
class Deployment:
    store: MemoryStore = field(default_factory=MemoryStore)
    clock: FakeClock = field(default_factory=lambda: FakeClock(NOW))
    events: RecordingEvents = field(default_factory=RecordingEvents)
    sender: RecordingSender = field(default_factory=RecordingSender)

    @property
    def ports(self) -> writes.WritePorts:
        return writes.WritePorts(self.store, self.clock, FakeHasher(), self.events,
                                 logout_ports(self.store, self.clock, self.events,
                                              (LISTENER, QUIET), self.sender))

    async def user(self, name: str) -> User:
        return await writes.create_user(self.ports, {"userName": name, "password": "pw-" * 4})

    async def session(self, user: User) -> str:
        return await signed_in(self.store, self.clock, user.id, (
            SessionGrant("rp", "gr_rp_" + user.id), SessionGrant("quiet", "gr_q_" + user.id)))

    async def sessions_of(self, user: User) -> list[str]:
        return [s.sid for s in await self.store.list_sessions(user.id, self.clock.now())]

    def reasons(self) -> list[Any]:
        return [e["reason"] for e in self.events.named("session_ended")]


@pytest.fixture
def d() -> Deployment:
    return Deployment()


WRITES = {
    "patch active false": (lambda d, u: writes.patch_user(d.ports, u.id, DEACTIVATE, None),
                           "user_deactivated"),
    "put active false": (lambda d, u: writes.replace_user(
        d.ports, u.id, {"userName": u.user_name, "active": False}, None), "user_deactivated"),
    "delete": (lambda d, u: writes.delete_user(d.ports, u.id, None), "user_deleted"),
    "patch password": (lambda d, u: writes.patch_user(d.ports, u.id, ops(
        {"op": "replace", "path": "password", "value": "another password"}), None),
        "password_changed"),
    "patch clears password": (lambda d, u: writes.patch_user(
        d.ports, u.id, ops({"op": "remove", "path": "password"}), None), "password_changed"),
    "put password": (lambda d, u: writes.replace_user(
        d.ports, u.id, {"userName": u.user_name, "password": "another password"}, None),
        "password_changed"),
}


@pytest.mark.parametrize("name", list(WRITES))
async def test_a_scim_write_that_withdraws_sign_in_ends_the_users_sessions(
    d: Deployment, name: str
) -> None:
    write, reason = WRITES[name]
    alice, bob = await d.user("alice"), await d.user("bob")
    first, second = await d.session(alice), await d.session(alice)
    kept = await d.session(bob)
    await write(d, alice)
    assert await d.sessions_of(alice) == []
    assert await d.sessions_of(bob) == [kept]
    assert d.reasons() == [reason, reason]
    # One logout token per session, to the client with a back-channel URI only, sent once.
    assert len(d.sender.sent) == 1
    assert sorted((n.client_id, n.sid, n.user_id) for n in d.sender.notices()) == sorted(
        [("rp", first, alice.id), ("rp", second, alice.id)])


async def test_the_deactivation_event_counts_the_sessions_ended(d: Deployment) -> None:
    alice = await d.user("alice")
    await d.session(alice)
    token = await save_token(d.store, "tk_alice", alice.id)
    await writes.patch_user(d.ports, alice.id, DEACTIVATE, None)
    assert d.events.named("user_deactivated") == [
        {"user_id": alice.id, "tokens_revoked": 1, "sessions_ended": 1}]
    assert not await is_active(d.store, token)


@pytest.mark.parametrize("body", [
    ops({"op": "replace", "path": "displayName", "value": "Alice"}),
    ops({"op": "replace", "path": "active", "value": True}),
])
async def test_other_changes_keep_the_sessions(d: Deployment, body: dict[str, Any]) -> None:
    alice = await d.user("alice")
    sid = await d.session(alice)
    await writes.patch_user(d.ports, alice.id, body, None)
    assert await d.sessions_of(alice) == [sid]
    assert d.sender.sent == [] and d.reasons() == []


async def test_deleting_a_user_withdraws_its_consents(d: Deployment) -> None:
    alice, bob = await d.user("alice"), await d.user("bob")
    for user in (alice, bob):
        for client in ("rp", "quiet"):
            await d.store.grant_consent(user.id, client, ("openid",), NOW)
    await writes.delete_user(d.ports, alice.id, None)
    assert await d.store.list_consents(alice.id) == ()
    assert [c.client_id for c in await d.store.list_consents(bob.id)] == ["quiet", "rp"]
    (event,) = d.events.named("user_deleted")
    assert event["consents_withdrawn"] == 2


async def test_deleting_a_missing_user_ends_nothing(d: Deployment) -> None:
    alice = await d.user("alice")
    sid = await d.session(alice)
    with pytest.raises(NotFound):
        await writes.delete_user(d.ports, "no-such-user", None)
    assert await d.sessions_of(alice) == [sid]


async def test_bulk_operations_end_sessions_too(d: Deployment) -> None:
    alice, bob = await d.user("alice"), await d.user("bob")
    await d.session(alice)
    await d.session(bob)
    request = read_bulk_request({"Operations": [
        {"method": "PATCH", "path": f"/Users/{alice.id}", "data": DEACTIVATE},
        {"method": "DELETE", "path": f"/Users/{bob.id}"},
    ]})
    outcomes = await run_bulk(d.ports, request, may_write=True)
    assert [o.status for o in outcomes] == [200, 204]
    assert await d.sessions_of(alice) == [] and await d.sessions_of(bob) == []
    assert d.reasons() == ["user_deactivated", "user_deleted"]
    assert len(d.sender.notices()) == 2


async def test_no_logout_token_leaves_for_a_unit_that_failed(d: Deployment) -> None:
    alice = await d.user("alice")
    await d.session(alice)
    ports = d.ports.logout

    async def work(end: Any) -> None:
        await end(alice.id, reason="user_deactivated")
        raise RuntimeError("the unit is rolled back here")

    with pytest.raises(RuntimeError):
        await ending_sessions_after(ports, work)
    assert d.sender.sent == []

    async def done(end: Any) -> int:
        ended: int = await end(alice.id, reason="user_deactivated")
        assert d.sender.sent == []  # held until the unit is done
        return ended

    await d.session(alice)
    assert await ending_sessions_after(ports, done) == 1
    assert len(d.sender.notices()) == 1


async def test_set_password_ends_the_users_sessions(d: Deployment) -> None:
    alice, bob = await d.user("alice"), await d.user("bob")
    await d.session(alice)
    kept = await d.session(bob)
    await set_password(d.store, FakeHasher(), user_name="ALICE", password="a new password",
                       now=NOW, sessions=user_session_ender(d.ports.logout))
    assert await d.sessions_of(alice) == [] and await d.sessions_of(bob) == [kept]
    assert d.reasons() == ["password_changed"]
    assert [n.user_id for n in d.sender.notices()] == [alice.id]


async def test_set_password_for_no_such_user_ends_nothing(d: Deployment) -> None:
    alice = await d.user("alice")
    sid = await d.session(alice)
    with pytest.raises(NotFound):
        await set_password(d.store, FakeHasher(), user_name="nobody", password="long enough",
                           now=NOW, sessions=user_session_ender(d.ports.logout))
    assert await d.sessions_of(alice) == [sid]


async def test_reset_mfa_ends_the_users_sessions(d: Deployment) -> None:
    alice, bob = await d.user("alice"), await d.user("bob")
    await d.session(alice)
    await d.session(alice)
    kept = await d.session(bob)
    done = await reset_mfa(d.store, user_name="alice", now=NOW,
                           sessions=user_session_ender(d.ports.logout))
    assert done.sessions_ended == 2
    assert await d.sessions_of(alice) == [] and await d.sessions_of(bob) == [kept]
    assert d.reasons() == ["mfa_reset", "mfa_reset"]


async def test_the_session_view_never_shows_the_cookie_hash(d: Deployment) -> None:
    alice = await d.user("alice")
    await d.session(alice)
    (session,) = await d.store.list_sessions(alice.id, NOW)
    view = session_view(session)
    assert session.id_hash not in str(view)
    assert set(view) == {"sid", "user_id", "auth_time", "amr", "acr", "created_at",
                         "idle_exp", "exp", "clients"}
    assert view["clients"] == ["rp", "quiet"] and view["amr"] == ["pwd"]


async def test_tokens_are_revoked_even_when_ending_the_sessions_fails(d: Deployment) -> None:
    alice = await d.user("alice")
    token = await save_token(d.store, "tk_alice", alice.id)

    async def unavailable(user_id: str, *, reason: str) -> int:
        raise StoreUnavailable("the session store is down")

    with pytest.raises(StoreUnavailable):
        await set_password(d.store, FakeHasher(), user_name="alice", password="a new password",
                           now=NOW, sessions=unavailable)
    assert not await is_active(d.store, token)

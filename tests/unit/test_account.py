"""Use cases of the account page (domain/account.py): ending one's own session,
withdrawing a consent."""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.memory.store import MemoryStore
from domain.account import end_own_session, withdraw_consent
from domain.client_directory import ClientDirectory
from domain.logout import LogoutPorts
from domain.oauth import exchange_authorization_code
from domain.sessions import open_session
from domain.tokens import hash_token
from ports.logout import LogoutNotice
from ports.security import SecretsTokenGenerator
from tests.unit.oauth_doubles import CONFIDENTIAL, OTHER, REDIRECT, VERIFIER, World


@dataclass
class Sent:
    notices: list[LogoutNotice] = field(default_factory=list)

    def send(self, notices: list[LogoutNotice]) -> None:
        self.notices.extend(notices)


def _logout_ports(world: World) -> LogoutPorts:
    store: MemoryStore = world.store
    return LogoutPorts(
        store=store, clients=ClientDirectory({}, store), signer=world.signer, sender=Sent(),
        events=world.events, clock=world.clock, token_generator=SecretsTokenGenerator(),
        issuer="https://auth.example.test")


async def _session(world: World, user_id: str) -> str:
    _, session = await open_session(world.store, SecretsTokenGenerator(), user_id=user_id,
                                    auth_time=world.clock.now(), amr=("pwd",),
                                    now=world.clock.now())
    return session.sid


async def test_a_user_ends_their_own_session_by_sid() -> None:
    world = World()
    ports = _logout_ports(world)
    mine = await _session(world, "user-1")
    kept = await _session(world, "user-1")
    assert await end_own_session(ports, "user-1", mine, reason="account")
    left = await world.store.list_sessions("user-1", world.clock.now())
    assert [s.sid for s in left] == [kept]
    assert world.events.named("session_ended") == [
        {"reason": "account", "sid": mine, "user_id": "user-1", "clients": 0}]
    # Already ended: nothing more happens.
    assert not await end_own_session(ports, "user-1", mine, reason="account")
    assert len(world.events.named("session_ended")) == 1


async def test_another_users_sid_is_not_ended() -> None:
    world = World()
    theirs = await _session(world, "user-2")
    assert not await end_own_session(_logout_ports(world), "user-1", theirs, reason="account")
    assert [s.sid for s in await world.store.list_sessions("user-2", world.clock.now())] == [
        theirs]
    assert world.events.named("session_ended") == []


async def test_withdrawing_revokes_every_grant_recorded_under_the_consent() -> None:
    world = World()
    now = world.clock.now()
    first = await exchange_authorization_code(
        world.ports, CONFIDENTIAL, await world.code(), REDIRECT, VERIFIER)
    second = await exchange_authorization_code(
        world.ports, CONFIDENTIAL, await world.code(), REDIRECT, VERIFIER)
    # Another client's grant for the same user, and its consent, are not touched.
    others = await exchange_authorization_code(
        world.ports, OTHER, await world.code(OTHER), REDIRECT, VERIFIER)
    grants = []
    for response, client in ((first, CONFIDENTIAL), (second, CONFIDENTIAL), (others, OTHER)):
        access = await world.store.get_access_token(hash_token(response.access_token), now)
        assert access is not None and access.grant_id is not None
        assert await world.store.record_consent_grant("user-1", client.client_id,
                                                      access.grant_id, now + 3600, now)
        grants.append(access.grant_id)

    record = await withdraw_consent(world.store, world.events, user_id="user-1",
                                    client_id="app", now=now)
    assert record is not None and record.consent.client_id == "app"
    assert sorted(g.grant_id for g in record.grants) == sorted(grants[:2])
    for response in (first, second):
        assert response.refresh_token is not None
        assert await world.store.get_refresh_token(hash_token(response.refresh_token),
                                                   now) is None
        access = await world.store.get_access_token(hash_token(response.access_token), now)
        assert access is not None and not access.is_active(now)
    assert await world.store.get_consent("user-1", "app") is None
    assert others.refresh_token is not None
    assert await world.store.get_refresh_token(hash_token(others.refresh_token), now)
    assert await world.store.get_consent("user-1", "other") is not None
    [event] = world.events.named("consent_withdrawn")
    assert event["user_id"] == "user-1" and event["client_id"] == "app"
    assert event["grants"] == 2 and isinstance(event["tokens_revoked"], int)
    assert event["tokens_revoked"] >= 4


async def test_withdrawing_without_a_consent_does_nothing() -> None:
    world = World()
    assert await withdraw_consent(world.store, world.events, user_id="user-1",
                                  client_id="app", now=world.clock.now()) is None
    assert world.events.named("consent_withdrawn") == []

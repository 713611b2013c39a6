"""domain.logout over the memory store: what ending a session revokes, which logout tokens
it signs (Back-Channel Logout 1.0 section 2.4), and that a store failure midway does not
stop the rest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from joserfc import jws, jwt
from joserfc.jwk import KeySet

from adapters.jose_signer import JoseSigner
from adapters.memory.store import MemoryStore
from domain.client_directory import ClientDirectory
from domain.clients import Client, ClientRegistry
from domain.entities import AccessToken
from domain.errors import StoreUnavailable
from domain.logout import (
    BACKCHANNEL_LOGOUT_EVENT,
    LogoutPorts,
    end_session,
    end_user_sessions,
)
from domain.sessions import Session, SessionGrant, open_session
from ports.logout import LogoutNotice
from ports.security import SecretsTokenGenerator
from tests.doubles import FakeClock, RecordingEvents

ISSUER = "https://auth.example.test"
SIGNER = JoseSigner.generated()
NOTIFIED = Client(client_id="notified", name="Notified",
                  backchannel_logout_uri="https://notified.example/logout")
OFFLINE = Client(client_id="offline", name="Offline", revoke_tokens_on_logout=False,
                 backchannel_logout_uri="https://offline.example/logout")
QUIET = Client(client_id="quiet", name="Quiet")


@dataclass
class RecordingSender:
    sent: list[LogoutNotice] = field(default_factory=list)

    def send(self, notices: Sequence[LogoutNotice]) -> None:
        self.sent.extend(notices)


class World:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.clock = FakeClock()
        self.events = RecordingEvents()
        self.sender = RecordingSender()
        self.ports = LogoutPorts(
            store=self.store, clients=ClientDirectory(
                ClientRegistry([NOTIFIED, OFFLINE, QUIET]), self.store),
            signer=SIGNER, sender=self.sender, events=self.events, clock=self.clock,
            token_generator=SecretsTokenGenerator(), issuer=ISSUER)

    async def session(self, user_id: str = "user-1") -> Session:
        _, session = await open_session(self.store, SecretsTokenGenerator(), user_id=user_id,
                                        auth_time=self.clock.now(), amr=("pwd",),
                                        now=self.clock.now())
        return session

    async def grant(self, session: Session, client_id: str, grant_id: str) -> str:
        """A grant with one access token, recorded in the session; the token's hash."""
        now = self.clock.now()
        token_hash = f"hash-{grant_id}"
        await self.store.save_tokens(AccessToken(
            token_hash=token_hash, token_display="tk_1...", active=True, scope="openid",
            client_id=client_id, exp=now + 3600, iat=now, sub=session.user_id,
            grant_id=grant_id), None, now)
        await self.store.add_session_grant(session.id_hash, SessionGrant(client_id, grant_id),
                                           now + 60, now)
        return token_hash

    async def active(self, token_hash: str) -> bool:
        token = await self.store.get_access_token(token_hash, self.clock.now())
        return token is not None and token.is_active(self.clock.now())


def verified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = KeySet.import_key_set(SIGNER.jwks())  # type: ignore[arg-type]
    header = jws.extract_compact(token.encode()).protected
    return header, dict(jwt.decode(token, keys).claims)


async def test_grants_are_revoked_per_client_policy_and_deleted_clients_lose_theirs() -> None:
    w = World()
    session = await w.session()
    notified = await w.grant(session, "notified", "g1")
    offline = await w.grant(session, "offline", "g2")
    deleted = await w.grant(session, "gone", "g3")

    record = await end_session(w.ports, session.id_hash, reason="logout")

    assert record is not None and record.session.sid == session.sid
    assert not await w.active(notified)
    assert await w.active(offline)
    assert not await w.active(deleted)
    assert await w.store.get_session(session.id_hash, w.clock.now()) is None
    [ended] = w.events.named("session_ended")
    assert ended == {"reason": "logout", "sid": session.sid, "user_id": "user-1",
                     "clients": 3}


async def test_one_signed_logout_token_per_client_with_a_backchannel_uri() -> None:
    w = World()
    session = await w.session()
    await w.grant(session, "notified", "g1")
    await w.grant(session, "quiet", "g2")
    await w.grant(session, "offline", "g3")

    await end_session(w.ports, session.id_hash, reason="logout")

    assert sorted(n.client_id for n in w.sender.sent) == ["notified", "offline"]
    jtis = set()
    for sent in w.sender.sent:
        assert sent.sid == session.sid and sent.user_id == "user-1"
        assert sent.uri == (NOTIFIED if sent.client_id == "notified" else OFFLINE
                            ).backchannel_logout_uri
        header, claims = verified(sent.logout_token)
        assert header["typ"] == "logout+jwt" and header["kid"] == SIGNER.kid
        assert claims["iss"] == ISSUER and claims["aud"] == sent.client_id
        assert claims["sub"] == "user-1" and claims["sid"] == session.sid
        assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
        assert claims["iat"] == w.clock.now() and claims["exp"] == w.clock.now() + 120
        assert "nonce" not in claims
        jtis.add(claims["jti"])
    assert len(jtis) == 2


async def test_a_session_ends_once() -> None:
    w = World()
    session = await w.session()
    await w.grant(session, "notified", "g1")

    assert await end_session(w.ports, session.id_hash, reason="logout") is not None
    assert await end_session(w.ports, session.id_hash, reason="logout") is None
    assert len(w.sender.sent) == 1
    assert len(w.events.named("session_ended")) == 1


async def test_end_user_sessions_ends_every_session_of_that_user_only() -> None:
    w = World()
    first, second, other = await w.session(), await w.session(), await w.session("user-2")
    for s, grant in ((first, "g1"), (second, "g2"), (other, "g3")):
        await w.grant(s, "notified", grant)

    assert await end_user_sessions(w.ports, "user-1", reason="user_deactivated") == 2
    assert sorted(n.sid for n in w.sender.sent) == sorted([first.sid, second.sid])
    assert await w.store.get_session(other.id_hash, w.clock.now()) is not None


class FlakyRevocations(MemoryStore):
    """Revoking one grant fails as an unreachable store would."""

    async def revoke_grant(self, grant_id: str, now: int) -> int:
        if grant_id == "g-broken":
            raise StoreUnavailable("the store is unavailable")
        return await super().revoke_grant(grant_id, now)


async def test_a_failed_revocation_does_not_stop_the_others_or_the_notices() -> None:
    w = World()
    w.store = FlakyRevocations()
    w.ports = LogoutPorts(**{**{f: getattr(w.ports, f) for f in (
        "clients", "signer", "sender", "events", "clock", "token_generator", "issuer")},
        "store": w.store})
    session = await w.session()
    await w.grant(session, "quiet", "g-broken")
    kept = await w.grant(session, "notified", "g-ok")

    with pytest.raises(StoreUnavailable):
        await end_session(w.ports, session.id_hash, reason="logout")

    assert not await w.active(kept)
    assert [n.client_id for n in w.sender.sent] == ["notified"]
    assert w.events.named("session_revocation_failed") == [
        {"sid": session.sid, "user_id": "user-1", "client_id": "quiet"}]

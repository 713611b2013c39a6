"""Doubles for unit tests of use cases that end a user's sessions (SCIM writes,
set_password, reset_mfa): a :class:`~domain.user_sessions.UserSessionEnder` that records
its calls, a logout sender that records its notices, and logout ports over a memory store."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from adapters.jose_signer import JoseSigner
from domain.client_directory import ClientDirectory
from domain.clients import Client, ClientRegistry
from domain.logout import LogoutPorts
from domain.sessions import SessionGrant, open_session
from ports.logout import LogoutNotice
from ports.security import SecretsTokenGenerator
from tests.doubles import FakeClock, RecordingEvents

ISSUER = "https://auth.example.test"
_SIGNER = JoseSigner.generated()


class RecordingSessionEnder:
    """Records ``(user_id, reason)`` per call and reports ``ended`` sessions each time."""

    def __init__(self, ended: int = 0) -> None:
        self.calls: list[tuple[str, str]] = []
        self.ended = ended

    async def __call__(self, user_id: str, *, reason: str) -> int:
        self.calls.append((user_id, reason))
        return self.ended


async def no_sessions(user_id: str, *, reason: str) -> int:
    """For tests of other behaviour: the user has no session to end."""
    return 0


class RecordingSender:
    """A ``LogoutSender`` that keeps what it was given, one list per ``send``."""

    def __init__(self) -> None:
        self.sent: list[list[LogoutNotice]] = []

    def send(self, notices: Sequence[LogoutNotice]) -> None:
        self.sent.append(list(notices))

    def notices(self) -> list[LogoutNotice]:
        return [notice for batch in self.sent for notice in batch]


def logout_ports(store: Any, clock: FakeClock, events: RecordingEvents,
                 clients: Iterable[Client] = (),
                 sender: RecordingSender | None = None) -> LogoutPorts:
    return LogoutPorts(
        store=store, clients=ClientDirectory(ClientRegistry(clients), store), signer=_SIGNER,
        sender=sender or RecordingSender(), events=events, clock=clock,
        token_generator=SecretsTokenGenerator(), issuer=ISSUER)


async def signed_in(store: Any, clock: FakeClock, user_id: str,
                    grants: Iterable[SessionGrant] = ()) -> str:
    """A live session of ``user_id`` with ``grants``; its ``sid``."""
    _, session = await open_session(store, SecretsTokenGenerator(), user_id=user_id,
                                    auth_time=clock.now(), amr=("pwd",), now=clock.now())
    for grant in grants:
        await store.add_session_grant(session.id_hash, grant, session.idle_exp, clock.now())
    return session.sid

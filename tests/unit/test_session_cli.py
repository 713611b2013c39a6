"""``auth-service session ...`` pieces: how ``--user`` names a user, and the bound on
waiting for back-channel deliveries before the command exits."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from adapters.memory.store import MemoryStore
from domain.entities import User
from entrypoints import session_cli
from entrypoints.session_cli import Refused, command_logout, resolve_user_id
from entrypoints.settings import load_settings
from ports.logout import LogoutNotice
from ports.store import IDENTITY_PARTS, StorePart
from tests.e2e.ops_support import signing_key_file


class UsersInTheServer(MemoryStore):
    """A store whose users only the serving process sees (hybrid with REDIS_URL)."""

    def process_local_parts(self) -> frozenset[StorePart]:
        return IDENTITY_PARTS


async def test_user_is_an_id_first_then_a_user_name() -> None:
    store = MemoryStore()
    alice = await store.create_user(User(id="u-1", user_name="Alice"))
    # A user whose name is another user's id: the id wins, as documented.
    await store.create_user(User(id="u-2", user_name="u-1"))
    assert await resolve_user_id(store, "u-1") == ("u-1", "Alice")
    assert await resolve_user_id(store, "ALICE") == (alice.id, "Alice")
    for value in ("nobody", "", "nul\x00", "x" * 1025):
        with pytest.raises(Refused):
            await resolve_user_id(store, value)


async def test_where_users_live_in_the_server_user_is_taken_as_an_id() -> None:
    assert await resolve_user_id(UsersInTheServer(), "u-9") == ("u-9", "u-9")
    with pytest.raises(Refused):
        await resolve_user_id(UsersInTheServer(), "nul\x00")


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A loopback address that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/bcl"
    finally:
        server.close()


async def test_the_command_waits_for_deliveries_only_so_long(
    silent_listener: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(session_cli, "drain_seconds", lambda sender: 0.3)
    settings = load_settings({"SIGNING_KEY_FILE": signing_key_file(),
                              "OUTBOUND_ALLOW_LOOPBACK": "1"})
    started = time.monotonic()
    async with command_logout(settings, MemoryStore()) as logout:
        logout.ports.sender.send([LogoutNotice(client_id="rp", uri=silent_listener,
                                               logout_token="t", sid="sid_1", user_id="u")])
    assert time.monotonic() - started < 3  # not the sender's 5 s timeout, nor its retries
    assert "abandoned" in capsys.readouterr().err


def test_the_wait_covers_every_attempt_of_one_delivery() -> None:
    from adapters.backchannel_http import HttpLogoutSender
    from domain.outbound import OutboundPolicy
    from tests.doubles import RecordingEvents

    sender = HttpLogoutSender(OutboundPolicy(allow_loopback=False), RecordingEvents(),
                              timeout_seconds=5.0, retry_delays=(1.0, 5.0))
    assert session_cli.drain_seconds(sender) == 5.0 * 3 + 6.0 + 1.0

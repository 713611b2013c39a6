"""``auth-service session list|revoke``, ``user set-password`` and ``user reset-mfa`` end a
user's sessions from a separate process sharing the server's store: the server sees them
gone at once, and the relying party's listener receives logout tokens that verify against
the server's ``/jwks.json``. Stores a command can share: the ``filestore`` plugin (the
memory adapter's state in a file, tests/store_plugin) and sql; ``hybrid`` without Redis is
refused with one line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.admin_support import admin_app
from tests.e2e.backchannel_support import backchannel_listener
from tests.e2e.conftest import StoreBackend
from tests.e2e.ops_support import signing_key_file
from tests.e2e.test_cli import CLI, run_cli
from tests.e2e.test_session_lifecycle import Deployment, clients_toml


@pytest.fixture(params=["filestore", pytest.param("sql", marks=pytest.mark.postgres)])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> StoreBackend:
    if request.param == "filestore":
        return StoreBackend("filestore", env={
            "STORE_BACKEND": "filestore", "STORE_URL": f"file://{tmp_path / 'auth.store'}"})
    from tests.services.postgres_server import empty_migrated_database

    url = asyncio.run(empty_migrated_database())
    return StoreBackend("sql", env={"STORE_BACKEND": "sql", "DATABASE_URL": url})


@dataclass
class Setup:
    d: Deployment
    env: dict[str, str]

    def cli(self, *args: str, status: int = 0, stdin: str | None = None,
            **env: str) -> subprocess.CompletedProcess[str]:
        if stdin is None:
            result = run_cli(*args, env={**self.env, **env})
        else:
            result = subprocess.run([CLI, *args], input=stdin, env={**_clean(), **self.env,
                                    **env}, capture_output=True, text=True, timeout=60,
                                    check=False)
        assert result.returncode == status, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        return result


def _clean() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("STORE_", "DATABASE_", "REDIS_", "CLIENT", "SIGNING_"))}


@pytest.fixture
def s(shared: StoreBackend, tmp_path: Path) -> Iterator[Setup]:
    with backchannel_listener() as listener:
        clients_file = tmp_path / "session-clients.toml"
        clients_file.write_text(clients_toml(listener.uri))
        # One key for the server and the command: the command signs as the server does.
        env = {"CLIENTS_FILE": str(clients_file), "OUTBOUND_ALLOW_LOOPBACK": "1",
               "SIGNING_KEY_FILE": signing_key_file(), "EXTERNAL_BASE_URL": "http://auth.test"}
        with admin_app(shared, tmp_path, **env) as app:
            yield Setup(Deployment(app, listener),
                        {**shared.env, **env, "LOG_FORMAT": "json"})


def _events(stderr: str, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == name]


def test_session_list_shows_a_users_live_sessions(s: Setup) -> None:
    alice = s.d.user("alice")
    first, second = s.d.session(alice), s.d.session(alice, ("rp",))
    listed = json.loads(s.cli("session", "list", "--user", "ALICE", "--json").stdout)
    assert [x["sid"] for x in listed] == [first.sid, second.sid]
    assert listed[0]["clients"] == ["rp", "quiet"] and listed[0]["amr"] == ["pwd"]
    assert "id_hash" not in listed[0] and first.id_hash not in json.dumps(listed)
    lines = s.cli("session", "list", "--user", alice).stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{first.sid}\tcreated ") and "\tauth_time " in lines[0]
    assert lines[0].endswith("\tamr pwd\tclients rp quiet")


def test_session_revoke_by_user_name_ends_every_session_and_tells_the_rp(s: Setup) -> None:
    alice, bob = s.d.user("alice"), s.d.user("bob")
    first, second = s.d.session(alice), s.d.session(alice)
    kept = s.d.session(bob)
    result = s.cli("session", "revoke", "--user", "Alice")
    assert result.stdout.strip() == (f"ended 2 session(s) of alice ({alice}); back-channel "
                                     "logouts: 2 delivered, 0 failed")
    # The server sees it at once.
    assert s.d.sessions_of(alice) == [] and s.d.sessions_of(bob) == [kept.sid]
    claims = s.d.logged_out(2)
    assert sorted(c["sid"] for c in claims) == sorted([first.sid, second.sid])
    assert all(c["sub"] == alice and c["aud"] == "rp" for c in claims)
    (event,) = _events(result.stderr, "sessions_revoked")
    assert event["actor"] == "cli" and event["user_id"] == alice and event["sessions"] == 2
    assert [e["reason"] for e in _events(result.stderr, "session_ended")] == ["operator"] * 2


def test_session_revoke_by_id_and_by_sid(s: Setup) -> None:
    alice = s.d.user("alice")
    one, other = s.d.session(alice), s.d.session(alice)
    out = json.loads(s.cli("session", "revoke", "--sid", one.sid, "--json").stdout)
    assert out["sessions_ended"] == 1 and out["backchannel_delivered"] == 1
    assert s.d.sessions_of(alice) == [other.sid]
    assert "no live session" in s.cli("session", "revoke", "--sid", one.sid, status=1).stderr
    assert s.cli("session", "revoke", "--user", alice).stdout.startswith(
        f"ended 1 session(s) of alice ({alice})")
    assert s.d.sessions_of(alice) == []
    assert s.cli("session", "revoke", "--user", alice).stdout.startswith("ended 0 session(s)")
    assert "no user" in s.cli("session", "revoke", "--user", "nobody", status=1).stderr
    assert "not an id or userName" in s.cli("session", "list", "--user", "x" * 2000,
                                            status=1).stderr


def test_set_password_from_the_cli_ends_the_users_sessions(s: Setup) -> None:
    alice = s.d.user("alice")
    session = s.d.session(alice)
    result = s.cli("user", "set-password", "alice", stdin="a brand new password\n")
    assert result.stdout.strip() == (
        f"password set for alice ({alice}); its tokens were revoked; 1 session(s) ended "
        "(back-channel logouts: 1 delivered, 0 failed)")
    assert s.d.sessions_of(alice) == []
    (claims,) = s.d.logged_out(1)
    assert claims["sid"] == session.sid


def test_reset_mfa_from_the_cli_ends_the_users_sessions(s: Setup) -> None:
    alice = s.d.user("alice")
    session = s.d.session(alice)
    result = s.cli("user", "reset-mfa", "alice")
    assert result.stdout.strip().endswith(
        "token record(s) revoked; 1 session(s) ended (back-channel logouts: 1 delivered, "
        "0 failed)")
    assert s.d.sessions_of(alice) == []
    (claims,) = s.d.logged_out(1)
    assert claims["sid"] == session.sid


def test_without_the_servers_key_sessions_end_but_no_token_is_sent(s: Setup) -> None:
    alice = s.d.user("alice")
    s.d.session(alice)
    result = s.cli("session", "revoke", "--user", "alice", SIGNING_KEY_FILE="")
    assert result.stdout.strip().endswith("back-channel logouts: 0 delivered, 1 failed")
    assert s.d.sessions_of(alice) == []
    (failed,) = _events(result.stderr, "backchannel_logout_failed")
    assert "SIGNING_KEY_FILE" in failed["problem"]
    assert s.d.listener.tokens == []


@pytest.mark.parametrize("args", [("list", "--user", "alice"), ("revoke", "--user", "alice"),
                                  ("revoke", "--sid", "sid_x")])
def test_hybrid_without_redis_is_refused_with_one_line(args: tuple[str, ...]) -> None:
    result = run_cli("session", *args, env={})
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"session {args[0]} cannot reach the" in line and "browser sessions" in line
    assert "STORE_BACKEND=hybrid" in line and "/admin/sessions" in line

"""``auth-service user passkeys list|remove``, ``user verify-email`` and ``user reset-mfa``
(issue 17, item 5) from a separate process sharing the server's store: the server sees each
change at once, each change is one security-event line naming the actor ``cli``, and
``USER`` is an id or a userName. Stores a command can share: the ``filestore`` plugin and
sql (the sql variants need the sql adapter's passkey methods, branch st-sql, and fail until
it is merged); ``hybrid`` is refused with one line pointing at the admin API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.email_verification import email_verified
from domain.entities import Email, Passkey, User
from domain.recovery import recovery_code_hash
from entrypoints.cli import main
from tests.e2e.admin_support import admin_app
from tests.e2e.backchannel_support import backchannel_listener
from tests.e2e.conftest import StoreBackend
from tests.e2e.ops_support import signing_key_file
from tests.e2e.test_cli import run_cli
from tests.e2e.test_session_cli import Setup
from tests.e2e.test_session_cli import shared as shared  # the fixture: filestore, sql
from tests.e2e.test_session_lifecycle import Deployment, clients_toml


@pytest.fixture
def s(shared: StoreBackend, tmp_path: Path) -> Iterator[Setup]:
    with backchannel_listener() as listener:
        clients_file = tmp_path / "account-clients.toml"
        clients_file.write_text(clients_toml(listener.uri))
        env = {"CLIENTS_FILE": str(clients_file), "OUTBOUND_ALLOW_LOOPBACK": "1",
               "SIGNING_KEY_FILE": signing_key_file(), "EXTERNAL_BASE_URL": "http://auth.test"}
        with admin_app(shared, tmp_path, **env) as app:
            yield Setup(Deployment(app, listener), {**shared.env, **env, "LOG_FORMAT": "json"})


def _events(stderr: str, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == name]


def _user(s: Setup, name: str, *emails: Email) -> User:
    app = s.d.app
    created: User = app.call(app.store.create_user, User(user_name=name, emails=emails))
    return created


def _passkey(s: Setup, owner: User, credential_id: str, name: str, *,
             synced: bool = False, transports: tuple[str, ...] = ()) -> Passkey:
    app = s.d.app
    key = Passkey(credential_id=credential_id, user_id=owner.id, public_key="pQECAyYgAS",
                  transports=transports, name=name, synced=synced,
                  created_at=app.clock.now(), last_used_at=None)
    app.call(app.store.add_passkey, key)
    app.clock.advance(1)
    return key


def _credential_ids(s: Setup, owner: User) -> list[str]:
    app = s.d.app
    return [p.credential_id for p in app.call(app.store.list_passkeys, owner.id)]


def test_passkeys_list_by_user_name_or_id(s: Setup) -> None:
    alice = _user(s, "alice")
    laptop = _passkey(s, alice, "bGFwdG9w", "Laptop", transports=("usb", "nfc"))
    phone = _passkey(s, alice, "cGhvbmU", "Phone", synced=True)
    listed = json.loads(s.cli("user", "passkeys", "list", "ALICE", "--json").stdout)
    assert [p["credential_id"] for p in listed] == [laptop.credential_id, phone.credential_id]
    assert listed[0] == {"credential_id": laptop.credential_id, "name": "Laptop",
                         "created_at": laptop.created_at, "last_used_at": None,
                         "synced": False, "transports": ["usb", "nfc"], "sign_count": 0}
    assert "public_key" not in json.dumps(listed)
    lines = s.cli("user", "passkeys", "list", alice.id).stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{laptop.credential_id}\tLaptop\tcreated ")
    assert lines[0].endswith("\tlast used never\tdevice-bound\ttransports usb nfc")
    assert lines[1].endswith("\tsynced\ttransports -")
    bob = _user(s, "bob")
    empty = s.cli("user", "passkeys", "list", "bob")
    assert empty.stdout == "" and f"bob ({bob.id}) has no passkey" in empty.stderr
    assert "no user" in s.cli("user", "passkeys", "list", "nobody", status=1).stderr


def test_passkeys_remove_is_seen_by_the_server_and_logged(s: Setup) -> None:
    alice, bob = _user(s, "alice"), _user(s, "bob")
    laptop = _passkey(s, alice, "bGFwdG9w", "Laptop")
    phone = _passkey(s, alice, "cGhvbmU", "Phone")
    bobs = _passkey(s, bob, "Ym9icw", "Bob's key")
    result = s.cli("user", "passkeys", "remove", "alice", laptop.credential_id)
    assert result.stdout.strip() == (f"passkey 'Laptop' removed from alice ({alice.id}); "
                                     "1 passkey(s) left")
    assert _credential_ids(s, alice) == [phone.credential_id]
    (event,) = _events(result.stderr, "admin_passkey_removed")
    assert event["actor"] == "cli" and event["user_id"] == alice.id
    assert event["credential_id"] == laptop.credential_id
    # Another user's passkey is out of reach through this user; a bad id is refused.
    refused = s.cli("user", "passkeys", "remove", "alice", bobs.credential_id, status=1)
    assert "no passkey" in refused.stderr and _credential_ids(s, bob) == [bobs.credential_id]
    assert "not one a passkey can have" in s.cli(
        "user", "passkeys", "remove", "alice", "not base64", status=1).stderr


def test_removing_the_last_factor_takes_the_recovery_codes(s: Setup) -> None:
    alice = _user(s, "alice")
    only = _passkey(s, alice, "b25seQ", "Only")
    app = s.d.app
    app.call(app.store.replace_recovery_codes, alice.id, [recovery_code_hash("aaaa-bbbb")])
    out = json.loads(s.cli("user", "passkeys", "remove", alice.id, only.credential_id,
                           "--json").stdout)
    assert out == {"user_id": alice.id, "credential_id": only.credential_id,
                   "passkeys_left": 0, "recovery_codes_removed": 1}
    assert app.call(app.store.count_recovery_codes, alice.id) == 0


def test_verify_email_marks_the_primary_address(s: Setup) -> None:
    alice = _user(s, "alice", Email(value="Alice@Example.com", primary=True))
    result = s.cli("user", "verify-email", "alice")
    assert result.stdout.strip() == (f"email Alice@Example.com of alice ({alice.id}) is "
                                     "verified")
    app = s.d.app
    assert email_verified(alice, app.call(app.store.get_credentials, alice.id))
    (event,) = _events(result.stderr, "admin_email_verified")
    assert event["actor"] == "cli" and event["user_id"] == alice.id
    again = json.loads(s.cli("user", "verify-email", alice.id, "--json").stdout)
    assert again == {"user_id": alice.id, "email": "Alice@Example.com",
                     "email_verified": True, "already_verified": True}
    _user(s, "bob")
    assert "no email address" in s.cli("user", "verify-email", "bob", status=1).stderr


def test_reset_mfa_reports_every_factor_removed(s: Setup) -> None:
    alice = s.d.user("alice")
    owner = s.d.app.call(s.d.app.store.get_user, alice)
    app = s.d.app
    app.call(app.store.set_totp, alice, "SEED", confirmed=True)
    _passkey(s, owner, "bGFwdG9w", "Laptop")
    _passkey(s, owner, "cGhvbmU", "Phone")
    app.call(app.store.replace_recovery_codes, alice, [recovery_code_hash("aaaa-bbbb")])
    session = s.d.session(alice)
    result = s.cli("user", "reset-mfa", "Alice")
    assert result.stdout.strip() == (
        f"MFA reset for alice ({alice}): TOTP factor, 2 passkey(s) and 1 recovery code(s) "
        "removed; 0 token record(s) revoked; 1 session(s) ended (back-channel logouts: "
        "1 delivered, 0 failed)")
    assert _credential_ids(s, owner) == [] and s.d.sessions_of(alice) == []
    assert app.call(app.store.count_recovery_codes, alice) == 0
    (claims,) = s.d.logged_out(1)
    assert claims["sid"] == session.sid
    (event,) = _events(result.stderr, "admin_mfa_reset")
    assert event["actor"] == "cli" and event["passkeys_removed"] == 2
    out = json.loads(s.cli("user", "reset-mfa", alice, "--json").stdout)
    assert out["user_id"] == alice and out["passkeys_removed"] == 0
    assert out["totp_removed"] is False and out["sessions_ended"] == 0


@pytest.mark.parametrize("args", [("passkeys", "list", "alice"),
                                  ("passkeys", "remove", "alice", "Y3JlZA"),
                                  ("verify-email", "alice"), ("reset-mfa", "alice")])
def test_hybrid_is_refused_with_one_line_naming_the_admin_api(
    args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("STORE_BACKEND", raising=False)
    assert main(["user", *args]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    command = " ".join(a for a in args if a != "alice" and a != "Y3JlZA")
    assert f"user {command} cannot reach the users" in line and "STORE_BACKEND" in line
    assert "/admin/users/{id}/" in line


def test_the_commands_are_listed_in_the_help() -> None:
    result = run_cli("user", "--help", env={})
    assert result.returncode == 0
    for command in ("passkeys", "verify-email", "reset-mfa"):
        assert command in result.stdout

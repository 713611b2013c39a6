"""The password policy, and revocation when a password changes or is cleared: SCIM use
cases (domain.identities), ``set_password`` (domain.signin) and the ``user`` CLI commands."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest

from adapters.memory.store import MemoryStore
from domain import identities
from domain.entities import User
from domain.errors import InvalidValue, NotFound
from domain.password_policy import (
    MAX_PASSWORD_LENGTH,
    PasswordPolicy,
    PasswordRejected,
    check_password_policy,
)
from domain.signin import set_password
from entrypoints.cli import main
from entrypoints.settings import ConfigError, load_settings
from tests.doubles import FakeClock, RecordingEvents
from tests.unit.session_doubles import no_sessions
from tests.unit.test_scim_identities import (
    NOW,
    FakeHasher,
    is_active,
    new_user,
    ops,
    save_token,
)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def events() -> RecordingEvents:
    return RecordingEvents()


# The policy


def test_default_policy_is_8_to_1024_characters() -> None:
    assert check_password_policy("8 chars!") == "8 chars!"
    assert check_password_policy("x" * MAX_PASSWORD_LENGTH)
    for refused in ("", "7 chars", "x" * (MAX_PASSWORD_LENGTH + 1)):
        with pytest.raises(PasswordRejected):
            check_password_policy(refused)


def test_the_minimum_is_configurable_and_counts_characters_not_bytes() -> None:
    policy = PasswordPolicy(min_length=12)
    with pytest.raises(PasswordRejected, match="at least 12 characters"):
        check_password_policy("eleven chrs", policy)
    assert check_password_policy("été" * 4, policy)  # 12 characters, 18 bytes


def test_the_message_says_what_is_wrong() -> None:
    with pytest.raises(PasswordRejected, match="too short: it needs at least 8 characters"):
        check_password_policy("short")
    with pytest.raises(PasswordRejected, match="too long: it may have at most 1024"):
        check_password_policy("x" * 2000)
    with pytest.raises(InvalidValue, match="not allowed"):
        check_password_policy("long enough \x00")


def test_password_min_length_setting() -> None:
    assert load_settings({}).password_min_length == 8
    assert load_settings({"PASSWORD_MIN_LENGTH": "14"}).password_min_length == 14
    for bad in ("0", "-1", "eight", "1025"):
        with pytest.raises(ConfigError, match="PASSWORD_MIN_LENGTH"):
            load_settings({"PASSWORD_MIN_LENGTH": bad})


# SCIM use cases


async def test_scim_create_refuses_a_short_password_and_stores_nothing(
    store: MemoryStore, clock: FakeClock
) -> None:
    with pytest.raises(PasswordRejected):
        await new_user(store, clock, password="short")
    assert await store.find_user_by_name("bjensen") is None
    policy = PasswordPolicy(min_length=16)
    with pytest.raises(PasswordRejected):
        await identities.create_user(store, clock, FakeHasher(),
                                     {"userName": "b", "password": "fifteen chars!!"}, policy)


async def test_scim_replace_and_patch_apply_the_policy(
    store: MemoryStore, clock: FakeClock, events: RecordingEvents
) -> None:
    user = await new_user(store, clock, password="first-password")
    with pytest.raises(PasswordRejected):
        await identities.replace_user(store, clock, FakeHasher(), events, user.id,
                                      {"userName": "bjensen", "password": "short"},
                                      sessions=no_sessions)
    with pytest.raises(PasswordRejected):
        await identities.patch_user(store, clock, FakeHasher(), events, user.id,
                                    ops({"op": "replace", "path": "password", "value": "short"}),
                                    sessions=no_sessions)
    with pytest.raises(InvalidValue, match="1024"):
        await identities.patch_user(store, clock, FakeHasher(), events, user.id,
                                    ops({"op": "replace", "value": {"password": "x" * 1025}}),
                                    sessions=no_sessions)
    assert (await store.get_credentials(user.id)).password_hash == "hashed:first-password"


@pytest.mark.parametrize("change", [
    ("put", {"userName": "bjensen", "password": "second-password"}),
    ("patch", ops({"op": "replace", "path": "password", "value": "second-password"})),
    ("patch", ops({"op": "replace", "value": {"password": "second-password"}})),  # Okta
    ("patch", ops({"op": "add", "path": "password", "value": "second-password"})),
])
async def test_changing_the_password_revokes_the_users_tokens(
    store: MemoryStore, clock: FakeClock, events: RecordingEvents, change: tuple[str, Any]
) -> None:
    user = await new_user(store, clock, password="first-password")
    other = await new_user(store, clock, "other", password="other-password")
    mine, theirs = await save_token(store, "tk_mine", user.id), await save_token(
        store, "tk_theirs", other.id)
    kind, body = change
    if kind == "put":
        await identities.replace_user(store, clock, FakeHasher(), events, user.id, body,
                                      sessions=no_sessions)
    else:
        await identities.patch_user(store, clock, FakeHasher(), events, user.id, body,
                                    sessions=no_sessions)
    assert (await store.get_credentials(user.id)).password_hash == "hashed:second-password"
    assert not await is_active(store, mine)
    assert await is_active(store, theirs)
    assert events.named("password_changed") == [{"user_id": user.id, "tokens_revoked": 1,
                                                 "sessions_ended": 0}]


@pytest.mark.parametrize("operation", [
    {"op": "remove", "path": "password"},
    {"op": "replace", "path": "password", "value": None},
    {"op": "replace", "value": {"password": None}},
])
async def test_clearing_the_password_by_patch_removes_it_and_revokes(
    store: MemoryStore, clock: FakeClock, events: RecordingEvents, operation: dict[str, Any]
) -> None:
    user = await new_user(store, clock, password="first-password")
    token = await save_token(store, "tk_mine", user.id)
    await identities.patch_user(store, clock, FakeHasher(), events, user.id, ops(operation),
                                sessions=no_sessions)
    assert (await store.get_credentials(user.id)).password_hash is None
    assert not await is_active(store, token)
    assert events.named("password_cleared") == [{"user_id": user.id, "tokens_revoked": 1,
                                                 "sessions_ended": 0}]


async def test_other_changes_keep_the_password_and_the_tokens(
    store: MemoryStore, clock: FakeClock, events: RecordingEvents
) -> None:
    user = await new_user(store, clock, password="first-password")
    token = await save_token(store, "tk_mine", user.id)
    await identities.patch_user(store, clock, FakeHasher(), events, user.id,
                                ops({"op": "replace", "path": "displayName", "value": "B"}),
                                sessions=no_sessions)
    await identities.replace_user(store, clock, FakeHasher(), events, user.id,
                                  {"userName": "bjensen", "displayName": "Babs"},
                                  sessions=no_sessions)
    assert (await store.get_credentials(user.id)).password_hash == "hashed:first-password"
    assert await is_active(store, token)
    assert not events.named("password_changed") and not events.named("password_cleared")


# set_password (the CLI's use case)


async def _alice(store: MemoryStore) -> User:
    return await store.create_user(User(user_name="Alice"), password_hash="hashed:old-password")


async def test_set_password_revokes_the_users_tokens(store: MemoryStore) -> None:
    user = await _alice(store)
    token = await save_token(store, "tk_alice", user.id)
    other = await save_token(store, "tk_other", "someone-else")
    await set_password(store, FakeHasher(), user_name="ALICE", password="new password",
                       now=NOW, sessions=no_sessions)
    assert (await store.get_credentials(user.id)).password_hash == "hashed:new password"
    assert not await is_active(store, token)
    assert await is_active(store, other)


async def test_clearing_with_set_password_removes_it_and_revokes(store: MemoryStore) -> None:
    user = await _alice(store)
    token = await save_token(store, "tk_alice", user.id)
    await set_password(store, FakeHasher(), user_name="alice", password=None, now=NOW,
                       sessions=no_sessions)
    assert (await store.get_credentials(user.id)).password_hash is None
    assert not await is_active(store, token)


async def test_set_password_applies_the_policy_and_changes_nothing_when_refused(
    store: MemoryStore
) -> None:
    user = await _alice(store)
    token = await save_token(store, "tk_alice", user.id)
    for refused, policy in (("short", PasswordPolicy()),
                            ("not twelve!", PasswordPolicy(min_length=12))):
        with pytest.raises(PasswordRejected):
            await set_password(store, FakeHasher(), user_name="alice", password=refused,
                               now=NOW, policy=policy, sessions=no_sessions)
    assert (await store.get_credentials(user.id)).password_hash == "hashed:old-password"
    assert await is_active(store, token)


async def test_set_password_for_an_unstorable_name_is_not_found(store: MemoryStore) -> None:
    await _alice(store)
    with pytest.raises(NotFound):
        await set_password(store, FakeHasher(), user_name="alice\x00", password="long enough",
                           now=NOW, sessions=no_sessions)


def test_cli_refuses_a_short_password_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A store the command can reach (the file-backed test plugin), made before the command
    # runs so that it has nothing to migrate (and log); nothing is stored.
    from auth_filestore import FileStore

    async def create() -> None:
        made = FileStore(tmp_path / "auth.store")
        await made.migrate()
        await made.close()

    asyncio.run(create())
    monkeypatch.setenv("STORE_BACKEND", "filestore")
    monkeypatch.setenv("STORE_URL", str(tmp_path / "auth.store"))
    monkeypatch.setenv("PASSWORD_MIN_LENGTH", "10")
    monkeypatch.setattr("sys.stdin", io.StringIO("nine char\n"))
    assert main(["user", "set-password", "alice"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("auth-service: the password is too short: it needs at least 10 characters "
                   "(PASSWORD_MIN_LENGTH=10)")


def test_cli_clear_password_cannot_reach_hybrids_users(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STORE_BACKEND", raising=False)
    assert main(["user", "clear-password", "alice"]) == 2
    assert "user clear-password cannot reach the users" in capsys.readouterr().err

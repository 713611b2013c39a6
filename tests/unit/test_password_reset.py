"""The password-reset use cases over the memory store (domain/password_reset.py); the
pages and the real SMTP server are in tests/e2e/test_password_reset.py."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from adapters.memory.store import MemoryStore
from domain.entities import Email, User
from domain.password_policy import PasswordRejected
from domain.password_reset import (
    LinkRefused,
    PasswordReset,
    ResetPolicy,
    looks_like_reset_token,
    request_password_reset,
    reset_password,
)
from domain.text import duration_text
from domain.tokens import hash_token
from ports.security import SecretsTokenGenerator
from tests.doubles import T0, RecordingEvents, RecordingMailer
from tests.e2e.signin_flow import HASHER

URL = "https://auth.test/signin/reset"


async def _no_sessions(user_id: str, *, reason: str) -> int:
    return 0


async def _user(store: MemoryStore, name: str, email: str | None,
                active: bool = True) -> User:
    return await store.create_user(User(
        user_name=name, active=active,
        emails=(Email(value=email, primary=True),) if email else ()))


async def _ask(store: MemoryStore, mailer: RecordingMailer, events: RecordingEvents,
               login: str, now: int = T0, policy: ResetPolicy | None = None) -> None:
    await request_password_reset(store, mailer, events, SecretsTokenGenerator(), login=login,
                                 client_ip="192.0.2.1", reset_url=URL, now=now,
                                 policy=policy or ResetPolicy())


def _token(mailer: RecordingMailer, index: int = -1) -> str:
    return mailer.sent[index].values["link"].removeprefix(URL + "?token=")


def test_durations_read_as_words() -> None:
    assert [duration_text(s) for s in (1800, 60, 3600, 7200, 86400, 172800, 90, 1)] == [
        "30 minutes", "1 minute", "1 hour", "2 hours", "1 day", "2 days", "90 seconds",
        "1 second"]


def test_only_reset_secrets_are_looked_up() -> None:
    assert looks_like_reset_token("pr_" + "a" * 43)
    for text in ("", "pr_", "pr_abc", "tk_" + "a" * 43, "pr_a b", "pr_" + "a" * 200, "pr_é"):
        assert not looks_like_reset_token(text), text


async def test_the_mail_goes_to_the_primary_address_with_the_link_and_its_lifetime() -> None:
    store, mailer, events = MemoryStore(), RecordingMailer(), RecordingEvents()
    user = await store.create_user(User(user_name="alice", display_name="Alice A.", emails=(
        Email(value="old@example.test"), Email(value="Alice@Example.test", primary=True))))
    await _ask(store, mailer, events, "old@example.test",
               policy=ResetPolicy(link_seconds=600))
    [sent] = mailer.sent
    assert (sent.template, sent.to, sent.user_id) == (
        "password_reset", "Alice@Example.test", user.id)
    assert sent.values["name"] == "Alice A." and sent.values["expires"] == "10 minutes"
    assert sent.values["link"].startswith(URL + "?token=pr_")
    record = await store.take_account_token("password_reset", hash_token(_token(mailer)),
                                            T0 + 599)
    assert record is not None and record.email == "alice@example.test"
    assert record.exp == T0 + 600


async def test_a_user_name_wins_and_a_shared_address_finds_nobody() -> None:
    store, mailer, events = MemoryStore(), RecordingMailer(), RecordingEvents()
    owner = await _user(store, "shared@example.test", "owner@example.test")
    await _user(store, "one", "shared@example.test")
    await _user(store, "two", "shared@example.test")
    await _ask(store, mailer, events, "shared@example.test")
    assert [m.user_id for m in mailer.sent] == [owner.id]
    await _ask(store, mailer, events, "SHARED@example.test")  # the name, case-insensitively
    await store.delete_user(owner.id)
    await _ask(store, mailer, events, "shared@example.test")  # now two users share it
    assert len(mailer.sent) == 2
    assert events.named("password_reset_requested")[-1]["outcome"] == "unknown_user"


async def test_a_refused_password_keeps_the_link_and_a_good_one_spends_it() -> None:
    store, mailer, events = MemoryStore(), RecordingMailer(), RecordingEvents()
    user = await _user(store, "alice", "alice@example.test")
    await _ask(store, mailer, events, "alice")
    token = _token(mailer)
    with pytest.raises(PasswordRejected):
        await reset_password(store, HASHER, events, _no_sessions, token=token,
                             password="short", client_ip="x", now=T0)
    outcome = await reset_password(store, HASHER, events, _no_sessions, token=token,
                                   password="long enough now", client_ip="x", now=T0)
    assert isinstance(outcome, PasswordReset) and outcome.user_id == user.id
    credentials = await store.get_credentials(user.id)
    assert await HASHER.verify(credentials.password_hash, "long enough now")
    again = await reset_password(store, HASHER, events, _no_sessions, token=token,
                                 password="another one here", client_ip="x", now=T0)
    assert isinstance(again, LinkRefused)


async def test_concurrent_uses_of_one_link_set_one_password() -> None:
    store, mailer, events = MemoryStore(), RecordingMailer(), RecordingEvents()
    await _user(store, "alice", "alice@example.test")
    await _ask(store, mailer, events, "alice")
    token = _token(mailer)
    outcomes = await asyncio.gather(*(
        reset_password(store, HASHER, events, _no_sessions, token=token,
                       password=f"password number {i}", client_ip="x", now=T0)
        for i in range(5)))
    assert sum(isinstance(o, PasswordReset) for o in outcomes) == 1


async def test_a_link_mailed_to_an_address_the_user_no_longer_has_is_refused() -> None:
    store, mailer, events = MemoryStore(), RecordingMailer(), RecordingEvents()
    user = await _user(store, "alice", "alice@example.test")
    await _ask(store, mailer, events, "alice")
    stored = await store.get_user(user.id)
    await store.replace_user(msgspec.structs.replace(
        stored, emails=(Email(value="new@example.test", primary=True),)))
    outcome = await reset_password(store, HASHER, events, _no_sessions, token=_token(mailer),
                                   password="long enough now", client_ip="x", now=T0)
    assert isinstance(outcome, LinkRefused)
    assert events.named("password_reset_link_refused")[-1]["reason"] == "email_changed"
    assert (await store.get_credentials(user.id)).password_hash is None

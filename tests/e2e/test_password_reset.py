"""Password reset by a mailed link, through the real app and a real SMTP server
(aiosmtpd on 127.0.0.1, tests/services/smtp.py): the app is configured with ``SMTP_URL``
pointing at it, so the mail goes through the product's own SmtpMailer.

The link is read from the message the server received, as a user would read it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from adapters.memory.store import MemoryStore
from adapters.smtp_mail import SmtpMailer
from domain.password_reset import DEFAULT_RESET_POLICY
from tests.e2e.conftest import StoreBackend
from tests.e2e.signin_flow import (
    ISSUER,
    PASSWORD,
    PUBLIC_ID,
    Form,
    Harness,
    auth_params,
    full_flow,
    harness,
    submit,
)
from tests.services.smtp import LocalSmtp, Received

NEW_PASSWORD = "a brand new passphrase"
SENDER = "auth-service <no-reply@auth.test>"
_LINK = re.compile(r"(http\S+/signin/reset\?token=([A-Za-z0-9_-]+))")


def _env(smtp_server: LocalSmtp) -> dict[str, str]:
    return {"SMTP_URL": smtp_server.url, "SMTP_FROM": SENDER}


@pytest.fixture
def h(store: StoreBackend, tmp_path: Path, smtp_server: LocalSmtp) -> Iterator[Harness]:
    with harness(tmp_path, backend=store, **_env(smtp_server)) as running:
        yield running


def delivered(h: Harness, smtp_server: LocalSmtp) -> list[Received]:
    """Every message the server holds once the app's mail under way is delivered."""
    mailer = h.services.mailer
    assert isinstance(mailer, SmtpMailer)
    h.run(mailer.drain(10))
    return list(smtp_server.received)


def link_of(message: Received) -> tuple[str, str]:
    """The reset link of a mail and its token."""
    found = _LINK.search(message.text)
    assert found is not None, message.text
    return found.group(1), found.group(2)


def ask(h: Harness, login: str) -> httpx.Response:
    page = h.client.get("/signin/forgot")
    assert page.status_code == 200, page.text
    return submit(h.client, page, login=login)


def set_password(h: Harness, link: str, password: str = NEW_PASSWORD,
                 confirm: str | None = None) -> httpx.Response:
    page = h.client.get(link.removeprefix(ISSUER))
    assert page.status_code == 200, page.text
    return submit(h.client, page, password=password,
                  confirm=password if confirm is None else confirm)


def signs_in(h: Harness, password: str) -> bool:
    page = h.client.get("/signin", params={"prompt": "login"})
    response = submit(h.client, page, username="alice", password=password)
    return response.status_code == 303


def test_the_reset_link_arrives_by_mail_and_works_once(
    h: Harness, smtp_server: LocalSmtp
) -> None:
    h.add_user("alice")
    answer = ask(h, "alice")
    assert answer.status_code == 200
    [mail] = delivered(h, smtp_server)
    assert mail.rcpt_tos == ["alice@example.test"]
    assert mail.message["Subject"] == "Reset your password"
    assert "Hello Alice Doe," in mail.text and "30 minutes" in mail.text
    link, token = link_of(mail)
    assert link.startswith(f"{ISSUER}/signin/reset?token=pr_")

    # Opening the link (a mail scanner, a preview, the user twice) spends nothing.
    for _ in range(2):
        page = h.client.get(link.removeprefix(ISSUER))
        assert page.status_code == 200
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
        assert Form(page.text).fields["token"] == token

    done = set_password(h, link)
    assert done.status_code == 303 and done.headers["location"] == "/signin/reset/done"
    signin = h.client.get("/signin/reset/done")
    assert signin.status_code == 200 and "Your password has been changed" in signin.text
    assert submit(h.client, signin, username="alice",
                  password=NEW_PASSWORD).headers["location"] == "/account"
    assert not signs_in(h, PASSWORD)

    again = set_password(h, link, "yet another passphrase")
    assert again.status_code == 410
    assert 'href="/signin/forgot"' in again.text
    assert signs_in(h, NEW_PASSWORD)
    assert [name for name in h.events.names() if name.startswith("password_reset")] == [
        "password_reset_requested", "password_reset_completed", "password_reset_link_refused"]
    assert token not in str(h.events.events)


def test_an_email_address_finds_the_account_case_insensitively(
    h: Harness, smtp_server: LocalSmtp
) -> None:
    h.add_user("alice", email="Alice@Example.test")
    ask(h, "alice@EXAMPLE.test")
    [mail] = delivered(h, smtp_server)
    assert mail.rcpt_tos == ["Alice@Example.test"]


def test_an_expired_link_is_refused(h: Harness, smtp_server: LocalSmtp) -> None:
    h.add_user("alice")
    ask(h, "alice")
    link, _ = link_of(delivered(h, smtp_server)[0])
    h.clock.advance(DEFAULT_RESET_POLICY.link_seconds)
    page = h.client.get(link.removeprefix(ISSUER))
    response = submit(h.client, page, password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert response.status_code == 410
    assert "expired or was already used" in response.text
    assert signs_in(h, PASSWORD)


def test_a_refused_password_leaves_the_link_usable(h: Harness, smtp_server: LocalSmtp) -> None:
    h.add_user("alice")
    ask(h, "alice")
    link, _ = link_of(delivered(h, smtp_server)[0])

    short = set_password(h, link, "short")
    assert short.status_code == 400 and "too short" in short.text
    mismatch = set_password(h, link, NEW_PASSWORD, confirm=NEW_PASSWORD + "!")
    assert mismatch.status_code == 400 and "not the same" in mismatch.text
    assert set_password(h, link).status_code == 303
    assert signs_in(h, NEW_PASSWORD)


def test_a_reset_ends_every_session_and_token_and_the_other_links(
    h: Harness, smtp_server: LocalSmtp
) -> None:
    h.add_user("alice")
    tokens = full_flow(h)
    assert h.session() is not None
    ask(h, "alice")
    ask(h, "alice")
    first, second = (link_of(mail)[0] for mail in delivered(h, smtp_server))

    assert set_password(h, first).status_code == 303
    assert h.session() is None
    refreshed = h.client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": PUBLIC_ID})
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    userinfo = h.client.get("/oauth/userinfo",
                            headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 401
    assert set_password(h, second, "yet another passphrase").status_code == 410
    [completed] = h.events.named("password_reset_completed")
    assert completed["sessions_ended"] == 1


def test_a_link_stops_working_when_the_user_is_deactivated(
    h: Harness, smtp_server: LocalSmtp
) -> None:
    user = h.add_user("alice")
    ask(h, "alice")
    link, _ = link_of(delivered(h, smtp_server)[0])
    stored = h.run(h.store.get_user(user.id))
    h.run(h.store.replace_user(msgspec.structs.replace(stored, active=False)))
    assert set_password(h, link).status_code == 410
    [refused] = h.events.named("password_reset_link_refused")
    assert refused["reason"] == "inactive"


@pytest.mark.parametrize("path", ["/signin/reset", "/signin/reset?token=",
                                  "/signin/reset?token=not-a-token",
                                  "/signin/reset?token=pr_a&token=pr_b"])
def test_a_damaged_link_gets_a_clear_page(h: Harness, path: str) -> None:
    page = h.client.get(path)
    assert page.status_code == 400
    assert "not valid" in page.text and 'href="/signin/forgot"' in page.text


def test_an_unknown_link_is_refused_like_a_used_one(h: Harness) -> None:
    page = h.client.get("/signin/reset?token=pr_" + "A" * 43)
    assert page.status_code == 200
    assert submit(h.client, page, password=NEW_PASSWORD,
                  confirm=NEW_PASSWORD).status_code == 410


def test_the_answer_is_the_same_for_every_account_or_none(
    h: Harness, smtp_server: LocalSmtp
) -> None:
    h.add_user("alice")
    h.add_user("bob", active=False, email="bob@example.test")
    h.add_user("carol", email=None)
    answers = [ask(h, login) for login in (
        "alice", "nobody", "alice@example.test", "nobody@example.test", "bob", "carol")]
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert "If an account matches" in answers[0].text
    # Only the active user with an address got mail (twice: by name and by address).
    assert [m.rcpt_tos for m in delivered(h, smtp_server)] == [["alice@example.test"]] * 2
    assert [e["outcome"] for e in h.events.named("password_reset_requested")] == [
        "sent", "unknown_user", "sent", "unknown_user", "inactive", "no_email"]


class CallLog:
    """A store that records the name of every store call made while ``recording``."""

    def __init__(self, inner: MemoryStore) -> None:
        self._inner = inner
        self.calls: list[str] = []
        self.recording = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.recording:
                self.calls.append(name)
            return await attr(*args, **kwargs)

        return call


def test_unknown_users_cost_the_same_store_work_as_known_ones(
    tmp_path: Path, smtp_server: LocalSmtp
) -> None:
    log = CallLog(MemoryStore())
    with harness(tmp_path, store=log, **_env(smtp_server)) as h:  # type: ignore[arg-type]
        h.add_user("alice")
        h.add_user("bob", active=False, email="bob@example.test")
        h.add_user("carol", email=None)
        work: dict[str, list[str]] = {}
        for login in ("alice", "nobody", "alice@example.test", "nobody@example.test",
                      "bob", "carol"):
            log.calls.clear()
            log.recording = True
            assert ask(h, login).status_code == 200
            log.recording = False
            work[login] = log.calls.copy()
        delivered(h, smtp_server)

    # The one difference: the sent link is saved where the others take an unsaved hash.
    sent = work["alice"]
    assert "save_account_token" in sent and "take_account_token" not in sent
    expected = [("take_account_token" if c == "save_account_token" else c) for c in sent]
    for login, calls in work.items():
        if login in ("alice", "alice@example.test"):
            assert calls == sent, login
        else:
            assert calls == expected, login
    assert sent.count("hit") == 2 and "find_user_by_name" in sent and "list_users" in sent


def test_asking_is_throttled_per_user(h: Harness, smtp_server: LocalSmtp) -> None:
    h.add_user("alice")
    limit = DEFAULT_RESET_POLICY.per_user
    answers = [ask(h, "alice" if i % 2 else "alice@example.test") for i in range(limit + 2)]
    assert len({(a.status_code, a.text) for a in answers}) == 1
    assert len(delivered(h, smtp_server)) == limit
    throttled = h.events.named("password_reset_throttled")
    assert [t["scope"] for t in throttled] == ["user", "user"]
    # Another window: mail again.
    h.clock.advance(DEFAULT_RESET_POLICY.window_seconds)
    ask(h, "alice")
    assert len(delivered(h, smtp_server)) == limit + 1


def test_asking_is_throttled_per_address(h: Harness, smtp_server: LocalSmtp) -> None:
    h.add_user("alice")
    for i in range(DEFAULT_RESET_POLICY.per_address):
        ask(h, f"nobody-{i}")
    answer = ask(h, "alice")
    assert answer.status_code == 200 and "If an account matches" in answer.text
    assert delivered(h, smtp_server) == []
    [throttled] = h.events.named("password_reset_throttled")
    assert throttled["scope"] == "address"


def test_bad_input_is_a_clear_error(h: Harness, smtp_server: LocalSmtp) -> None:
    for login, status in (("", 400), ("  ", 400), ("a\x00b", 400), ("x" * 300, 400)):
        page = h.client.get("/signin/forgot")
        response = submit(h.client, page, login=login)
        assert response.status_code == status, login
        assert 'role="alert"' in response.text
    assert delivered(h, smtp_server) == []


def test_the_sign_in_pages_offer_a_reset_with_a_mailer(h: Harness) -> None:
    for page in (h.client.get("/signin"), h.client.get("/oauth/authorize",
                                                       params=auth_params())):
        assert page.status_code == 200
        assert 'href="/signin/forgot"' in page.text and "Forgot password?" in page.text
    forgot = h.client.get("/signin/forgot")
    assert forgot.headers["content-security-policy"].startswith("default-src 'none'")
    assert forgot.headers["cache-control"] == "no-store"


def test_without_a_mailer_there_is_no_reset(tmp_path: Path) -> None:
    with harness(tmp_path) as h:
        assert h.services.mailer is None
        h.add_user("alice")
        page = h.client.get("/signin")
        assert page.status_code == 200 and "Forgot password?" not in page.text
        assert "/signin/forgot" not in page.text
        for path in ("/signin/forgot", "/signin/reset?token=pr_x", "/signin/reset/done"):
            assert h.client.get(path).status_code == 404, path
        assert h.client.post("/signin/forgot", data={"login": "alice"}).status_code == 404
        assert h.client.post("/signin/reset", data={"token": "pr_x"}).status_code == 404
        assert h.events.named("password_reset_requested") == []


def test_mail_under_way_is_delivered_before_the_app_stops(
    tmp_path: Path, smtp_server: LocalSmtp
) -> None:
    with harness(tmp_path, **_env(smtp_server)) as h:
        h.add_user("alice")
        assert ask(h, "alice").status_code == 200
    # No explicit drain: the shutdown waited for the delivery.
    assert [m.rcpt_tos for m in smtp_server.wait_for(1, timeout=0.5)] == [["alice@example.test"]]

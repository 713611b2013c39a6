"""SmtpMailer against a real SMTP server on 127.0.0.1 (tests/services/smtp.py, aiosmtpd):
the message it sends, retries, refusals, timeouts, TLS and AUTH, shutdown, and the events
of every outcome; and what ``SMTP_URL`` means (adapters/smtp_mail.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import pytest

from adapters.smtp_mail import SmtpMailer, SmtpServer, parse_smtp_url
from entrypoints.logging import redact
from entrypoints.mail import TemplateRenderer, load_mailer, log_mail_status
from entrypoints.settings import load_settings
from tests.doubles import T0, FakeClock, RecordingEvents
from tests.services.smtp import LocalSmtp

SENDER = "auth-service <no-reply@auth.example.test>"
LINK = "https://auth.example.test/signin/reset?token=pr_secret-link-value"
VALUES = {"name": "Alice Doe", "link": LINK, "expires": "30 minutes"}


def mailer(server_url: str, events: RecordingEvents, **options: object) -> SmtpMailer:
    settings: dict[str, object] = {"timeout_seconds": 5.0, "retry_delays": (0.01, 0.01)}
    settings.update(options)
    return SmtpMailer(parse_smtp_url(server_url), SENDER, TemplateRenderer(), events,
                      FakeClock(T0), helo_name="auth.example.test",
                      **settings)  # type: ignore[arg-type]


def only(events: RecordingEvents, name: str) -> dict[str, object]:
    found = events.named(name)
    assert len(found) == 1, events.events
    return dict(found[0])


def no_secret_logged(events: RecordingEvents) -> None:
    for _, fields in events.events:
        text = str(fields)
        assert "secret-link-value" not in text and "alice@example.test" not in text


async def test_a_message_is_delivered_with_proper_headers_and_reported(
    smtp_server: LocalSmtp,
) -> None:
    events = RecordingEvents()
    m = mailer(smtp_server.url, events)
    m.send("password_reset", to="alice@example.test", user_id="user-1", values=VALUES)
    await m.drain()

    [received] = smtp_server.received
    assert received.rcpt_tos == ["alice@example.test"]
    assert received.mail_from == "no-reply@auth.example.test"
    message = received.message
    assert message["From"] == SENDER
    assert message["To"] == "alice@example.test"
    assert message["Subject"] == "Reset your password"
    assert parsedate_to_datetime(message["Date"]).timestamp() == T0
    assert message["Message-ID"].endswith("@auth.example.test>")
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert not message.is_multipart()
    assert LINK in received.text and "Hello Alice Doe," in received.text
    assert "30 minutes" in received.text
    assert only(events, "mail_delivered") == {"template": "password_reset",
                                              "user_id": "user-1", "attempts": 1}
    assert events.named("mail_failed") == []
    no_secret_logged(events)


async def test_the_verification_template_renders_too(smtp_server: LocalSmtp) -> None:
    events = RecordingEvents()
    m = mailer(smtp_server.url, events)
    m.send("email_verification", to="bob@example.test", user_id="user-2",
           values={"name": "Bob", "link": "https://a.test/v?token=x", "expires": "1 day"})
    await m.drain()
    [received] = smtp_server.received
    assert received.message["Subject"] == "Confirm your email address"
    assert "https://a.test/v?token=x" in received.text and "1 day" in received.text


async def test_non_ascii_text_is_sent_as_utf8(smtp_server: LocalSmtp) -> None:
    events = RecordingEvents()
    m = mailer(smtp_server.url, events)
    m.send("password_reset", to="zoe@example.test", user_id="u",
           values={**VALUES, "name": "Zoë Ångström 李"})
    await m.drain()
    assert "Hello Zoë Ångström 李," in smtp_server.wait_for()[0].text


async def test_send_returns_at_once_and_delivers_in_the_background(
    smtp_server: LocalSmtp,
) -> None:
    events = RecordingEvents()
    m = mailer(smtp_server.url, events)
    started = time.monotonic()
    m.send("password_reset", to="alice@example.test", user_id="user-1", values=VALUES)
    assert time.monotonic() - started < 0.1
    assert m.pending == 1 and smtp_server.received == []
    await m.drain()
    assert m.pending == 0 and len(smtp_server.received) == 1


async def test_a_temporary_refusal_is_retried_until_accepted(smtp_server: LocalSmtp) -> None:
    smtp_server.refuse_next("451 4.3.0 Try again later", times=2)
    events = RecordingEvents()
    m = mailer(smtp_server.url, events)
    m.send("password_reset", to="alice@example.test", user_id="user-1", values=VALUES)
    await m.drain()

    assert len(smtp_server.received) == 1
    assert only(events, "mail_delivered")["attempts"] == 3
    assert events.named("mail_failed") == []


async def test_a_permanent_refusal_is_final(smtp_server: LocalSmtp) -> None:
    smtp_server.refuse_next("554 5.7.1 Message refused", times=2)
    events = RecordingEvents()
    m = mailer(smtp_server.url, events)
    m.send("password_reset", to="alice@example.test", user_id="user-1", values=VALUES)
    await m.drain()

    assert smtp_server.received == []
    failed = only(events, "mail_failed")
    assert failed["reason"] == "rejected" and failed["attempts"] == 1
    assert failed["status"] == 554
    # One attempt only: the second refusal is still queued for the next message.
    m.send("password_reset", to="alice@example.test", user_id="user-1", values=VALUES)
    await m.drain()
    assert [f["attempts"] for f in events.named("mail_failed")] == [1, 1]
    assert smtp_server.received == []
    no_secret_logged(events)


async def test_retries_run_out_as_temporary_refusals_go_on(smtp_server: LocalSmtp) -> None:
    smtp_server.refuse_next("421 4.7.0 Too busy", times=3)
    events = RecordingEvents()
    m = mailer(smtp_server.url, events)
    m.send("password_reset", to="alice@example.test", user_id="user-1", values=VALUES)
    await m.drain()

    failed = only(events, "mail_failed")
    assert failed["reason"] == "unavailable" and failed["attempts"] == 3
    assert failed["status"] == 421


async def test_a_server_that_is_down_fails_after_the_retries() -> None:
    down = LocalSmtp()  # never started: nothing listens on its port
    events = RecordingEvents()
    m = mailer(down.url, events)
    m.send("password_reset", to="alice@example.test", user_id="user-1", values=VALUES)
    await m.drain()

    failed = only(events, "mail_failed")
    assert failed["reason"] == "unavailable"
    assert failed["attempts"] == 3
    assert "connection failed" in str(failed["problem"])
    assert events.named("mail_delivered") == []


async def test_a_server_that_comes_back_gets_the_message() -> None:
    server = LocalSmtp()
    events = RecordingEvents()
    m = mailer(server.url, events, retry_delays=(0.3, 0.3, 0.3))
    m.send("password_reset", to="alice@example.test", user_id="user-1", values=VALUES)
    await asyncio.sleep(0.1)
    server.start()
    try:
        await m.drain()
        assert len(server.received) == 1
        assert only(events, "mail_delivered")["attempts"] >= 2
    finally:
        server.stop()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


async def test_each_attempt_has_a_timeout(silent_server: int) -> None:
    events = RecordingEvents()
    m = mailer(f"smtp://127.0.0.1:{silent_server}", events, timeout_seconds=0.2,
               retry_delays=(0.01,))
    started = time.monotonic()
    m.send("password_reset", to="alice@example.test", user_id="user-1", values=VALUES)
    await m.drain()
    assert time.monotonic() - started < 3
    failed = only(events, "mail_failed")
    assert failed["reason"] == "timeout" and failed["attempts"] == 2


@pytest.mark.parametrize("to", [
    "alice@example.test\r\nBcc: mallory@evil.test",
    "alice@example.test\nBcc: mallory@evil.test",
    "alice@example.test, mallory@evil.test",
    "Alice <alice@example.test>",
    "not-an-address",
    "",
])
async def test_an_address_that_is_not_one_plain_address_is_refused(
    smtp_server: LocalSmtp, to: str
) -> None:
    events = RecordingEvents()
    m = mailer(smtp_server.url, events)
    m.send("password_reset", to=to, user_id="user-1", values=VALUES)
    await m.drain()
    assert smtp_server.received == []
    failed = only(events, "mail_failed")
    assert failed["reason"] == "invalid" and failed["attempts"] == 0
    assert "mallory" not in str(events.events)


async def test_values_with_line_breaks_stay_in_the_body(smtp_server: LocalSmtp) -> None:
    events = RecordingEvents()
    m = mailer(smtp_server.url, events)
    m.send("password_reset", to="alice@example.test", user_id="user-1",
           values={**VALUES, "name": "Eve\r\nBcc: mallory@evil.test\r\n\r\nSubject: x"})
    await m.drain()
    [received] = smtp_server.received
    assert received.rcpt_tos == ["alice@example.test"]
    assert received.message["Bcc"] is None
    assert received.message.get_all("Subject") == ["Reset your password"]
    assert "Bcc: mallory@evil.test" in received.text


async def test_a_missing_value_is_reported_not_sent_blank(smtp_server: LocalSmtp) -> None:
    events = RecordingEvents()
    m = mailer(smtp_server.url, events)
    m.send("password_reset", to="alice@example.test", user_id="user-1",
           values={"name": "Alice", "expires": "30 minutes"})
    await m.drain()
    assert smtp_server.received == []
    assert only(events, "mail_failed")["reason"] == "invalid"


async def test_too_many_pending_messages_are_dropped_at_once() -> None:
    down = LocalSmtp()
    events = RecordingEvents()
    m = mailer(down.url, events, retry_delays=(30.0,), max_pending=1)
    m.send("password_reset", to="alice@example.test", user_id="user-1", values=VALUES)
    m.send("password_reset", to="bob@example.test", user_id="user-2", values=VALUES)
    failed = only(events, "mail_failed")
    assert failed["reason"] == "abandoned" and failed["user_id"] == "user-2"
    assert await m.drain(0.05) == 1


async def test_shutdown_abandons_what_is_still_pending_and_reports_it() -> None:
    down = LocalSmtp()
    events = RecordingEvents()
    m = mailer(down.url, events, retry_delays=(30.0,))
    m.send("password_reset", to="alice@example.test", user_id="user-1", values=VALUES)
    started = time.monotonic()
    assert await m.drain(0.2) == 1
    assert time.monotonic() - started < 2
    failed = only(events, "mail_failed")
    assert failed["reason"] == "abandoned" and failed["user_id"] == "user-1"
    assert m.pending == 0


async def test_starttls_then_auth_with_percent_decoded_credentials() -> None:
    server = LocalSmtp(tls="starttls", auth=("mailer@example.test", "p@ss:w/rd%"))
    server.start()
    try:
        events = RecordingEvents()
        url = f"smtp://mailer%40example.test:p%40ss%3Aw%2Frd%25@127.0.0.1:{server.port}"
        m = mailer(url, events, tls_context=server.client_tls())
        m.send("password_reset", to="alice@example.test", user_id="user-1", values=VALUES)
        await m.drain()
        # The server takes AUTH only after STARTTLS (auth_require_tls).
        assert server.logins == [("mailer@example.test", "p@ss:w/rd%")]
        assert len(server.received) == 1
        assert only(events, "mail_delivered")["attempts"] == 1
    finally:
        server.stop()


async def test_wrong_credentials_are_a_permanent_failure() -> None:
    server = LocalSmtp(tls="starttls", auth=("mailer", "right"))
    server.start()
    try:
        events = RecordingEvents()
        m = mailer(f"smtp://mailer:wrong@127.0.0.1:{server.port}", events,
                   tls_context=server.client_tls())
        m.send("password_reset", to="alice@example.test", user_id="user-1", values=VALUES)
        await m.drain()
        failed = only(events, "mail_failed")
        assert failed["reason"] == "rejected" and failed["attempts"] == 1
        assert failed["status"] == 535 and "credentials" in str(failed["problem"])
        assert "wrong" not in str(events.events)
    finally:
        server.stop()


async def test_smtps_speaks_tls_from_the_start() -> None:
    server = LocalSmtp(tls="implicit")
    server.start()
    try:
        events = RecordingEvents()
        m = mailer(server.url, events, tls_context=server.client_tls())
        m.send("password_reset", to="alice@example.test", user_id="user-1", values=VALUES)
        await m.drain()
        assert len(server.received) == 1
    finally:
        server.stop()


async def test_a_certificate_that_does_not_verify_is_refused() -> None:
    server = LocalSmtp(tls="implicit")
    server.start()
    try:
        events = RecordingEvents()
        m = mailer(server.url, events)  # the system's trust store: not the test's cert
        m.send("password_reset", to="alice@example.test", user_id="user-1", values=VALUES)
        await m.drain()
        assert server.received == []
        assert only(events, "mail_failed")["reason"] == "unavailable"
    finally:
        server.stop()


def test_smtp_url() -> None:
    assert parse_smtp_url("smtp://mail.example.test") == SmtpServer(
        host="mail.example.test", port=25)
    assert parse_smtp_url("smtps://u%40x:p%3A%2F@mail.example.test:2465") == SmtpServer(
        host="mail.example.test", port=2465, implicit_tls=True, username="u@x",
        password="p:/")
    assert parse_smtp_url("smtps://mail.example.test").port == 465
    with pytest.raises(ValueError, match="SMTP_URL"):
        parse_smtp_url("http://mail.example.test")


def test_starttls_is_required_before_sending_credentials_to_another_machine() -> None:
    assert parse_smtp_url("smtp://mail.example.test").starttls is None  # when offered
    assert parse_smtp_url("smtp://u:p@mail.example.test").starttls is True
    assert parse_smtp_url("smtp://u:p@127.0.0.1:2525").starttls is None  # a local relay
    assert parse_smtp_url("smtps://u:p@mail.example.test").starttls is False  # TLS already


def test_the_description_never_shows_the_password() -> None:
    server = parse_smtp_url("smtp://user:hunter2@mail.example.test:587")
    assert server.describe() == "smtp://mail.example.test:587 with AUTH"


def test_no_mailer_without_smtp_url_and_the_start_up_line_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    off = load_settings({})
    assert load_mailer(off, RecordingEvents(), FakeClock()) is None
    on = load_settings({"SMTP_URL": "smtp://mailer:hunter2@mail.example.test:587",
                        "SMTP_FROM": "no-reply@auth.example.test",
                        "EXTERNAL_BASE_URL": "https://auth.example.test"})
    mailer = load_mailer(on, RecordingEvents(), FakeClock())
    assert isinstance(mailer, SmtpMailer)
    assert mailer.server == SmtpServer(host="mail.example.test", port=587,
                                       username="mailer", password="hunter2")
    assert mailer.sender == "no-reply@auth.example.test"
    assert mailer.helo_name == "auth.example.test"

    with caplog.at_level(logging.INFO, logger="auth_service.mail"):
        log_mail_status(off)
        log_mail_status(on)
    off_line, on_line = (r.getMessage() for r in caplog.records)
    assert off_line.startswith("mail is off (SMTP_URL is unset)")
    assert "no password reset" in off_line
    assert on_line.startswith("mail is on: smtp://mail.example.test:587 with AUTH")
    assert "hunter2" not in on_line


def test_a_reset_secret_in_a_log_line_is_cut_to_its_prefix() -> None:
    line = redact("opened https://a.test/signin/reset/x/pr_abcdefghijklmnopqrstuvwxyz0123")
    assert "pr_abcd..." in line and "qrstuvwxyz" not in line

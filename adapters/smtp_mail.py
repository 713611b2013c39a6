"""Mail to users over SMTP with aiosmtplib, as ``ports.mail.Mailer``.

``send`` hands the message to a task of its own, which renders it and delivers it: the
request that asked for the mail never waits for the mail server, nor for the rendering. A
delivery:

- opens one connection per message to the server of ``SMTP_URL``: ``smtps://`` speaks TLS
  from the start (port 465 by default); ``smtp://`` (port 25 by default) upgrades with
  STARTTLS when the server offers it, and *requires* it when the URL carries credentials
  for a host that is not this machine, so that a downgrade by someone on the path cannot
  make the password cross the network in clear. Certificates are verified;
- has ``timeout_seconds`` for each attempt as a whole (connect, TLS, AUTH, the message);
- is retried after each of ``retry_delays`` on a temporary failure: a 4xx answer, a
  network error, a timeout. A 5xx answer is final (the server refused this message, this
  sender or these credentials; trying again would not change its mind);
- runs at most ``max_concurrent`` at a time; beyond ``max_pending`` queued ones, new
  messages are dropped at once rather than held in memory without bound.

Every outcome is a security event: ``mail_delivered`` (``template``, ``user_id``,
``attempts``) or ``mail_failed`` with a ``reason`` from :data:`FAILURE_REASONS` and a
``problem`` in words (with the SMTP ``status`` when the server answered). Neither carries
the address, the message or the link in it: a mailed link is a credential.

The message is a proper ``email.message.EmailMessage`` (From, To, Subject, Date,
Message-ID, one ``text/plain`` UTF-8 part). The recipient must be one plain address; one
with a control character (CR, LF, ...) is refused before any header is written, so no
value can add a header or a recipient.

On shutdown, :meth:`SmtpMailer.drain` waits a bounded time for deliveries under way,
then cancels the rest, each of which is reported as failed (``abandoned``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Callable, Mapping
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from urllib.parse import unquote, urlsplit

import aiosmtplib
import msgspec

from adapters.background import Deliveries
from ports.clock import Clock
from ports.events import Events
from ports.mail import MailTemplate

log = logging.getLogger("auth_service.mail")

#: ``reason`` of a ``mail_failed`` event: ``invalid`` (no message could be made: the
#: address or the template), ``rejected`` (the server answered 5xx, or lacks what the
#: configuration needs), ``unavailable`` (4xx answers or network errors until the retries
#: ran out), ``timeout`` (the last attempt timed out), ``abandoned`` (dropped: too many
#: pending, or still pending at shutdown).
FAILURE_REASONS = ("invalid", "rejected", "unavailable", "timeout", "abandoned")

_DEFAULT_PORTS = {"smtp": 25, "smtps": 465}


class SmtpServer(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how to deliver, from ``SMTP_URL``."""

    host: str
    port: int
    #: ``smtps://``: TLS from the first byte (else STARTTLS, see :attr:`starttls`).
    implicit_tls: bool = False
    username: str | None = None
    password: str | None = None

    @property
    def starttls(self) -> bool | None:
        """aiosmtplib's ``start_tls``: True (required), None (when offered), False (TLS
        already). Credentials for another machine are never sent without TLS."""
        if self.implicit_tls:
            return False
        if self.username is not None and not _is_loopback(self.host):
            return True
        return None

    def describe(self) -> str:
        """The server for a log line, without the credentials."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        auth = " with AUTH" if self.username is not None else ""
        return f"{scheme}://{self.host}:{self.port}{auth}"


def parse_smtp_url(url: str) -> SmtpServer:
    """``smtp[s]://[user[:password]@]host[:port]``; the user and password are
    percent-decoded (``%40`` for ``@``, ``%3A`` for ``:``). ``ValueError`` for anything
    else (entrypoints/settings.py checks the URL at start-up)."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("SMTP_URL must be smtp://host[:port] or smtps://host[:port]")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return SmtpServer(host=parts.hostname, port=parts.port or _DEFAULT_PORTS[parts.scheme],
                      implicit_tls=parts.scheme == "smtps", username=username,
                      password=password if username is not None else None)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RenderedMail(msgspec.Struct, frozen=True):
    """A template filled in: the subject line and the plain-text body."""

    subject: str
    body: str


#: Fills in a template (entrypoints/mail.py renders the Jinja files).
Renderer = Callable[[MailTemplate, Mapping[str, str]], RenderedMail]


class _Outgoing(msgspec.Struct, frozen=True):
    template: MailTemplate
    to: str
    user_id: str
    values: dict[str, str]
    #: When it was sent (the Date header), not when it was delivered.
    at: int


class InvalidMail(ValueError):
    """No message can be made of what ``send`` was given (the text says why)."""


def build_message(
    sender: str, to: str, rendered: RenderedMail, *, now: int
) -> EmailMessage:
    """The message to ``to``; :class:`InvalidMail` for an address that is not one plain
    address (a control character, a display name, a list)."""
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in to):
        raise InvalidMail("the address contains a control character or a space")
    try:
        recipient = Address(addr_spec=to)
    except (ValueError, IndexError) as exc:
        raise InvalidMail("the address is not an email address") from exc
    if not recipient.username or not recipient.domain:
        raise InvalidMail("the address is not an email address")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    # One line whatever the template held: a subject never starts another header.
    message["Subject"] = " ".join(rendered.subject.split())
    message["Date"] = formatdate(now, usegmt=True)
    message["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    message.set_content(rendered.body, subtype="plain", charset="utf-8")
    return message


class SmtpMailer:
    def __init__(
        self, server: SmtpServer, sender: str, render: Renderer, events: Events, clock: Clock,
        *, helo_name: str, timeout_seconds: float = 30.0,
        retry_delays: tuple[float, ...] = (5.0, 30.0, 120.0), max_concurrent: int = 4,
        max_pending: int = 1000, tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.server = server
        self.sender = sender
        self.render = render
        self.events = events
        self.clock = clock
        # Given, not looked up: aiosmtplib would otherwise call socket.getfqdn(), a
        # blocking DNS query on the event loop.
        self.helo_name = helo_name
        self.timeout_seconds = timeout_seconds
        self.retry_delays = retry_delays
        self._tls = tls_context or ssl.create_default_context()
        self._deliveries: Deliveries[_Outgoing] = Deliveries(
            max_concurrent=max_concurrent, max_pending=max_pending,
            abandoned=lambda outgoing, problem: self._failed(
                outgoing.template, outgoing.user_id, 0, "abandoned", problem),
            crashed=self._crashed)

    @property
    def pending(self) -> int:
        """Deliveries started and not finished."""
        return self._deliveries.pending

    def send(
        self, template: MailTemplate, *, to: str, user_id: str, values: Mapping[str, str]
    ) -> None:
        """See :meth:`ports.mail.Mailer.send`: never raises, never waits. Even the message
        is made in the background, so that a request that sends mail takes no longer than
        one that does not (password reset answers everyone alike)."""
        self._deliveries.start(
            _Outgoing(template, to, user_id, dict(values), self.clock.now()), self._deliver)

    async def drain(self, timeout_seconds: float | None = None) -> int:
        """Wait for the deliveries under way (shutdown, tests), at most ``timeout_seconds``
        (None: until they are all done); cancel those still pending then, reporting each as
        ``abandoned``. Returns how many were cancelled."""
        return await self._deliveries.drain(timeout_seconds)

    def _crashed(self, outgoing: _Outgoing, exc: BaseException) -> None:
        # _attempts reports every outcome itself; this is a bug, not the server's answer.
        log.error("mail delivery crashed", exc_info=exc)
        self._failed(outgoing.template, outgoing.user_id, 0, "unavailable",
                     "the delivery failed unexpectedly")

    async def _deliver(self, outgoing: _Outgoing) -> None:
        try:
            message = build_message(self.sender, outgoing.to,
                                    self.render(outgoing.template, outgoing.values),
                                    now=outgoing.at)
        except InvalidMail as exc:
            self._failed(outgoing.template, outgoing.user_id, 0, "invalid", str(exc))
            return
        except Exception:  # a template that does not render is a bug, not the user's
            log.exception("mail template %s did not render", outgoing.template)
            self._failed(outgoing.template, outgoing.user_id, 0, "invalid",
                         "the template did not render")
            return
        async with self._deliveries.slot():
            await self._attempts(outgoing, message)

    async def _attempts(self, outgoing: _Outgoing, message: EmailMessage) -> None:
        attempts = len(self.retry_delays) + 1
        reason, problem, status = "unavailable", "", None
        for attempt in range(1, attempts + 1):
            try:
                async with asyncio.timeout(self.timeout_seconds):
                    await self._transmit(message)
            except TimeoutError:  # aiosmtplib's own timeouts are TimeoutErrors too
                reason, status = "timeout", None
                problem = f"no answer within {self.timeout_seconds:g} seconds"
            except aiosmtplib.SMTPRecipientsRefused as exc:
                status = exc.recipients[0].code if exc.recipients else 550
                if status >= 500:
                    self._failed(outgoing.template, outgoing.user_id, attempt, "rejected",
                                 f"the server refused the recipient ({status})", status)
                    return
                reason, problem = "unavailable", f"the server deferred the recipient ({status})"
            except aiosmtplib.SMTPResponseException as exc:
                status = exc.code
                what = _refusal(exc)
                if status >= 500:
                    self._failed(outgoing.template, outgoing.user_id, attempt, "rejected",
                                 f"the server refused {what} ({status})", status)
                    return
                reason, problem = "unavailable", f"the server deferred {what} ({status})"
            except aiosmtplib.SMTPNotSupported as exc:
                # A configuration the server cannot meet (STARTTLS, AUTH): final.
                self._failed(outgoing.template, outgoing.user_id, attempt, "rejected",
                             f"the server does not support what is needed: {exc}")
                return
            except (aiosmtplib.SMTPException, OSError) as exc:
                reason, status = "unavailable", None
                problem = f"the connection failed ({type(exc).__name__})"
            else:
                self.events.emit("mail_delivered", template=outgoing.template,
                                 user_id=outgoing.user_id, attempts=attempt)
                return
            if attempt < attempts:
                await asyncio.sleep(self.retry_delays[attempt - 1])
        self._failed(outgoing.template, outgoing.user_id, attempts, reason, problem, status)

    async def _transmit(self, message: EmailMessage) -> None:
        server = self.server
        client = aiosmtplib.SMTP(
            hostname=server.host, port=server.port, username=server.username,
            password=server.password, use_tls=server.implicit_tls,
            start_tls=server.starttls, tls_context=self._tls,
            timeout=self.timeout_seconds, local_hostname=self.helo_name)
        async with client:
            await client.send_message(message)

    def _failed(self, template: str, user_id: str, attempts: int, reason: str, problem: str,
                status: int | None = None) -> None:
        self.events.emit("mail_failed", template=template, user_id=user_id,
                         attempts=attempts, reason=reason, problem=problem, status=status)


def _refusal(exc: aiosmtplib.SMTPResponseException) -> str:
    # What was refused, in words; never the server's text, which may quote the address.
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return "the credentials"
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return "the sender"
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return "the message"
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        return "the connection"
    return "a command"

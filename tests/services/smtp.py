"""An SMTP server for tests: aiosmtpd on 127.0.0.1, a free port, keeping what it receives.

Started by the tests themselves (the ``smtp_server`` fixture of tests/conftest.py, or
:class:`LocalSmtp` directly), in a thread of its own with its own event loop, like a mail
server on another machine would be; nothing to install, no Docker.

It can offer STARTTLS or speak TLS from the start with a certificate made for the test
(:func:`test_certificate`; a client trusts it through :meth:`LocalSmtp.client_tls`),
require AUTH with one user name and password, and answer the next messages with a
refusal (:meth:`LocalSmtp.refuse_next`), as a mail server that is busy (4xx) or that
refuses (5xx) would.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import ssl
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.services.local import free_port


class Received:
    """One message the server accepted: the envelope and the parsed message."""

    def __init__(self, mail_from: str, rcpt_tos: list[str], data: bytes) -> None:
        self.mail_from = mail_from
        self.rcpt_tos = rcpt_tos
        self.data = data
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.message = parsed

    @property
    def text(self) -> str:
        """The decoded text of the (single) plain-text body."""
        body = self.message.get_body(("plain",))
        assert body is not None
        content: str = body.get_content()  # type: ignore[attr-defined]
        return content


class _Handler:
    def __init__(self, server: LocalSmtp) -> None:
        self._server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return self._server._receive(envelope)


def test_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and ``127.0.0.1`` (PEM files: the
    certificate and its key), good for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


class LocalSmtp:
    """An aiosmtpd server on 127.0.0.1.

    ``tls``: None (plain SMTP), ``"starttls"`` (offered, and then required for AUTH) or
    ``"implicit"`` (TLS from the first byte, as ``smtps://``). ``auth``: the one user name
    and password it accepts; with it, AUTH is required before a message.
    """

    def __init__(self, *, tls: str | None = None,
                 auth: tuple[str, str] | None = None) -> None:
        self.port = free_port()
        self.tls = tls
        self.auth = auth
        self.received: list[Received] = []
        self.logins: list[tuple[str, str]] = []
        self._refusals: list[str] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._dir = Path(tempfile.mkdtemp(prefix="test-smtp-"))
        self._cert, self._key = test_certificate(self._dir) if tls else (None, None)
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        """``smtp://127.0.0.1:PORT`` (``smtps://`` with implicit TLS), without credentials."""
        scheme = "smtps" if self.tls == "implicit" else "smtp"
        return f"{scheme}://127.0.0.1:{self.port}"

    def client_tls(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (and verifies it)."""
        assert self._cert is not None, "this server has no TLS"
        return ssl.create_default_context(cafile=str(self._cert))

    def _server_tls(self) -> ssl.SSLContext:
        assert self._cert is not None and self._key is not None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self._cert), str(self._key))
        return context

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.auth is None:
            return AuthResult(success=False, handled=False)
        login = (auth_data.login.decode(), auth_data.password.decode())
        self.logins.append(login)
        return AuthResult(success=login == self.auth, handled=False)

    def start(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.tls == "starttls":
            kwargs["tls_context"] = self._server_tls()
        elif self.tls == "implicit":
            kwargs["ssl_context"] = self._server_tls()
        if self.auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=self.tls is not None)
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                      server_hostname="localhost", **kwargs)
        self._controller.start()

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def refuse_next(self, reply: str, times: int = 1) -> None:
        """Answer the next ``times`` messages with ``reply`` (e.g. ``451 4.3.0 Busy``)."""
        with self._lock:
            self._refusals.extend([reply] * times)

    def _receive(self, envelope: Any) -> str:
        with self._lock:
            if self._refusals:
                return self._refusals.pop(0)
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          bytes(envelope.original_content or envelope.content)))
            self._arrived.notify_all()
        return "250 OK"

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[Received]:
        """The messages received, once there are at least ``count`` (AssertionError after
        ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(self.received)} message(s) received, {count} expected")
                self._arrived.wait(left)
            return list(self.received)

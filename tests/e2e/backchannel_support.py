"""Sessions and a back-channel listener for the e2e tests of what ends sessions
(tests/e2e/test_session_lifecycle.py, test_session_cli.py).

- :func:`open_session_in`: a browser session opened on a store as sign-in does
  (``domain.sessions.open_session``), with a grant per client (``add_session_grant``).
- :class:`BackchannelListener`: an http server on 127.0.0.1 that records the logout tokens
  POSTed to it (a relying party's ``backchannel_logout_uri``), and answers 200.
- :func:`logout_claims`: a logout token verified against the server's ``/jwks.json``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from joserfc import jwt
from joserfc.jwk import KeySet

from domain.sessions import Session, SessionGrant, open_session
from ports.security import SecretsTokenGenerator
from ports.store import Store


async def open_session_in(store: Store, user_id: str, clients: Iterable[str], now: int
                          ) -> Session:
    """A live session of ``user_id`` in which each of ``clients`` got a grant."""
    _, session = await open_session(store, SecretsTokenGenerator(), user_id=user_id,
                                    auth_time=now, amr=("pwd",), now=now)
    for client_id in clients:
        grant = SessionGrant(client_id, SecretsTokenGenerator().new("gr_"))
        updated = await store.add_session_grant(session.id_hash, grant, session.idle_exp, now)
        assert updated is not None
        session = updated
    return session


class BackchannelListener:
    """Records the ``logout_token`` of each POST to ``/bcl``."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self._arrived = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                self.send_response(200 if self.path == "/bcl" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if self.path == "/bcl":
                    with outer._arrived:
                        outer.tokens.extend(form.get("logout_token", []))
                        outer._arrived.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self._server.server_address[1]}/bcl"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[str]:
        """The tokens once ``count`` have arrived (fails after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.tokens) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.tokens)} logout token(s) arrived, not {count}"
                self._arrived.wait(left)
            return list(self.tokens)


@contextmanager
def backchannel_listener() -> Iterator[BackchannelListener]:
    listener = BackchannelListener()
    thread = threading.Thread(target=listener._server.serve_forever, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        listener._server.shutdown()
        listener._server.server_close()
        thread.join(5)


def logout_claims(jwks: dict[str, Any], token: str) -> dict[str, Any]:
    """The claims of a logout token whose signature ``jwks`` verifies."""
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256"])
    assert decoded.header["typ"] == "logout+jwt"
    claims: dict[str, Any] = dict(decoded.claims)
    return claims

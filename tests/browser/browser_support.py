"""What the real-browser tests share: Debian's Chromium, the app under uvicorn on a loopback
port, and a relying party's pages (redirect URIs) on another.

Used by tests/browser/test_signin_browser.py and test_sso_browser.py. In CI (``CI=true``) a
missing browser fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from adapters.memory.store import MemoryStore
from entrypoints.app import create_app
from entrypoints.settings import load_settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RelyingParty:
    """An http server on 127.0.0.1 answering every GET with a small page; ``received`` holds
    each path with its query (the codes and states the browser brought back)."""

    def __init__(self) -> None:
        self.received: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.received.append(self.path)
                body = b"<!doctype html><html lang=en><title>Callback</title><h1>Back</h1>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"


@contextmanager
def relying_party() -> Iterator[RelyingParty]:
    party = RelyingParty()
    thread = threading.Thread(target=party._server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield party
    finally:
        party._server.shutdown()
        party._server.server_close()
        thread.join(5)


@contextmanager
def served_app(clients_toml: Path, env: dict[str, str] | None = None, *,
               host_name: str = "127.0.0.1") -> Iterator[tuple[str, MemoryStore]]:
    """The app on a memory store under uvicorn on a free loopback port: (base URL, store).

    ``host_name`` is the host of the base URL (``EXTERNAL_BASE_URL``): ``localhost`` for
    passkeys, as browsers refuse an IP address as a WebAuthn relying party id."""
    port = free_port()
    base = f"http://{host_name}:{port}"
    settings = load_settings({"CLIENTS_FILE": str(clients_toml), "EXTERNAL_BASE_URL": base,
                              "BIND_ADDR": f"127.0.0.1:{port}", **(env or {})})
    store = MemoryStore()
    config = uvicorn.Config(create_app(settings, store=store), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the app did not start")
        time.sleep(0.05)
    try:
        yield base, store
    finally:
        uv.should_exit = True
        thread.join(timeout=10)

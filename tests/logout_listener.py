"""A back-channel logout endpoint on 127.0.0.1, as a relying party would run it.

Shared by tests/unit/test_backchannel_sender.py and tests/e2e/test_logout.py. Every POST is
recorded (path, content type, form fields). What a path answers is set per path in
``answers``: a list of statuses consumed one per request (the last one repeats), or the
default 200; ``delay`` makes every answer wait that many seconds first (timeouts).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass(frozen=True)
class Received:
    path: str
    content_type: str
    form: dict[str, list[str]]


class LogoutListener:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: dict[str, list[int]] = {}
        self.delay = 0.0
        self._arrived = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                with outer._arrived:
                    outer.received.append(Received(
                        self.path, self.headers.get("Content-Type", ""), parse_qs(body)))
                    outer._arrived.notify_all()
                    plan = outer.answers.get(self.path) or [200]
                    status = plan.pop(0) if len(plan) > 1 else plan[0]
                if outer.delay:
                    time.sleep(outer.delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str = "/logout") -> str:
        return self.base + path

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def wait_for(self, count: int, path: str = "/logout", timeout: float = 10.0) -> list[Received]:
        """Block until ``count`` POSTs reached ``path`` (deliveries run in the background)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.at(path)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(left)
            return self.at(path)


@contextmanager
def logout_listener() -> Iterator[LogoutListener]:
    listener = LogoutListener()
    thread = threading.Thread(target=listener._server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        listener._server.shutdown()
        listener._server.server_close()
        thread.join(5)

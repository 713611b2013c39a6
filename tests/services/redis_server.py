"""A Redis for tests.

Resolved in this order: ``TEST_REDIS_URL``; a Docker engine through testcontainers (only
when ``docker info`` answers); a local ``redis-server`` on a free loopback port. With
``CI=true`` a missing Redis fails the test run; otherwise the tests that need it skip.

:class:`LocalRedis` is also used directly by outage tests: ``stop()`` then ``start()``
brings the server back on the same port (and, with ``appendonly``, the same data).
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.services.local import docker_answers, free_port

_session_url: str | None = None
_session_problem: str | None = None
_session_cleanup: list[Any] = []


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class LocalRedis:
    """A ``redis-server`` child process on 127.0.0.1, with its own temporary directory.

    ``appendonly`` keeps data across ``stop()``/``start()`` (for persistence tests); without
    it nothing is written to disk.
    """

    def __init__(
        self,
        *,
        appendonly: bool = False,
        port: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self._binary = binary
        self._appendonly = appendonly
        self._extra_args = tuple(extra_args)
        self.port = port if port is not None else free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="test-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (on the same port as before, if it ran already) and wait for it."""
        if self._process is not None and self._process.poll() is None:
            return
        args = [
            self._binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self._dir),
            "--save", "",
            "--appendonly", "yes" if self._appendonly else "no",
            "--appendfsync", "always",
            "--daemonize", "no",
            "--logfile", str(self._dir / "redis.log"),
            *self._extra_args,
        ]
        self._process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = (self._dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited at start-up: {log}")
            if _answers(self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def log_tail(self, chars: int = 1500) -> str:
        """The end of the server's log, for diagnostics."""
        try:
            return (self._dir / "redis.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (SIGTERM, so an append-only file is flushed) and wait for it."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def cleanup(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


def _from_docker() -> str:
    # Imported and constructed here only: testcontainers talks to Docker in constructors.
    from testcontainers.redis import RedisContainer

    container = RedisContainer("redis:7-alpine")
    container.start()
    _session_cleanup.append(container.stop)
    host = container.get_container_host_ip()
    port = container.get_exposed_port(6379)
    return f"redis://{host}:{port}/0"


def _from_binary() -> str:
    server = LocalRedis()
    server.start()
    _session_cleanup.append(server.cleanup)
    return server.url


def _resolve() -> tuple[str | None, str | None]:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        return url, None
    docker_problem = "no Docker engine answers"
    if docker_answers():
        try:
            return _from_docker(), None
        except Exception as exc:  # any Docker failure: try the next way
            docker_problem = f"Docker failed: {exc}"
    if shutil.which("redis-server") is None:
        return None, (
            f"no Redis for tests: TEST_REDIS_URL is unset, {docker_problem}, "
            "and redis-server is not installed"
        )
    try:
        return _from_binary(), None
    except (OSError, RuntimeError) as exc:
        return None, f"no Redis for tests: local redis-server failed: {exc}"


def _stop_all() -> None:
    while _session_cleanup:
        _session_cleanup.pop()()


atexit.register(_stop_all)


def session_redis_url() -> str:
    """The URL of a Redis shared by the whole test session (started once, stopped at exit).

    Skips the calling test when none can be had, or fails it with ``CI=true``.
    """
    global _session_url, _session_problem
    if _session_url is None and _session_problem is None:
        _session_url, _session_problem = _resolve()
    if _session_url is None:
        require_redis_or_skip(_session_problem or "no Redis for tests")
    assert _session_url is not None
    return _session_url


def require_redis_or_skip(reason: str) -> None:
    """Skip (or, in CI, fail) because a Redis is missing, naming why."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def local_redis(*, appendonly: bool = False) -> LocalRedis:
    """A fresh :class:`LocalRedis` (not started), or skip/fail when redis-server is missing."""
    try:
        return LocalRedis(appendonly=appendonly)
    except FileNotFoundError as exc:
        require_redis_or_skip(f"this test runs its own Redis: {exc}")
        raise

"""``auth-service serve`` as a real process on a free loopback port, for tests.

Used by the graceful-shutdown test and the multi-instance integration tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.services.local import free_port

CLI = shutil.which("auth-service", path=str(Path(sys.executable).parent)) or "auth-service"

# Variables of the surrounding environment that must not leak into a served process.
_OWN_PREFIXES = ("STORE_", "DATABASE_", "REDIS_", "CLIENT", "BIND_", "SIGNING_", "RATE_LIMIT_",
                 "PURGE_", "LOG_", "EXTERNAL_", "PROMETHEUS_", "TRUSTED_PROXIES")


class ServedProcess:
    """One ``auth-service serve`` process; its output goes to a file read on failure."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            prefix="auth-service-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [CLI, "serve", *args],
            env={**clean, "BIND_ADDR": f"127.0.0.1:{self.port}", "LOG_FORMAT": "json", **env},
            stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> ServedProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"auth-service exited early:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"auth-service did not become ready:\n{self.output()}")

    def output(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def close(self) -> None:
        self.kill()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

"""What the test services share: a free loopback port, and whether a Docker engine answers."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
from pathlib import Path

# The lowest port handed out; below the kernel's ephemeral range (see free_port).
_LOWEST = 10_000
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, below the kernel's
    ephemeral range and not handed out before in this process.

    Below that range, because a server that an outage test stops and starts again must
    find its port free: a port the kernel picked (``bind(0)``) is one it also gives to
    outgoing connections, and one of them can hold it meanwhile ("Address already in
    use" at the restart; seen for a cluster node's bus port).
    """
    low = _ephemeral_low()
    if low - _LOWEST >= 1000:
        for port in random.sample(range(_LOWEST, low), 200):
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def docker_answers() -> bool:
    """True when a Docker engine answers (testcontainers can then start services)."""
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0

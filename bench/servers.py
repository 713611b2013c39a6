"""Processes the benchmark starts: Redis, PostgreSQL, the service and the ceiling app.

Everything listens on 127.0.0.1 on a free port, lives in one temporary directory and is
stopped by :meth:`Processes.stop_all` (by pid: only what this module started).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PG_BIN_DIRS = ("/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")

#: The uvicorn options of ``auth-service serve`` (entrypoints/cli.py), for the apps that
#: bench/run.py serves itself (the ceiling, the seeded service).
UVICORN_OPTIONS = (
    "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--no-server-header",
    "--log-level", "warning",
)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def _process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (uvicorn workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, ()))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by ``pid`` and its descendants."""
    ticks = 0
    for current in _process_tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` and all its descendants (uvicorn workers)."""
    total = 0
    for current in _process_tree(pid):
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class Processes:
    """The processes of one benchmark run, and their logs in one temporary directory."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="auth-bench-"))
        self._procs: list[subprocess.Popen[bytes]] = []
        self._pg_data: Path | None = None
        self._pg_bin: Path | None = None

    def spawn(
        self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("ab")
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd,
            start_new_session=True,
        )
        self._procs.append(proc)
        return proc

    def log_tail(self, name: str, chars: int = 2000) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
        """SIGTERM the process (its own session: uvicorn workers too), SIGKILL if it lingers."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc in self._procs:
            self._procs.remove(proc)

    # Redis

    def start_redis(self, cpus: str) -> str:
        """A throw-away redis-server (no persistence) pinned to ``cpus``; returns its URL."""
        port = free_port()
        proc = self.spawn("redis", [
            "taskset", "-c", cpus, "redis-server", "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.tmp),
        ])
        _wait_port(port, 10, proc)
        return f"redis://127.0.0.1:{port}/0"

    # PostgreSQL

    def _pg(self, *args: str, cpus: str | None = None) -> None:
        assert self._pg_bin is not None
        command = [str(self._pg_bin / args[0]), *args[1:]]
        if cpus is not None:
            command = ["taskset", "-c", cpus, *command]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stderr.strip()[-500:]}")

    def start_postgres(self, cpus: str) -> str:
        """A throw-away PostgreSQL cluster pinned to ``cpus``; returns the server URL."""
        bin_dir = next((Path(d) for d in PG_BIN_DIRS if Path(d, "pg_ctl").exists()), None)
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL binaries in " + ", ".join(PG_BIN_DIRS))
        self._pg_bin = bin_dir
        pg_dir = self.tmp / "pg"
        pg_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.tmp, user="postgres", group="postgres")
            shutil.chown(pg_dir, user="postgres", group="postgres")
        self._pg_data = pg_dir / "data"
        self._pg("initdb", "-D", str(self._pg_data), "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--no-sync")
        port = free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={pg_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200 -c shared_buffers=256MB"
        )
        self._pg("pg_ctl", "-D", str(self._pg_data), "-o", options,
                 "-l", str(pg_dir / "server.log"), "-w", "-t", "60", "start", cpus=cpus)
        _wait_port(port, 30)
        return f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def stop_postgres(self) -> None:
        if self._pg_data is not None:
            self._pg("pg_ctl", "-D", str(self._pg_data), "-m", "immediate", "-w", "stop")
            self._pg_data = None

    def stop_all(self) -> None:
        for proc in list(self._procs):
            self.stop(proc)
        try:
            self.stop_postgres()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


class HttpServer:
    """One server process under test (uvicorn, one or more workers) on ``port``."""

    def __init__(self, procs: Processes, name: str, proc: subprocess.Popen[bytes], port: int):
        self.procs = procs
        self.name = name
        self.proc = proc
        self.port = port
        self.base = f"http://127.0.0.1:{port}"

    def wait_ready(self, path: str, timeout: float, method: str = "GET", **kw: object) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.procs.log_tail(self.name)
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{log}")
            try:
                response = httpx.request(method, self.base + path, timeout=2, **kw)  # type: ignore[arg-type]
                if response.status_code < 500:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout} s: {last}\n"
                           f"{self.procs.log_tail(self.name)}")

    def rss_bytes(self) -> int:
        return tree_rss_bytes(self.proc.pid)

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.procs.stop(self.proc)


def serve_app(
    procs: Processes, name: str, factory: str, cpus: str, env: Mapping[str, str],
) -> HttpServer:
    """``uvicorn <factory> --factory`` with the options of ``auth-service serve``."""
    port = free_port()
    proc = procs.spawn(name, [
        "taskset", "-c", cpus, str(VENV_BIN / "python"), "-m", "uvicorn", factory, "--factory",
        "--host", "127.0.0.1", "--port", str(port), *UVICORN_OPTIONS,
    ], env)
    return HttpServer(procs, name, proc, port)


def serve_service(
    procs: Processes, name: str, cpus: str, env: Mapping[str, str], workers: int = 1,
) -> HttpServer:
    """The real ``auth-service serve --workers N``."""
    port = free_port()
    proc = procs.spawn(name, [
        "taskset", "-c", cpus, str(VENV_BIN / "auth-service"), "serve", "--workers", str(workers),
    ], {**env, "BIND_ADDR": f"127.0.0.1:{port}"})
    return HttpServer(procs, name, proc, port)


async def sql_execute(url: str, *statements: str) -> None:
    """Run statements on the database at ``url`` (one connection, in order)."""
    import asyncpg

    from migrations.runner import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def new_database(server_url: str, name: str) -> str:
    """A new, migrated database on the server; returns its URL."""
    from migrations.runner import migrate

    asyncio.run(sql_execute(server_url, f'DROP DATABASE IF EXISTS "{name}"',
                            f'CREATE DATABASE "{name}"'))
    url = server_url.rsplit("/", 1)[0] + "/" + name
    asyncio.run(migrate(url))
    return url

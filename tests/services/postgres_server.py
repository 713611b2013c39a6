"""A PostgreSQL server for tests.

Resolved in this order: ``TEST_DATABASE_URL``; a Docker engine with testcontainers (only
when ``docker info`` answers); local server binaries (``initdb``/``pg_ctl``, run as the
``postgres`` user because ``pg_ctl`` refuses root) on a temporary data directory and a free
loopback port. With ``CI=true`` a missing server fails the run; otherwise tests skip.

:class:`LocalPostgres` is also used directly by outage tests, which stop and start a
private server of their own.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.services.local import docker_answers, free_port

_BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/usr/pgsql-*/bin")


class PostgresUnavailable(Exception):
    """No PostgreSQL could be found or started."""


def find_bin_dir() -> Path | None:
    """A directory holding ``initdb`` and ``pg_ctl`` (newest version first), or None."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    candidates: list[str] = []
    for pattern in _BIN_GLOBS:
        candidates.extend(glob.glob(pattern))
    for directory in sorted(candidates, reverse=True):
        if (Path(directory) / "pg_ctl").exists() and (Path(directory) / "initdb").exists():
            return Path(directory)
    return None


class LocalPostgres:
    """A throw-away PostgreSQL cluster from local binaries, on 127.0.0.1 with trust auth.

    Durability is switched off (``fsync``, ``synchronous_commit``, ``full_page_writes``)
    because the data is thrown away; a clean ``stop()`` still keeps committed data for the
    next ``start()``.
    """

    def __init__(self, bin_dir: Path | None = None) -> None:
        found = bin_dir or find_bin_dir()
        if found is None:
            raise PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl) found")
        self.bin_dir = found
        self.port = free_port()
        self._tmp = Path(tempfile.mkdtemp(prefix="auth-service-pg-"))
        self.data_dir = self._tmp / "data"
        self._initialised = False
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"{args[0]} failed ({result.returncode}): {result.stderr.strip()[-500:]}"
            )

    def _init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self._tmp, user="postgres", group="postgres")
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--no-sync",
        )
        self._initialised = True

    def start(self) -> None:
        """Start the server (initialising the cluster the first time) and wait until ready."""
        if not self._initialised:
            self._init()
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self._tmp} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-o", options,
            "-l", str(self._tmp / "server.log"), "-w", "-t", "60", "start",
        )
        self.running = True
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise PostgresUnavailable("PostgreSQL did not accept connections in time")

    def stop(self) -> None:
        """Stop the server (fast shutdown: connections are cut, committed data stays)."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
            self.running = False

    def destroy(self) -> None:
        """Stop the server and delete its data directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)


def _start_container() -> str:
    # Imported and constructed here only: testcontainers builds a Docker client eagerly.
    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer("postgres:15-alpine", driver=None)
    container.start()
    atexit.register(container.stop)
    return str(container.get_connection_url())


_session_url: str | None = None
_session_error: str | None = None


def _resolve() -> str:
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        return explicit
    if docker_answers():
        return _start_container()
    server = LocalPostgres()
    try:
        server.start()
    except BaseException:
        server.destroy()
        raise
    atexit.register(server.destroy)
    return server.url


def postgres_url() -> str:
    """The URL of the session's PostgreSQL server, starting one on first use.

    Skips the calling test when none can be had, or fails it when ``CI=true``.
    """
    global _session_url, _session_error
    if _session_url is None and _session_error is None:
        try:
            _session_url = _resolve()
        except (PostgresUnavailable, OSError) as exc:
            _session_error = str(exc)
    if _session_url is None:
        message = f"no PostgreSQL available: {_session_error}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return _session_url


def local_postgres_or_skip() -> LocalPostgres:
    """A new, not yet started :class:`LocalPostgres`, or skip/fail as ``postgres_url`` does."""
    try:
        return LocalPostgres()
    except PostgresUnavailable as exc:
        message = f"no local PostgreSQL binaries for this test: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


# Fresh databases: one migrated template per session, copied for each test (a file copy
# inside PostgreSQL, much faster than running the migrations every time).
_template_name = f"auth_template_{os.getpid()}"
_template_ready = False


def _with_database(url: str, name: str) -> str:
    base, _, _query = url.partition("?")
    prefix = base.rsplit("/", 1)[0]
    return f"{prefix}/{name}"


async def _admin_execute(server_url: str, *statements: str) -> None:
    import asyncpg

    from migrations.runner import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def create_empty_database(server_url: str) -> str:
    """A new database with no tables at all; returns its URL."""
    name = f"auth_empty_{uuid.uuid4().hex[:16]}"
    await _admin_execute(server_url, f'CREATE DATABASE "{name}"')
    return _with_database(server_url, name)


async def create_migrated_database(server_url: str) -> str:
    """A new database at the head migration, with no rows; returns its URL."""
    global _template_ready
    from migrations.runner import migrate

    if not _template_ready:
        await _admin_execute(
            server_url,
            f'DROP DATABASE IF EXISTS "{_template_name}"',
            f'CREATE DATABASE "{_template_name}"',
        )
        await migrate(_with_database(server_url, _template_name))
        _template_ready = True
        atexit.register(_drop_template, server_url)
    name = f"auth_test_{uuid.uuid4().hex[:16]}"
    await _admin_execute(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{_template_name}"')
    return _with_database(server_url, name)


async def drop_database(database_url: str) -> None:
    """Drop the database of this URL, cutting any connection still open to it."""
    server_url = _with_database(database_url, "postgres")
    name = database_url.partition("?")[0].rsplit("/", 1)[1]
    await _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drop_template(server_url: str) -> None:
    import asyncio
    import contextlib

    # Best effort at interpreter exit: the server may already be gone.
    with contextlib.suppress(Exception):
        asyncio.run(_admin_execute(server_url, f'DROP DATABASE IF EXISTS "{_template_name}"'))


# Per-test isolation for suites that only need empty tables: one migrated database for
# the session, emptied before each test. TRUNCATE takes milliseconds where CREATE DATABASE
# from a template takes about a second (it copies the catalogs through the WAL).
_shared_database: str | None = None


async def empty_migrated_database() -> str:
    """The session's migrated database, with every table emptied; returns its URL."""
    global _shared_database
    if _shared_database is None:
        _shared_database = await create_migrated_database(postgres_url())
    await _admin_execute(_shared_database, _TRUNCATE_EVERYTHING)
    return _shared_database


# Every table but the migration ledger, found at run time so new migrations are covered.
_TRUNCATE_EVERYTHING = """
DO $$
DECLARE names text;
BEGIN
  SELECT string_agg(format('%I', tablename), ', ') INTO names
  FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations';
  IF names IS NOT NULL THEN
    EXECUTE 'TRUNCATE ' || names || ' CASCADE';
  END IF;
END $$;
"""

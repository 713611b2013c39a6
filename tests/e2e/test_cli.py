"""The ``auth-service`` command: bad configuration exits 2 with one line; serve answers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

CLI = shutil.which("auth-service", path=str(Path(sys.executable).parent)) or "auth-service"


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STORE_", "DATABASE_",
             "REDIS_", "CLIENT", "BIND_", "SIGNING_"))}
    return subprocess.run([CLI, *args], env={**clean, **env}, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize(
    ("env", "args", "variable"),
    [
        ({"STORE_BACKEND": "mongo"}, ("serve",), "STORE_BACKEND"),
        ({"STORE_BACKEND": "sql"}, ("serve",), "DATABASE_URL"),
        ({"BIND_ADDR": "nowhere"}, ("serve",), "BIND_ADDR"),
        ({"CLIENT_CREDENTIALS": "broken"}, ("serve",), "CLIENT_CREDENTIALS"),
        ({}, ("serve", "--workers", "2"), "--workers"),
        ({"STORE_BACKEND": "sql"}, ("migrate",), "DATABASE_URL"),
        ({"STORE_BACKEND": "sql", "STORE_URL": "mysql://db/auth"}, ("migrate",), "STORE_URL"),
        ({"STORE_BACKEND": "sql"}, ("user", "set-password", "alice"), "DATABASE_URL"),
        # Each worker would generate (and publish) a signing key of its own.
        ({"REDIS_URL": "redis://127.0.0.1:1"}, ("serve", "--workers", "2"), "SIGNING_KEY_FILE"),
        ({"STORE_BACKEND": "sql", "DATABASE_URL": "postgresql://auth@127.0.0.1:1/auth"},
         ("serve", "--workers", "4"), "SIGNING_KEY_FILE"),
    ],
)
def test_bad_configuration_exits_2_with_one_line(
    env: dict[str, str], args: tuple[str, ...], variable: str
) -> None:
    result = run_cli(*args, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_an_unreachable_database_at_start_up_exits_2_with_one_line() -> None:
    started = time.monotonic()
    result = run_cli("serve", env={
        "STORE_BACKEND": "sql", "DATABASE_URL": f"postgresql://auth@127.0.0.1:{free_port()}/auth",
        "DATABASE_CONNECT_TIMEOUT_SECONDS": "2",
    })
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("auth-service: configuration error: DATABASE_URL: ")
    assert "Traceback" not in result.stderr
    assert 2 <= time.monotonic() - started < 30  # retried with back-off, then gave up


def test_migrate_against_an_unreachable_database_exits_2_with_one_line() -> None:
    # As at start-up: retried with back-off for DATABASE_CONNECT_TIMEOUT_SECONDS, then one line.
    result = run_cli("migrate", env={
        "STORE_BACKEND": "sql", "DATABASE_URL": f"postgresql://auth@127.0.0.1:{free_port()}/auth",
        "DATABASE_CONNECT_TIMEOUT_SECONDS": "1",
    })
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("auth-service: configuration error: DATABASE_URL: ")
    assert "Traceback" not in result.stderr


def test_migrate_on_a_backend_without_migrations_says_so_and_succeeds() -> None:
    result = run_cli("migrate", env={})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "nothing to migrate: STORE_BACKEND=hybrid has no migrations"


def test_purge_with_hybrid_without_redis_explains_that_the_server_purges() -> None:
    result = run_cli("purge", env={})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("nothing to purge: with STORE_BACKEND=hybrid, the "
                                    "authorization codes, tokens and ephemeral state")
    assert "live in the serving process, whose janitor purges them" in result.stdout


def test_mongo_names_the_valid_choices() -> None:
    result = run_cli("serve", env={"STORE_BACKEND": "mongo"})
    assert "hybrid, sql" in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_health_on_bind_addr() -> None:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STORE_", "REDIS_"))}
    process = subprocess.Popen(
        [CLI, "serve"], env={**clean, "BIND_ADDR": f"127.0.0.1:{port}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
        assert ready.status_code == 200
        assert ready.json()["components"] == {"store": "up"}
        openapi = httpx.get(f"http://127.0.0.1:{port}/schema/openapi.json", timeout=5)
        assert openapi.status_code == 200 and openapi.json()["info"]["title"] == "auth-service"
    finally:
        process.terminate()
        process.wait(timeout=20)

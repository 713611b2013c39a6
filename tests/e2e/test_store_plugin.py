"""A store backend from another package, selected by name, with no change to this project.

``tests/store_plugin`` is a separate distribution (``auth-service-filestore``) that
``make install`` installs into the venv; it registers ``filestore`` in the
``auth_service.stores`` entry-point group, as any outside adapter would. Here it is served,
migrated, purged and used by the CLI; its own test suite runs in its own pytest process.
A plugin that fails to import is a distribution put on ``PYTHONPATH`` for one test only.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth_filestore import open_store

from domain.entities import User
from ports.store_settings import StoreSettings
from tests.e2e.test_cli import CLI, run_cli
from tests.services.auth_service_process import ServedProcess

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "store_plugin"
CLIENT_ID = "svc"
CLIENT_SECRET = "p" * 40


@pytest.fixture
def store_env(tmp_path: Path) -> dict[str, str]:
    return {"STORE_BACKEND": "filestore", "STORE_URL": f"file://{tmp_path / 'auth.store'}"}


@pytest.fixture
def served(store_env: dict[str, str]) -> Iterator[ServedProcess]:
    process = ServedProcess({**store_env, "CLIENT_CREDENTIALS": f"{CLIENT_ID}:{CLIENT_SECRET}"})
    try:
        yield process.wait_ready()
    finally:
        process.terminate()
        process.close()


def test_serve_issues_and_introspects_tokens_on_the_plugin_backend(
    served: ServedProcess, store_env: dict[str, str]
) -> None:
    ready = httpx.get(f"{served.url}/health/ready", timeout=5)
    assert ready.json()["components"] == {"store": "up"}
    issued = httpx.post(f"{served.url}/oauth/token", data={"grant_type": "client_credentials"},
                        auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    answer = httpx.post(f"{served.url}/oauth/introspect", data={"token": token},
                        auth=(CLIENT_ID, CLIENT_SECRET), timeout=10).json()
    assert answer["active"] is True and answer["client_id"] == CLIENT_ID
    # The token is in the plugin's file: another process opening it sees the token too.
    metrics = httpx.get(f"{served.url}/metrics", timeout=5).text
    assert 'auth_store_records{part="access_tokens"} 1.0' in metrics
    assert run_cli("migrate", env=store_env).stdout.strip() == "applied 0 migration(s)"


def test_the_cli_works_on_the_plugin_backend_through_the_port(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    migrated = run_cli("migrate", env=store_env)
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.strip() == "applied 1 migration(s): 0001_create_store_file"

    settings = StoreSettings(backend="filestore", url=store_env["STORE_URL"])

    async def add_alice() -> str:
        store = await open_store(settings)
        user = await store.create_user(User(user_name="alice"))
        await store.close()
        return user.id

    alice_id = asyncio.run(add_alice())
    result = subprocess.run(
        [CLI, "user", "set-password", "ALICE"], input="correct horse battery\n",
        env=cli_env(store_env), capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == \
        f"password set for alice ({alice_id}); its tokens were revoked"

    async def password_hash() -> str | None:
        store = await open_store(settings)
        credentials = await store.get_credentials(alice_id)
        await store.close()
        return credentials.password_hash

    assert (asyncio.run(password_hash()) or "").startswith("$argon2id$")
    purged = run_cli("purge", env=store_env)
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.startswith("purged 0 expired record(s)")
    assert "device_authorizations=0 account_tokens=0" in purged.stdout


def test_a_bad_store_backend_lists_the_installed_backends() -> None:
    result = run_cli("serve", env={"STORE_BACKEND": "mongo"})
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line == ("auth-service: configuration error: STORE_BACKEND: must be one of the "
                    "installed backends filestore, hybrid, sql (got 'mongo')")


def test_a_plugin_that_fails_to_import_is_one_line_naming_its_package(tmp_path: Path) -> None:
    # A distribution on PYTHONPATH for this test only: its entry point names a module that
    # raises ImportError, as a plugin whose driver is not installed does.
    dist_info = tmp_path / "auth_service_brokenstore-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: auth-service-brokenstore\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[auth_service.stores]\nbrokenstore = auth_brokenstore:open_store\n")
    (tmp_path / "auth_brokenstore.py").write_text(textwrap.dedent("""\
        raise ImportError("the brokenstore driver is not installed")
    """))
    env = {"STORE_BACKEND": "brokenstore", "PYTHONPATH": str(tmp_path)}
    for command in (("serve",), ("migrate",), ("purge",), ("user", "set-password", "alice")):
        result = run_cli(*command, env=env)
        assert result.returncode == 2, command
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("auth-service: configuration error: STORE_BACKEND: backend "
                               "'brokenstore' from package 'auth-service-brokenstore' failed "
                               "to import"), line
        assert "the brokenstore driver is not installed" in line
        assert "Traceback" not in result.stderr + result.stdout


def test_the_plugin_suite_passes_from_its_own_project_in_strict_mode() -> None:
    """The contract suite and filter agreement, run as the plugin's own tests would be."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs"], cwd=PLUGIN_DIR,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert "configfile: pytest.ini" in result.stdout
    assert "asyncio: mode=Mode.STRICT" in result.stdout
    summary = result.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None and int(passed.group(1)) >= 140, summary
    assert "skipped" not in summary and "failed" not in summary and "error" not in summary


def cli_env(env: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("STORE_", "DATABASE_", "REDIS_", "CLIENT", "BIND_"))}
    return {**clean, **env}

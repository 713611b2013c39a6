"""``auth-service client initial-token``: a token the running service accepts, on a backend
a command can reach; a clear refusal on one it cannot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import _sql_backend
from tests.e2e.registration_support import registrar
from tests.e2e.test_cli import run_cli
from tests.e2e.test_registration import WEB_APP


@pytest.mark.postgres
def test_an_initial_token_from_the_cli_registers_as_many_clients_as_its_uses(
    tmp_path: Path,
) -> None:
    backend = _sql_backend()
    made = run_cli("client", "initial-token", "--uses", "2", "--expires-in", "600", "--json",
                   env=backend.env)
    assert made.returncode == 0, made.stderr
    issued = json.loads(made.stdout)
    assert issued["uses"] == 2 and issued["expires_at"] == issued["created_at"] + 600
    token = issued["initial_access_token"]
    plain = run_cli("client", "initial-token", env=backend.env)
    assert plain.returncode == 0 and plain.stdout.strip().startswith("iat_")
    with registrar(backend, tmp_path, mode="token") as r:
        # The app's clock is fake and far in the past: the token has not expired for it.
        assert r.register(WEB_APP, token).status_code == 201
        assert r.register(WEB_APP, token).status_code == 201
        assert r.register(WEB_APP, token).status_code == 401
        assert r.register(WEB_APP, plain.stdout.strip()).status_code == 201


def test_a_store_the_command_cannot_reach_is_refused_with_one_line() -> None:
    result = run_cli("client", "initial-token", env={"STORE_BACKEND": "hybrid"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "POST /admin/initial-access-tokens" in lines[0], result.stderr


@pytest.mark.parametrize("args", [("--uses", "0"), ("--expires-in", "-1"),
                                  ("--expires-in", "999999999")])
def test_bad_options_exit_2_with_one_line(args: tuple[str, ...]) -> None:
    result = run_cli("client", "initial-token", *args, env={"STORE_BACKEND": "hybrid"})
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr

"""``auth-service client ...``: stored clients from a terminal, on sql (a separate process
from the server, sharing its database), and refused where it cannot reach the clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.secret_sealing import new_key_text
from domain.client_assertion import sealed_secret_context as sealing_context
from tests.e2e.admin_support import ADMIN_ID, STATIC_ID, admin_app, environment
from tests.e2e.conftest import StoreBackend
from tests.e2e.test_cli import run_cli

REDIRECT = "https://cli.example/cb"


class Cli:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, status: int = 0, **env: str) -> Any:
        result = run_cli("client", *args, env={**self.env, **env})
        assert result.returncode == status, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        self.stderr = result.stderr
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def events(self) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.stderr.splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("logger") == "auth_service.events"]


@pytest.fixture
def backend() -> StoreBackend:
    from tests.services.postgres_server import empty_migrated_database

    url = asyncio.run(empty_migrated_database())
    return StoreBackend("sql", env={"STORE_BACKEND": "sql", "DATABASE_URL": url})


@pytest.fixture
def cli(backend: StoreBackend, tmp_path: Path) -> Iterator[Cli]:
    yield Cli({**environment(tmp_path, backend), "LOG_FORMAT": "json"})


def test_hybrid_without_redis_is_refused_with_one_line() -> None:
    for args in (("list",), ("create", "--name", "x", "--scope", "read",
                             "--grant-type", "client_credentials")):
        result = run_cli("client", *args, env={})
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert (f"client {args[0]} cannot reach the stored clients of STORE_BACKEND=hybrid"
                in lines[0])
        assert "REDIS_URL" in lines[0] and "/admin/clients" in lines[0]


@pytest.mark.postgres
def test_create_show_list_update_rotate_delete(cli: Cli, backend: StoreBackend,
                                               tmp_path: Path) -> None:
    created = cli.json("create", "--client-id", "reports", "--name", "Reports",
                       "--grant-type", "client_credentials", "--scope", "read")
    old = created["client_secret"]
    assert created["client_id"] == "reports" and created["version"] == 1
    assert "shown only now" in cli.stderr
    (event,) = cli.events()
    assert event["event"] == "client_created" and event["actor"] == "cli"
    assert old not in cli.stderr

    shown = cli.json("show", "reports")
    assert shown["client_name"] == "Reports" and "client_secret" not in shown
    assert old not in json.dumps(shown)
    text = cli("show", STATIC_ID).stdout
    assert "static: True" in text

    listed = {c["client_id"]: c for c in cli.json("list")}
    assert {"reports", STATIC_ID, ADMIN_ID} <= set(listed)
    assert listed[STATIC_ID]["static"] is True and listed["reports"]["static"] is False
    assert "reports\tv1\tclient_secret_basic\tread\tReports" in cli("list").stdout

    updated = cli.json("update", "reports", "--name", "Reports v2")
    assert updated["client_name"] == "Reports v2" and updated["version"] == 2
    assert updated["scope"] == "read" and updated["grant_types"] == ["client_credentials"]
    stale = cli("update", "reports", "--name", "v3", "--if-version", "1", status=1)
    assert "changed since that version" in stale.stderr

    new = cli("rotate-secret", "reports", "--retire-old-after", "0").stdout.strip()
    assert new.startswith("cs_") and new != old
    assert [e["event"] for e in cli.events()] == ["client_secret_added"]

    # The server, another process on the same database, sees it all at once.
    with admin_app(backend, tmp_path) as server:
        assert server.client_token("reports", new, "read").status_code == 200
        assert server.client_token("reports", old).json()["error"] == "invalid_client"
        created_by_api = server.create(client_id="from-api", grant_types=["client_credentials"],
                                       scope="read")
    assert cli.json("show", "from-api")["client_id"] == created_by_api["client_id"]

    assert cli.json("delete", "reports") == {"client_id": "reports", "deleted": True}
    assert "no client 'reports'" in cli("show", "reports", status=1).stderr


@pytest.mark.postgres
def test_create_from_a_metadata_file_with_flags_winning(cli: Cli, tmp_path: Path) -> None:
    metadata = tmp_path / "spa.json"
    metadata.write_text(json.dumps({
        "client_id": "spa", "client_name": "from the file",
        "token_endpoint_auth_method": "none", "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"], "scope": "openid profile",
        "allowed_cors_origins": ["https://cli.example"]}))
    created = cli.json("create", "--metadata", str(metadata), "--name", "from a flag",
                       "--require-mfa")
    assert created["client_name"] == "from a flag" and created["require_mfa"] is True
    assert created["token_endpoint_auth_method"] == "none" and "client_secret" not in created
    assert created["allowed_cors_origins"] == ["https://cli.example"]
    assert cli("rotate-secret", "spa", status=1).stderr.strip().endswith(
        "authenticates with none, which uses no secret")


@pytest.mark.postgres
@pytest.mark.parametrize(("args", "says"), [
    (("create", "--scope", "read", "--grant-type", "password"), "grant_types"),
    (("create", "--scope", "read", "--redirect-uri", "https://x.example/#f"), "redirect_uris"),
    (("create", "--client-id", STATIC_ID, "--scope", "read", "--grant-type",
      "client_credentials"), "static client"),
    (("update", STATIC_ID, "--name", "x"), "static client"),
    (("delete", STATIC_ID), "static client"),
    (("rotate-secret", ADMIN_ID), "static client"),
    (("update", "ghost", "--name", "x"), "no client 'ghost'"),
    (("rotate-secret", "ghost", "--expires-in", "0"), "--expires-in must be at least 1"),
    (("create", "--metadata", "/nonexistent.json"), "cannot read /nonexistent.json"),
    (("create", "--grant-type", "client_credentials", "--scope", "re\x7fad"), "scope"),
], ids=["bad-grant", "bad-uri", "static-create", "static-update", "static-delete",
        "static-rotate", "unknown", "bad-expiry", "missing-file", "bad-scope"])
def test_refusals_are_one_line_and_exit_1(cli: Cli, args: tuple[str, ...], says: str) -> None:
    result = cli(*args, status=1)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert lines[0].startswith(f"auth-service: client {args[0]}: ")


@pytest.mark.postgres
def test_unknown_keys_in_a_metadata_file_are_refused(cli: Cli, tmp_path: Path) -> None:
    metadata = tmp_path / "bad.json"
    metadata.write_text(json.dumps({"scope": "read", "grant_types": ["client_credentials"],
                                    "redirect_url": "https://x.example/cb"}))
    assert "unknown key(s): redirect_url" in cli("create", "--metadata", str(metadata),
                                                 status=1).stderr
    assert cli("create", "--client-id", "dup", "--scope", "read", "--grant-type",
               "client_credentials").returncode == 0
    assert "exists" in cli("create", "--client-id", "dup", "--scope", "read",
                           "--grant-type", "client_credentials", status=1).stderr


@pytest.mark.postgres
def test_client_secret_jwt_secrets_are_sealed_with_the_servers_key(
    cli: Cli, backend: StoreBackend, tmp_path: Path
) -> None:
    args = ("create", "--client-id", "jwt", "--auth-method", "client_secret_jwt",
            "--grant-type", "client_credentials", "--scope", "read")
    # Without the server's key, a sealed secret would open nowhere: refused, nothing stored.
    refused = cli(*args, status=2, SIGNING_KEY_FILE="")
    assert "SEALING_KEY_FILE" in refused.stderr.strip().splitlines()[-1]
    assert "no client 'jwt'" in cli("show", "jwt", status=1).stderr

    key_file = tmp_path / "sealing.key"
    key_file.write_text(new_key_text())
    created = cli(*args, "--json", SEALING_KEY_FILE=str(key_file))
    secret = json.loads(created.stdout)["client_secret"]
    with admin_app(backend, tmp_path, SEALING_KEY_FILE=str(key_file)) as server:
        services = server.app.state.services
        stored = server.call(services.store.get_client, "jwt")
        (held,) = stored.secrets
        assert secret not in held.sealed
        assert services.secret_sealer.open(held.sealed, sealing_context("jwt")).plaintext \
            == secret


@pytest.mark.postgres
def test_a_resource_server_is_created_and_dropped_from_the_cli(cli: Cli, tmp_path: Path
                                                               ) -> None:
    created = cli.json("create", "--client-id", "orders-api", "--grant-type",
                       "client_credentials", "--scope", "read", "--resource-uri",
                       "https://orders.example/api", "--resource-scope", "orders:read",
                       "--access-token-format", "jwt", "--introspect-any-token")
    assert (created["resource_uri"], created["resource_scopes"],
            created["access_token_format"], created["introspect_any_token"]) == \
        ("https://orders.example/api", "orders:read", "jwt", True)
    cli("create", "--client-id", "twin", "--grant-type", "client_credentials", "--scope",
        "read", "--resource-uri", "https://orders.example/api", status=1)
    assert "resource_uri" in cli.stderr
    plain = tmp_path / "plain.json"
    plain.write_text('{"resource_uri": null}')
    updated = cli.json("update", "orders-api", "--metadata", str(plain))
    assert "resource_uri" not in updated and updated["version"] == 2
    assert cli.json("create", "--client-id", "twin", "--grant-type", "client_credentials",
                    "--scope", "read", "--resource-uri",
                    "https://orders.example/api")["resource_uri"] == "https://orders.example/api"

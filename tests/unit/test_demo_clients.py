"""scripts/demo_clients.py (``make run``): the demo never offers a service scope to users."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from adapters.memory.store import MemoryStore
from domain.authorization_request import RedirectError, validate_authorization_request
from domain.client_directory import ClientDirectory
from domain.scopes import SERVICE_SCOPES
from entrypoints.clients import load_clients
from entrypoints.settings import load_settings

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo_clients.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_clients", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_only_the_client_credentials_client_holds_service_scopes(tmp_path: Path) -> None:
    path = tmp_path / "clients.toml"
    _script().main([str(path)])
    registry = load_clients(load_settings({"CLIENTS_FILE": str(path)}))
    demo, provisioner = registry.get("demo"), registry.get("demo-provisioner")
    assert demo is not None and provisioner is not None
    assert not demo.scopes & SERVICE_SCOPES
    assert provisioner.grant_types == {"client_credentials"}
    assert {"scim:read", "scim:write"} <= provisioner.scopes
    outcome = await validate_authorization_request(ClientDirectory(registry, MemoryStore()), {
        "client_id": ["demo"], "redirect_uri": ["http://localhost:9000/callback"],
        "response_type": ["code"], "scope": ["openid scim:write"],
        "code_challenge": ["E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"],
        "code_challenge_method": ["S256"]})
    assert isinstance(outcome, RedirectError) and outcome.error == "invalid_scope"


def test_an_old_demo_file_is_rewritten_keeping_the_demo_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "clients.toml"
    old_secret = "old-demo-secret-" + "x" * 32
    path.write_text(f"""[[clients]]
client_id = "demo"
secret = "{old_secret}"
grant_types = ["authorization_code", "client_credentials", "refresh_token"]
scopes = ["openid", "read", "scim:read", "scim:write"]
redirect_uris = ["http://localhost:9000/callback"]
""")
    script = _script()
    script.main([str(path), "--secret", "demo"])
    assert capsys.readouterr().out.strip() == old_secret
    demo = load_clients(load_settings({"CLIENTS_FILE": str(path)})).get("demo")
    assert demo is not None and "scim:write" not in demo.scopes
    script.main([str(path), "--secret", "demo-provisioner"])
    provisioner_secret = capsys.readouterr().out.strip()
    script.main([str(path), "--secret", "demo-provisioner"])
    assert capsys.readouterr().out.strip() == provisioner_secret  # written once

"""``auth-service serve`` start-up checks: several workers need one signing key, and an
issuer served over plain http to other machines is warned about once."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from entrypoints import cli
from entrypoints.settings import load_settings

WARNING = "EXTERNAL_BASE_URL is http"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """``uvicorn.run`` recorded instead of run; a clean environment for the settings."""
    import uvicorn

    for name in ("STORE_BACKEND", "DATABASE_URL", "REDIS_URL", "SIGNING_KEY_FILE",
                 "CLIENTS_FILE", "CLIENT_CREDENTIALS", "EXTERNAL_BASE_URL", "BIND_ADDR"):
        monkeypatch.delenv(name, raising=False)
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    return calls


def test_workers_without_a_signing_key_file_exit_2_with_one_line(
    served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1")  # past the hybrid check
    assert cli.main(["serve", "--workers", "3"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("auth-service: configuration error: SIGNING_KEY_FILE: ")
    assert "--workers" in lines[0]
    assert served == []  # nothing started


def test_one_worker_without_a_signing_key_file_still_serves(
    served: list[dict[str, Any]],
) -> None:
    assert cli.main(["serve"]) == 0
    assert len(served) == 1 and served[0]["workers"] == 1


def test_an_http_issuer_on_a_public_host_is_warned_about_once_at_start_up(
    served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("EXTERNAL_BASE_URL", "http://auth.example.com")
    with caplog.at_level(logging.WARNING, logger="auth_service.settings"):
        assert cli.main(["serve"]) == 0
    warnings = [r for r in caplog.records if r.getMessage().startswith(WARNING)]
    assert len(warnings) == 1 and len(served) == 1
    assert "auth.example.com" in warnings[0].getMessage()
    assert "https" in warnings[0].getMessage()


@pytest.mark.parametrize(("base_url", "warned"), [
    ("http://auth.example.com", True),
    ("http://10.1.2.3:8080", True),
    ("http://0.0.0.0:8080", True),
    ("http://localhost:8080", False),
    ("http://127.0.0.1:8080", False),
    ("http://127.9.9.9", False),
    ("http://[::1]:8080", False),
    ("http://dev.localhost", False),
    ("https://auth.example.com", False),
])
def test_which_issuers_are_warned_about(
    base_url: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="auth_service.settings"):
        assert cli.warn_if_cleartext(load_settings({"EXTERNAL_BASE_URL": base_url})) is warned
    assert any(r.getMessage().startswith(WARNING) for r in caplog.records) is warned


def test_a_client_alg_without_a_signing_key_exits_2_with_one_line(
    served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Any,
) -> None:
    clients = tmp_path / "clients.toml"
    clients.write_text('[[clients]]\nclient_id = "es"\npublic = true\nscope = "openid"\n'
                       'redirect_uris = ["https://app.example/cb"]\n'
                       'id_token_signed_response_alg = "ES256"\n')
    monkeypatch.setenv("CLIENTS_FILE", str(clients))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1")
    assert cli.main(["serve"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "CLIENTS_FILE" in lines[0] and "ES256" in lines[0]
    assert served == []

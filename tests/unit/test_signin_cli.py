"""``auth-service user set-password``: refused with hybrid, reads the password from stdin."""

from __future__ import annotations

import io

import pytest

from entrypoints.cli import main
from entrypoints.user_cli import read_password


def test_hybrid_explains_that_users_are_managed_with_scim(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STORE_BACKEND", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    assert main(["user", "set-password", "alice"]) == 2
    err = capsys.readouterr().err
    assert "SCIM" in err and "memory" in err and "STORE_BACKEND" in err


def test_password_is_the_first_line_of_piped_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("two words\r\nignored\n"))
    assert read_password() == "two words"

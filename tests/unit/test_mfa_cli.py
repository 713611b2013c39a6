"""``auth-service user reset-mfa``: refused with hybrid, whose users live in the server's memory.

The sql path (as any backend whose users a command can reach) is tested on PostgreSQL
(tests/integration/test_sql_totp_sealing.py).
"""

from __future__ import annotations

import pytest

from entrypoints.cli import main


def test_reset_mfa_with_hybrid_explains_why_it_cannot_reach_the_users(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STORE_BACKEND", raising=False)
    assert main(["user", "reset-mfa", "alice"]) == 2
    err = capsys.readouterr().err
    assert "STORE_BACKEND" in err and "user reset-mfa cannot reach the users" in err
    assert "POST /admin/users/{id}/mfa/reset" in err

"""``auth-service store ...``: what it says without reaching any store, and a copy between
two stores of the file backend of ``tests/store_plugin`` (no server needed)."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import pytest

from domain.transfer import PartReport, TransferReport
from entrypoints.settings import load_settings
from entrypoints.store_cli import ProgressLine, parse_store_spec, summary_lines
from tests.e2e.test_cli import run_cli
from tests.transfer_sample import SVC_SECRET, check_target, seed, snapshot


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--from", "mongo:mongodb://x", "--to", "sql:postgresql://127.0.0.1:1/y"),
         "unknown backend 'mongo' in 'mongo:mongodb://x': choose one of "),
        (("--from", "sql:mysql://127.0.0.1/x", "--to", "sql:postgresql://127.0.0.1:1/y"),
         "sql: "),
        (("--from", "hybrid", "--to", "sql:postgresql://127.0.0.1:1/y"),
         "hybrid keeps its users, groups, credentials, authorization codes, tokens, "
         "ephemeral state (single-use claims, rate-limit counters), stored clients, browser "
         "sessions, consents, device authorizations and mailed links (password reset, "
         "email verification) in the memory of the serving process, "
         "out of this command's reach"),
        (("--from", "sql", "--to", "sql:postgresql://127.0.0.1:1/y"),
         "sql: DATABASE_URL: is required when STORE_BACKEND=sql"),
        (("--from", "sql:postgresql://h/x", "--to", "sql:postgresql://h/x"),
         "--from and --to name the same store"),
        (("--from", "sql:postgresql://h/x", "--to", "sql:postgresql://h/y", "--batch-size", "0"),
         "--batch-size must be at least 1"),
    ],
    ids=["unknown-backend", "bad-url-scheme", "hybrid-without-url", "sql-without-url",
         "same-store", "bad-batch-size"],
)
def test_bad_backend_url_or_option_exits_2_with_one_line(
    args: tuple[str, ...], says: str
) -> None:
    result = run_cli("store", "copy", *args, env={})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("auth-service: store copy: ") and says in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_import_of_a_file_that_is_missing_exits_2_with_one_line() -> None:
    result = run_cli("store", "import", "--to", "sql:postgresql://127.0.0.1:1/y",
                     "--input", "/nonexistent/export.jsonl", env={})
    assert result.returncode == 2
    assert result.stderr.strip() == \
        "auth-service: store import: cannot read /nonexistent/export.jsonl: " \
        "No such file or directory"


def test_a_spec_without_url_takes_the_environments() -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://db/auth",
                              "REDIS_URL": "redis://cache:6379/0"})
    assert parse_store_spec("sql", settings).url == "postgresql://db/auth"
    assert parse_store_spec("hybrid", settings).redis_url == "redis://cache:6379/0"
    named = parse_store_spec("sql:postgres://other/x", settings)
    assert (named.backend, named.url) == ("sql", "postgres://other/x")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_one_rewritten_line_per_part_on_a_terminal() -> None:
    terminal = Terminal()
    progress = ProgressLine(terminal)
    progress("users", 500, 1200)
    progress("users", 1000, 1200)
    progress("claims", 3, None)
    progress.end()
    assert terminal.getvalue() == "\rusers 500/1200\rusers 1000/1200\n\rclaims 3\n"


def test_progress_is_silent_when_not_a_terminal() -> None:
    assert ProgressLine(io.StringIO()).enabled is False


def test_summary_has_a_line_per_part_and_a_total() -> None:
    report = TransferReport((PartReport("users", 5, 2), PartReport("claims", 0, 0)))
    assert summary_lines(report) == [
        "users: 5 read, 2 written, 3 unchanged",
        "claims: 0 read, 0 written, 0 unchanged",
        "total: 5 read, 2 written, 3 unchanged",
    ]


def test_store_copy_carries_stored_clients_and_initial_access_tokens(tmp_path: Path) -> None:
    """Between two stores of the file backend (tests/store_plugin), through the CLI."""
    from auth_filestore import FileStore

    now = int(time.time())
    source_file, target_file = tmp_path / "source.store", tmp_path / "target.store"

    async def seeded() -> None:
        source = FileStore(source_file)
        await source.migrate()
        await seed(source, now)
        await source.close()

    asyncio.run(seeded())
    result = run_cli("store", "copy", "--from", f"filestore:{source_file}",
                     "--to", f"filestore:{target_file}", env={})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "clients: 2 read, 2 written, 0 unchanged" in lines
    assert "initial_access_tokens: 2 read, 2 written, 0 unchanged" in lines

    async def compare() -> None:
        source, target = FileStore(source_file), FileStore(target_file)
        try:
            copied = await snapshot(target, now)
            assert copied["clients"] == (await snapshot(source, now))["clients"]
            assert [c.client_id for c in copied["clients"]] == ["spa", "svc"]
            assert SVC_SECRET not in target_file.read_bytes().decode("latin-1")
            await check_target(target, now)
        finally:
            await source.close()
            await target.close()

    asyncio.run(compare())
    again = run_cli("store", "copy", "--from", f"filestore:{source_file}",
                    "--to", f"filestore:{target_file}", env={})
    assert again.returncode == 0, again.stderr
    assert "clients: 2 read, 0 written, 2 unchanged" in again.stdout.splitlines()

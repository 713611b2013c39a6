"""``auth-service store ...``: what it says without reaching any store (no server needed)."""

from __future__ import annotations

import io

import pytest

from domain.transfer import PartReport, TransferReport
from entrypoints.settings import load_settings
from entrypoints.store_cli import ProgressLine, parse_store_spec, summary_lines
from tests.e2e.test_cli import run_cli


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--from", "mongo:mongodb://x", "--to", "sql:postgresql://127.0.0.1:1/y"),
         "unknown backend 'mongo' in 'mongo:mongodb://x': choose one of "),
        (("--from", "sql:mysql://127.0.0.1/x", "--to", "sql:postgresql://127.0.0.1:1/y"),
         "sql: "),
        (("--from", "hybrid", "--to", "sql:postgresql://127.0.0.1:1/y"),
         "hybrid keeps its users, groups, credentials, authorization codes, tokens, "
         "ephemeral state (single-use claims, rate-limit counters) and clients in the memory "
         "of the serving process, out of this command's reach"),
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

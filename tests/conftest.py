"""Suite-wide reporting: how many tests ran against each real service.

A green run could hide a suite that never reached its server; the summary at the end
shows, for each service-backed suite, how many tests passed, failed and were skipped.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.services.redis_cluster import redis_cluster_session
from tests.services.smtp import LocalSmtp

#: suite name -> pattern on the test id (file, class and parameters).
SUITES: dict[str, re.Pattern[str]] = {
    "PostgreSQL (sql backend)": re.compile(r"sql|postgres|migration", re.IGNORECASE),
    "Redis (hybrid backend)": re.compile(
        r"^(?!.*redis_?cluster).*((?<!without)redis|multi_instance)", re.IGNORECASE
    ),
    "Redis Cluster (hybrid backend)": re.compile(r"redis_?cluster", re.IGNORECASE),
    "browser (Chromium)": re.compile(r"tests/browser/"),
}

#: suite name -> the marker that also puts a test in it, whatever its id says.
MARKERS: dict[str, str] = {
    "PostgreSQL (sql backend)": "postgres",
    "Redis (hybrid backend)": "redis",
    "Redis Cluster (hybrid backend)": "redis_cluster",
    "browser (Chromium)": "browser",
}

_outcomes: dict[str, Counter[str]] = {name: Counter() for name in SUITES}


#: Tests that only name a backend (settings, CLI) without reaching its server.
NOT_SERVICE_BACKED = re.compile(r"^tests/unit/|^tests/e2e/test_cli\.py")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if NOT_SERVICE_BACKED.search(report.nodeid):
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        for name, pattern in SUITES.items():
            if pattern.search(report.nodeid) or MARKERS[name] in report.keywords:
                _outcomes[name][report.outcome] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.section("tests against real services")
    for name, counts in _outcomes.items():
        terminalreporter.write_line(
            f"{name}: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['skipped']} skipped"
        )


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """A Redis Cluster (3 masters, 3 replicas) for the session, stopped at its end; skips
    (fails with ``CI=true``) when none can be had."""
    yield from redis_cluster_session()


@pytest.fixture
def smtp_server() -> Iterator[LocalSmtp]:
    """A plain SMTP server on 127.0.0.1 (tests/services/smtp.py) for one test, keeping the
    messages it accepts (``.received``, ``.wait_for(n)``); stopped at the test's end."""
    server = LocalSmtp()
    server.start()
    try:
        yield server
    finally:
        server.stop()

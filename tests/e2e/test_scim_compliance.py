"""scim2-tester (the python-scim project's compliance checker) against the running service,
on each backend: zero errors.

The checker discovers what the service serves (``/Schemas``, ``/ResourceTypes``,
``/ServiceProviderConfig``) and checks only that, so attributes added to the schemas later
are checked as soon as they are advertised, and nothing is checked that is not.

On failure its whole report is written to ``test-artifacts/scim2-tester-<backend>.txt``.

Where the checker and RFC 7643/7644 disagree the RFC wins; so far they agree on everything
the service serves. The fixes it asked for are product behaviour, each with its own test in
``test_scim_http.py``: a SCIM error body on unknown paths, ``POST .search``, a PATCH
``remove`` of ``active`` leaving it unassigned, ``members.display`` returned only on
request (so a written group reads back as written), ``emails.primary`` always stated.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scim2_tester import CheckResult, Status, check_server

from tests.e2e.scim_support import BACKENDS, SCIM_URL, HttpxSCIMClient, scim_app

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
#: Statuses that are failures: a MUST broken, or a security problem.
FAILING = {Status.ERROR, Status.CRITICAL}


def _report(results: list[CheckResult]) -> str:
    lines = []
    for result in results:
        lines.append(f"{result.status.name:10} {result.resource_type or '-':6} "
                     f"{result.title or '-'}: {result.reason or ''}")
        if result.status in FAILING and result.data is not None:
            lines.append(f"           data: {result.data!r}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_scim2_tester_finds_no_error(backend: str) -> None:
    with scim_app(backend, base_url=SCIM_URL) as app:
        app.client.headers["Authorization"] = f"Bearer {app.token('scim:write')}"
        results = check_server(HttpxSCIMClient(app.client))
    failures = [r for r in results if r.status in FAILING]
    if failures:
        ARTIFACTS.mkdir(exist_ok=True)
        report = ARTIFACTS / f"scim2-tester-{backend}.txt"
        report.write_text(_report(results), encoding="utf-8")
        pytest.fail(f"scim2-tester: {len(failures)} error(s), report in {report}:\n"
                    + _report(failures))
    # The checker really ran: discovery, and create/read/update/delete on both resources.
    titles = {(r.resource_type, r.title) for r in results if r.status is Status.SUCCESS}
    assert {("User", "object_creation"), ("Group", "object_creation")} <= titles, titles
    assert any(r.title == "search_with_attributes" for r in results
               if r.status is Status.SUCCESS)

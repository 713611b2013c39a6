"""The dependency rule of the hexagon: the inside never imports the outside."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("litestar", "sqlalchemy", "asyncpg", "redis", "uvicorn", "dependency_injector",
             "adapters", "entrypoints", "argon2", "pyotp", "joserfc", "jwt", "prometheus_client",
             "webauthn")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["domain", "ports"])
def test_inner_layers_import_nothing_from_the_outside(package: str) -> None:
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / package).rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN
    }
    assert not offenders, sorted(offenders)


def test_the_rule_catches_an_offender(tmp_path: Path) -> None:
    offender = tmp_path / "bad.py"
    offender.write_text("import litestar\nfrom adapters.sql import SqlStore\n")
    assert {"litestar", "adapters.sql"} <= imported_modules(offender)

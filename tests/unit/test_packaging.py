"""What an outside adapter project gets from the installed package: types and the test kit."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.mark.parametrize("package", ["adapters", "domain", "ports", "entrypoints", "migrations"])
def test_every_package_ships_py_typed(package: str) -> None:
    # Without the marker, mypy in another project treats the kit and the port as untyped.
    assert files(package).joinpath("py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"][package]


def test_the_testing_extra_has_what_the_kit_imports() -> None:
    extra = " ".join(PYPROJECT["project"]["optional-dependencies"]["testing"])
    for requirement in ("pytest", "pytest-asyncio", "hypothesis"):
        assert requirement in extra


def test_the_built_in_backends_are_declared_as_entry_points() -> None:
    declared = PYPROJECT["project"]["entry-points"]["auth_service.stores"]
    assert declared == {"hybrid": "adapters.hybrid:open_store", "sql": "adapters.sql:open_store"}

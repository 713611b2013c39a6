"""The migration error, importable without a database driver."""

from __future__ import annotations


class MigrationError(Exception):
    """The migrations cannot be applied as shipped (a changed file, a failing statement)."""

"""The migration error, importable without a database driver."""

from __future__ import annotations

from domain.errors import StoreMisconfigured


class MigrationError(StoreMisconfigured):
    """The migrations cannot be applied as shipped (a changed file, a failing statement)."""

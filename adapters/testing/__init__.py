"""Test support shipped with the package: the Store contract suite for adapters."""

from adapters.testing.contract import StoreContract

__all__ = ["StoreContract"]

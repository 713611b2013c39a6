"""Test support shipped with the package, for this project's adapters and anyone else's.

- :class:`StoreContract`: the Store contract suite; subclass it and override ``store``.
- :class:`FilterAgreement`: the same for SCIM filters, against the memory adapter.

Both need pytest, pytest-asyncio (strict or auto mode) and hypothesis
(``pip install auth-service[testing]``). docs/writing-an-adapter.md shows them in use.
"""

from adapters.testing.contract import StoreContract
from adapters.testing.filter_agreement import FilterAgreement

__all__ = ["FilterAgreement", "StoreContract"]

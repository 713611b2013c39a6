"""Test support shipped with the package, for this project's adapters and anyone else's.

- :class:`StoreContract`: the Store contract suite; subclass it and override ``store``.
  It is made of one class per part of the port (``contract``: ``IdentityContract``,
  ``CredentialContract``, ``CodeContract``, ``TokenContract``, ``EphemeralContract``,
  ``ClientContract``, ``SessionContract``, ``ConsentContract``, ``DeviceContract``,
  ``AccountTokenContract``, ``TransferContract``, ``AdminContract``), each usable alone
  with the same ``store``.
- :class:`FilterAgreement`: the same for SCIM filters, against the memory adapter.

Both need pytest, pytest-asyncio (strict or auto mode) and hypothesis
(``pip install auth-service[testing]``). docs/writing-an-adapter.md shows them in use.
"""

from adapters.testing.contract import (
    AccountTokenContract,
    AdminContract,
    ClientContract,
    CodeContract,
    ConsentContract,
    CredentialContract,
    DeviceContract,
    EphemeralContract,
    IdentityContract,
    SessionContract,
    StoreContract,
    TokenContract,
    TransferContract,
)
from adapters.testing.filter_agreement import FilterAgreement

__all__ = [
    "AccountTokenContract",
    "AdminContract",
    "ClientContract",
    "CodeContract",
    "ConsentContract",
    "CredentialContract",
    "DeviceContract",
    "EphemeralContract",
    "FilterAgreement",
    "IdentityContract",
    "SessionContract",
    "StoreContract",
    "TokenContract",
    "TransferContract",
]

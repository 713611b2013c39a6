"""The Store contract suite: one set of tests every ``Store`` adapter must pass.

See :class:`StoreContract` (``store``) for how to run it against an adapter. One module per
part of the port, named as the adapters' modules are: ``identities`` (users, groups),
``credentials``, ``codes``, ``tokens`` (access and refresh), ``ephemeral``, ``clients``,
``sessions``, ``consents``, ``device``, ``account_tokens``, ``transfer`` and ``admin``,
each with one class of tests over the shared ``fixtures``.
"""

from adapters.testing.contract.account_tokens import AccountTokenContract
from adapters.testing.contract.admin import AdminContract
from adapters.testing.contract.clients import ClientContract
from adapters.testing.contract.codes import CodeContract
from adapters.testing.contract.consents import ConsentContract
from adapters.testing.contract.credentials import CredentialContract
from adapters.testing.contract.device import DeviceContract
from adapters.testing.contract.ephemeral import EphemeralContract
from adapters.testing.contract.fixtures import StoreFixtures
from adapters.testing.contract.identities import IdentityContract
from adapters.testing.contract.sessions import SessionContract
from adapters.testing.contract.store import StoreContract
from adapters.testing.contract.tokens import TokenContract
from adapters.testing.contract.transfer import TransferContract

__all__ = [
    "AccountTokenContract",
    "AdminContract",
    "ClientContract",
    "CodeContract",
    "ConsentContract",
    "CredentialContract",
    "DeviceContract",
    "EphemeralContract",
    "IdentityContract",
    "SessionContract",
    "StoreContract",
    "StoreFixtures",
    "TokenContract",
    "TransferContract",
]

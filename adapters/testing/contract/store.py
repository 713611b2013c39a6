"""``StoreContract``: the whole Store contract suite, one class made of every part.

Each part of the port has its class in the module of its name, as in ``adapters/sql`` and
``adapters/memory``: ``identities``, ``credentials``, ``codes``, ``tokens``, ``ephemeral``,
``clients``, ``sessions``, ``consents``, ``device``, ``account_tokens``, ``transfer`` and
``admin``, all over
:class:`~adapters.testing.contract.fixtures.StoreFixtures`.
"""

from __future__ import annotations

from adapters.testing.contract.account_tokens import AccountTokenContract
from adapters.testing.contract.admin import AdminContract
from adapters.testing.contract.clients import ClientContract
from adapters.testing.contract.codes import CodeContract
from adapters.testing.contract.consents import ConsentContract
from adapters.testing.contract.credentials import CredentialContract
from adapters.testing.contract.device import DeviceContract
from adapters.testing.contract.ephemeral import EphemeralContract
from adapters.testing.contract.identities import IdentityContract
from adapters.testing.contract.sessions import SessionContract
from adapters.testing.contract.tokens import TokenContract
from adapters.testing.contract.transfer import TransferContract


class StoreContract(
    IdentityContract,
    CredentialContract,
    CodeContract,
    TokenContract,
    EphemeralContract,
    ClientContract,
    SessionContract,
    ConsentContract,
    DeviceContract,
    AccountTokenContract,
    TransferContract,
    AdminContract,
):
    """The behaviour every :class:`ports.store.Store` adapter must have, as pytest tests.

    To test an adapter, subclass this class in a test module whose class name starts with
    ``Test`` and override the ``store`` fixture so that it yields a fresh, empty store
    and closes it afterwards::

        import pytest_asyncio
        from adapters.testing import StoreContract

        class TestMyStore(StoreContract):
            @pytest_asyncio.fixture
            async def store(self):
                s = await open_my_store()
                yield s
                await s.close()

    Every test gets its own store and needs nothing else from the adapter: the suite talks
    only through the port, so an adapter passes it by behaving as the port's docstrings
    say. Times come from the ``now`` fixture (a fixed Unix time); adapters must decide
    expiry from the ``now`` they are given, never from a clock of their own.

    The tests are async and need ``pytest-asyncio`` (``pip install auth-service[testing]``).
    They carry its ``asyncio`` mark and the suite's own fixtures are plain or
    ``pytest_asyncio`` fixtures, so it runs under pytest-asyncio's strict mode (its default)
    as well as under auto mode. The override must be a ``@pytest_asyncio.fixture``, which
    works in both modes; a ``@pytest.fixture`` on an ``async def`` works only in auto mode,
    and strict mode reports it as "requested an async fixture 'store', with no plugin or
    hook that handled it".

    Tests named ``test_concurrent_*`` start 50 callers at once with ``asyncio.gather`` and
    check that single-use operations have exactly one winner. An adapter that cannot be
    driven concurrently from one event loop (a single-connection test double, say) may opt
    out by saying why, and the tests are then reported as skipped with that reason::

        class TestMyStore(StoreContract):
            concurrency_skip_reason = "one connection: callers are serialised anyway"

    Tests that say "across instances" or "on two instances" also use ``other_instance``:
    a second store over the same data, as another server process would open it. It is
    ``store`` itself unless overridden; a store whose data several processes share (a
    database, Redis) should override it with a second, separately opened store, so that
    compare-and-set and single use are raced between two instances for real::

        class TestMyStore(StoreContract):
            @pytest_asyncio.fixture
            async def other_instance(self, store):
                s = await open_my_store()  # same database as ``store``
                yield s
                await s.close()

    Individual tests can be skipped the same way pytest allows for any inherited test:
    redefine the method in the subclass and decorate it with ``pytest.mark.skip(reason=...)``.

    The semantics pinned down here are those of the port's docstrings (``ports/store.py``):
    expiry at ``exp <= now``, what ``purge_expired`` counts where, what ``counts`` counts,
    how ``hit`` windows align, what case-insensitive means.

    Each part is also a class of its own, over the same fixtures, for an adapter that
    implements some parts first: subclass only those (``IdentityContract``,
    ``CredentialContract``, ``CodeContract``, ``TokenContract``, ``EphemeralContract``,
    ``ClientContract``, ``TransferContract``, ``AdminContract``). Their docstrings say which
    tests also need another part to set up their data.
    """

"""How a store backend is opened: the settings it receives and the function it provides.

A backend is a package that declares, in its ``pyproject.toml``::

    [project.entry-points."auth_service.stores"]
    mybackend = "my_package:open_store"

and ``STORE_BACKEND=mybackend`` selects it. ``open_store`` is an :class:`OpenStore`: an
async function that receives :class:`StoreSettings` and returns an opened
:class:`~ports.store.Store`, whose ``close()`` releases it. The built-in ``hybrid`` and
``sql`` backends are declared the same way (docs/writing-an-adapter.md).
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from ports.store import Store


class StoreSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What the operator configured for the store, read from the environment and validated.

    ``url`` is the backend's connection string: ``STORE_URL``, or ``DATABASE_URL`` when
    ``STORE_URL`` is not set (the name the ``sql`` backend has always read). Its meaning and
    form are the backend's own; ``auth-service`` checks only that it is not blank.
    ``url_variable`` names the variable it came from, so that a backend's complaint about
    it can name the variable the operator must fix. ``pool_size`` and
    ``connect_timeout_seconds`` (``DATABASE_POOL_SIZE``, ``DATABASE_CONNECT_TIMEOUT_SECONDS``)
    are positive; ``redis_url`` (``REDIS_URL``) and ``redis_cluster`` (``REDIS_CLUSTER``) are
    for backends that keep shared state in Redis, as ``hybrid`` does.
    """

    #: The ``STORE_BACKEND`` name the backend was selected by.
    backend: str
    url: str | None = None
    url_variable: str = "STORE_URL"
    #: Connections per process, for backends with a pool.
    pool_size: int = 10
    #: How long opening may wait for an unreachable backend (retrying) before giving up.
    connect_timeout_seconds: int = 30
    redis_url: str | None = None
    #: ``REDIS_CLUSTER``: True for a Redis Cluster, False for a single Redis, None to detect.
    redis_cluster: bool | None = None


class OpenStore(Protocol):
    """The function a backend declares under the ``auth_service.stores`` entry point."""

    async def __call__(self, settings: StoreSettings) -> Store:
        """Open the store, ready to serve (but for migrations, see ``Migratable``).

        Raises :class:`~domain.errors.StoreMisconfigured` (one line, naming what is wrong
        with ``settings``: a missing or malformed ``url``) and
        :class:`~domain.errors.StoreUnavailable` when the backend is still unreachable after
        ``connect_timeout_seconds``. Both stop ``auth-service`` with one line and exit
        status 2. A store that needs migrating is returned unmigrated: the caller migrates it.
        """
        ...

"""Store backends: found through the ``auth_service.stores`` entry points, opened one way.

The built-in ``hybrid`` and ``sql`` and any installed plugin take the same path:
``STORE_BACKEND`` names an entry point (checked by ``load_settings``), :func:`load_opener`
imports it, and :func:`open_store` calls it with :class:`ports.store_settings.StoreSettings`
and migrates the result when it is :class:`ports.store.Migratable`.

Commands other than ``serve`` open the store with :func:`command_store`, which also refuses
to work on parts of the store that live only in the serving process (``ProcessLocal``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import cast

from domain.errors import StoreMisconfigured, StoreUnavailable
from entrypoints.settings import ConfigError, Settings, installed_store_backends, package_of
from ports.store import Migratable, ProcessLocal, Store, StorePart
from ports.store_settings import OpenStore, StoreSettings

log = logging.getLogger("auth_service.store")

#: The parts of the port as messages name them, in the port's order.
_PART_NAMES: dict[StorePart, str] = {
    "users": "users",
    "groups": "groups",
    "credentials": "credentials",
    "codes": "authorization codes",
    "tokens": "tokens",
    "ephemeral": "ephemeral state (single-use claims, rate-limit counters)",
    "clients": "stored clients",
    "sessions": "browser sessions",
    "consents": "consents",
    "device": "device authorizations",
    "account_tokens": "mailed links (password reset, email verification)",
}


class OutOfReach(ConfigError):
    """A command needs parts of the store that only the serving process holds."""

    def __init__(self, problem: str, parts: frozenset[StorePart]) -> None:
        super().__init__("STORE_BACKEND", problem)
        self.parts = parts


def load_opener(name: str) -> OpenStore:
    """Import the backend ``name`` and return its ``open_store``.

    A backend that fails to import (a missing dependency, a broken package) or does not
    declare a callable is a :class:`ConfigError`: one line, naming its package.
    """
    declared = installed_store_backends().get(name)
    if not declared:
        raise ConfigError("STORE_BACKEND", f"no installed backend is called {name!r}")
    entry_point = declared[0]
    package = package_of(entry_point)
    try:
        opener = entry_point.load()
    except Exception as exc:  # any failure of a third party's import is the same problem
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(
            "STORE_BACKEND",
            f"backend {name!r} from package {package!r} failed to import "
            f"({entry_point.value}): {type(exc).__name__}: {detail}",
        ) from exc
    if not callable(opener):
        raise ConfigError(
            "STORE_BACKEND",
            f"backend {name!r} from package {package!r} declares {entry_point.value}, "
            "which is not a function",
        )
    return cast(OpenStore, opener)


async def open_store(settings: StoreSettings, *, migrate: bool = True) -> Store:
    """Open the configured backend's store; with ``migrate``, apply its migrations too.

    Raises ``StoreUnavailable`` and ``StoreMisconfigured`` as the backend does (a failed
    migration closes the store first), and :class:`ConfigError` for a backend that cannot
    be imported.
    """
    store = await load_opener(settings.backend)(settings)
    if migrate and isinstance(store, Migratable):
        try:
            applied = await store.migrate()
        except BaseException:
            await store.close()
            raise
        if applied:
            log.info("applied migrations %s", ", ".join(applied))
    return store


def as_config_error(
    settings: StoreSettings, exc: StoreUnavailable | StoreMisconfigured
) -> ConfigError:
    """The one line an operator sees when the store cannot be opened or migrated."""
    variable = exc.variable if isinstance(exc, StoreMisconfigured) else None
    if variable is None:
        variable = settings.url_variable if settings.url is not None else "STORE_BACKEND"
    return ConfigError(variable, str(exc))


def local_parts(store: Store) -> frozenset[StorePart]:
    """The parts of ``store`` that live only in this process (``ports.store.ProcessLocal``)."""
    return store.process_local_parts() if isinstance(store, ProcessLocal) else frozenset()


def describe(parts: Iterable[StorePart]) -> str:
    """``users, credentials and tokens``: parts in the port's order, for messages."""
    wanted = set(parts)
    names = [name for part, name in _PART_NAMES.items() if part in wanted]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@asynccontextmanager
async def command_store(
    settings: Settings, *, command: str, needs: Iterable[StorePart], hint: str = "",
    migrate: bool = True,
) -> AsyncIterator[Store]:
    """The configured store, opened for the CLI command ``command`` and closed after it.

    ``needs`` names the parts the command reads or changes. When the store keeps any of
    them in process memory, the command would work on an empty private copy, not on the
    server's data: that raises :class:`OutOfReach` (a ``ConfigError``), with ``hint``
    saying what to do instead. A store that cannot be opened is a ``ConfigError`` naming
    the variable to fix.
    """
    store_settings = settings.store
    try:
        store = await open_store(store_settings, migrate=migrate)
    except (StoreUnavailable, StoreMisconfigured) as exc:
        raise as_config_error(store_settings, exc) from exc
    try:
        out_of_reach = local_parts(store) & frozenset(needs)
        if out_of_reach:
            raise OutOfReach(
                f"{command} cannot reach the {describe(out_of_reach)} of "
                f"STORE_BACKEND={store_settings.backend}: they live in the memory of the "
                "serving process, and this command would only see an empty copy of its own"
                + (f"; {hint}" if hint else ""),
                out_of_reach,
            )
        yield store
    finally:
        await store.close()

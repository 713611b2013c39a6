"""The ``auth-service`` command: ``serve``, ``migrate`` and maintenance commands.

Configuration errors print one line naming the variable and exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from domain.errors import StoreMisconfigured, StoreUnavailable
from entrypoints.backends import (
    OutOfReach,
    as_config_error,
    command_store,
    describe,
    local_parts,
    open_store,
)
from entrypoints.client_cli import add_client_commands
from entrypoints.clients import check_signing_algorithms, load_clients, load_resource_servers
from entrypoints.key_cli import add_key_commands
from entrypoints.logging import configure_logging
from entrypoints.mail import log_mail_status
from entrypoints.session_cli import add_session_commands
from entrypoints.settings import ConfigError, Settings, load_settings
from entrypoints.signing import signing_algorithms
from entrypoints.store_cli import add_store_commands
from entrypoints.user_cli import add_user_commands
from ports.store import TOKEN_STATE_PARTS, Migratable

EXIT_CONFIG = 2

log = logging.getLogger("auth_service.settings")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="auth-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve HTTP on BIND_ADDR")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser(
        "migrate", help="apply the store's pending migrations (for backends that have them)"
    )
    migrate.set_defaults(handler=_migrate)

    purge = commands.add_parser("purge", help="remove expired tokens, codes and markers (for cron)")
    purge.set_defaults(handler=_purge)

    add_user_commands(commands)
    add_key_commands(commands)
    add_store_commands(commands)
    add_client_commands(commands)
    add_session_commands(commands)

    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        handler: Callable[[Settings, argparse.Namespace], int] = args.handler
        return handler(settings, args)
    except ConfigError as exc:
        print(f"auth-service: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    if args.workers < 1:
        raise ConfigError("--workers", "must be at least 1")
    if args.workers > 1 and not settings.signing_key_files:
        raise ConfigError(
            "SIGNING_KEY_FILE",
            "is required with --workers above 1: without it each worker generates its own "
            "key, and ID tokens signed by one would not verify against the JWKS of another",
        )
    # A bad CLIENTS_FILE must stop us here, as one line, not as a traceback in a worker;
    # so must a client whose id_token_signed_response_alg has no key.
    clients = load_clients(settings)
    check_signing_algorithms(clients, signing_algorithms(settings))
    load_resource_servers(settings, clients)
    configure_logging(settings)
    warn_if_cleartext(settings)
    _check_store(settings, workers=args.workers)
    log_mail_status(settings)
    if args.workers > 1:
        from entrypoints.metrics import prepare_multiprocess

        prepare_multiprocess()
    uvicorn.run(
        "entrypoints.app:create_app",
        factory=True,
        host=settings.bind_host,
        port=settings.bind_port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        proxy_headers=False,  # TRUSTED_PROXIES: the application resolves them (middleware)
        server_header=False,
        timeout_graceful_shutdown=15,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's lines go through our handler (entrypoints.logging)
    )
    return 0


def warn_if_cleartext(settings: Settings) -> bool:
    """Warn (once, here, before any worker starts) when the issuer is plain http on a host
    other than this machine: passwords, codes, tokens and cookies would cross the network
    in clear. True when it warned."""
    parts = urlsplit(settings.external_base_url)
    if parts.scheme != "http" or _is_loopback(parts.hostname or ""):
        return False
    log.warning(
        "EXTERNAL_BASE_URL is http on %s, which is not a loopback host: passwords, tokens "
        "and cookies cross the network in clear; serve it over https (behind a TLS proxy, "
        "set EXTERNAL_BASE_URL to the https URL)", parts.hostname)
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761 section 6.3
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_store(settings: Settings, *, workers: int) -> None:
    """Open the configured store once before serving, then close it.

    This applies the store's migrations (``Migratable``) once, before any worker starts,
    and turns a backend that stays unreachable (retried with back-off), a failing
    migration or a backend that does not import into one line and exit status 2 instead of
    a traceback in every worker. More than one worker needs token state that every worker
    sees: a store that keeps it in process memory (``ProcessLocal``) is refused.
    """

    async def open_and_close() -> None:
        store = await open_store(settings.store)
        try:
            local = local_parts(store) & TOKEN_STATE_PARTS
        finally:
            await store.close()
        if workers > 1 and local:
            raise ConfigError(
                "--workers",
                f"STORE_BACKEND={settings.store_backend} keeps {describe(local)} in one "
                "process's memory, so workers would not share them; configure shared state "
                "(REDIS_URL for hybrid) or a database backend to run more than one worker",
            )

    try:
        asyncio.run(open_and_close())
    except (StoreUnavailable, StoreMisconfigured) as exc:
        raise as_config_error(settings.store, exc) from exc


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Apply the store's migrations, whatever the backend; nothing to do for one without."""

    configure_logging(settings)  # retries while the backend is unreachable are logged

    async def run() -> list[str] | None:
        async with command_store(settings, command="migrate", needs=(), migrate=False) as store:
            return await store.migrate() if isinstance(store, Migratable) else None

    try:
        applied = asyncio.run(run())
    except (StoreUnavailable, StoreMisconfigured) as exc:
        raise as_config_error(settings.store, exc) from exc
    if applied is None:
        print(f"nothing to migrate: STORE_BACKEND={settings.store_backend} has no migrations")
        return 0
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


def _purge(settings: Settings, args: argparse.Namespace) -> int:
    import msgspec

    from entrypoints.janitor import purge_now
    from entrypoints.logging import configure_logging

    configure_logging(settings)  # the purge_completed event line, as the service writes it
    try:
        counts = asyncio.run(purge_now(settings))
    except OutOfReach as exc:
        print(f"nothing to purge: with STORE_BACKEND={settings.store_backend}, the "
              f"{describe(exc.parts)} live in the serving process, whose janitor purges them")
        return 0
    kinds = " ".join(f"{kind}={n}" for kind, n in msgspec.structs.asdict(counts).items())
    print(f"purged {counts.total} expired record(s): {kinds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

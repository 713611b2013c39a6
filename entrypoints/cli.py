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

from domain.errors import StoreUnavailable
from entrypoints.clients import load_clients
from entrypoints.container import build_container, open_backend
from entrypoints.logging import configure_logging
from entrypoints.settings import ConfigError, Settings, load_settings
from entrypoints.user_cli import add_user_commands
from migrations.errors import MigrationError

EXIT_CONFIG = 2

log = logging.getLogger("auth_service.settings")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="auth-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve HTTP on BIND_ADDR")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="apply pending SQL migrations (sql backend)")
    migrate.set_defaults(handler=_migrate)

    purge = commands.add_parser("purge", help="remove expired tokens, codes and markers (for cron)")
    purge.set_defaults(handler=_purge)

    add_user_commands(commands)

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
    if args.workers > 1 and settings.store_backend == "hybrid" and not settings.redis_url:
        raise ConfigError(
            "--workers",
            "hybrid without REDIS_URL keeps tokens in one process's memory; "
            "set REDIS_URL or use STORE_BACKEND=sql to run more than one worker",
        )
    if args.workers > 1 and not settings.signing_key_files:
        raise ConfigError(
            "SIGNING_KEY_FILE",
            "is required with --workers above 1: without it each worker generates its own "
            "key, and ID tokens signed by one would not verify against the JWKS of another",
        )
    # A bad CLIENTS_FILE must stop us here, as one line, not as a traceback in a worker.
    load_clients(settings)
    configure_logging(settings)
    warn_if_cleartext(settings)
    _check_store(settings)
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
        proxy_headers=False,
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


def _check_store(settings: Settings) -> None:
    """Open the configured store once before serving, then close it.

    For ``sql`` this applies the migrations once, before any worker starts, and turns a
    database that stays unreachable (retried with back-off) or a failing migration into
    one line and exit status 2 instead of a traceback in every worker.
    """

    async def open_and_close() -> None:
        backend = await open_backend(build_container(settings))
        await backend.close()

    variable = "DATABASE_URL" if settings.store_backend == "sql" else "STORE_BACKEND"
    try:
        asyncio.run(open_and_close())
    except StoreUnavailable as exc:
        raise ConfigError(variable, str(exc)) from exc
    except MigrationError as exc:
        raise ConfigError(variable, str(exc)) from exc


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    if settings.database_url is None:
        raise ConfigError("DATABASE_URL", "is required for migrate")
    from migrations.runner import migrate

    try:
        applied = asyncio.run(migrate(settings.database_url))
    except (StoreUnavailable, MigrationError) as exc:
        raise ConfigError("DATABASE_URL", str(exc)) from exc
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


def _purge(settings: Settings, args: argparse.Namespace) -> int:
    if settings.store_backend == "hybrid" and not settings.redis_url:
        print("nothing to purge: without REDIS_URL, token state lives in the serving process, "
              "whose janitor purges it")
        return 0
    from entrypoints.janitor import purge_now
    from entrypoints.logging import configure_logging

    configure_logging(settings)  # the purge_completed event line, as the service writes it
    counts = asyncio.run(purge_now(settings))
    print(f"purged {counts.total} expired record(s): codes={counts.codes} "
          f"access_tokens={counts.access_tokens} refresh_tokens={counts.refresh_tokens} "
          f"reuse_markers={counts.reuse_markers} other={counts.other}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

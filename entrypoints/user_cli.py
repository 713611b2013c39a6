"""``auth-service user set-password USERNAME``: set a user's password from a terminal or stdin.
``auth-service user reset-mfa USERNAME``: remove a user's TOTP factor and end its sign-ins.

Meaningful with ``STORE_BACKEND=sql`` only: with ``hybrid``, identities live in the serving
process's memory, where a separate command cannot reach them; they are managed with SCIM
(``POST``/``PATCH /scim/v2/Users`` with a ``password`` attribute).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

from entrypoints.settings import ConfigError, Settings

EXIT_FAILURE = 1


def add_user_commands(commands: Any) -> None:
    """Add the ``user`` command group to the CLI's subparsers."""
    user = commands.add_parser("user", help="manage users' sign-in credentials (sql backend)")
    actions = user.add_subparsers(dest="user_command", required=True)
    set_password = actions.add_parser(
        "set-password",
        help="set a user's password (read from the terminal, or from stdin when piped)",
    )
    set_password.add_argument("username", help="the user's userName (case-insensitive)")
    set_password.set_defaults(handler=run_set_password)
    reset_mfa = actions.add_parser(
        "reset-mfa",
        help="remove a user's TOTP factor and revoke all of the user's tokens",
    )
    reset_mfa.add_argument("username", help="the user's userName (case-insensitive)")
    reset_mfa.set_defaults(handler=run_reset_mfa)


def read_password() -> str:
    """Twice from the terminal (must match), or the first line of a piped stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("New password: ")
        if getpass.getpass("Repeat it: ") != first:
            raise ValueError("the passwords do not match")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def run_set_password(settings: Settings, args: argparse.Namespace) -> int:
    """Hash the password with argon2id and store it for the user ``args.username``."""
    if settings.store_backend != "sql":
        raise ConfigError(
            "STORE_BACKEND",
            "user set-password needs sql: with hybrid, users live in the server's memory and "
            "are managed with SCIM (POST/PATCH /scim/v2/Users with a password attribute)",
        )
    try:
        password = read_password()
    except (ValueError, EOFError) as exc:
        print(f"auth-service: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return asyncio.run(_set_password(settings, args.username, password))


async def _set_password(settings: Settings, username: str, password: str) -> int:
    from adapters.passwords import Argon2PasswordHasher
    from adapters.sql import open_sql_store
    from domain.errors import DomainError
    from domain.signin import set_password

    assert settings.database_url is not None  # required by load_settings for sql
    store = await open_sql_store(settings.database_url, pool_size=1)
    try:
        user = await set_password(store, Argon2PasswordHasher(), user_name=username,
                                  password=password)
    except DomainError as exc:
        print(f"auth-service: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        await store.close()
    print(f"password set for {user.user_name} ({user.id})")
    return 0


def run_reset_mfa(settings: Settings, args: argparse.Namespace) -> int:
    """Remove the TOTP factor of ``args.username`` and revoke the user's tokens."""
    if settings.store_backend != "sql":
        raise ConfigError(
            "STORE_BACKEND",
            "user reset-mfa needs sql: with hybrid, users live in the server's memory, "
            "which a separate command cannot reach",
        )
    return asyncio.run(_reset_mfa(settings, args.username))


async def _reset_mfa(settings: Settings, username: str) -> int:
    from adapters.sql import open_sql_store
    from domain.errors import DomainError
    from domain.mfa import reset_mfa
    from ports.clock import SystemClock

    assert settings.database_url is not None  # required by load_settings for sql
    store = await open_sql_store(settings.database_url, pool_size=1)
    try:
        done = await reset_mfa(store, user_name=username, now=SystemClock().now())
    except DomainError as exc:
        print(f"auth-service: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        await store.close()
    print(f"TOTP factor removed for {done.user.user_name} ({done.user.id}); "
          f"{done.revoked} token record(s) revoked")
    return 0

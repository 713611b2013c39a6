"""``auth-service user set-password USERNAME``: set a user's password from a terminal or stdin;
``auth-service user clear-password USERNAME``: remove it (no more password sign-in).

Either revokes every token of the user. A new password must satisfy the password policy
(``PASSWORD_MIN_LENGTH`` to 1024 characters).

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

from domain.errors import DomainError
from domain.password_policy import PasswordPolicy, check_password_policy
from entrypoints.settings import ConfigError, Settings
from ports.clock import SystemClock

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
    clear_password = actions.add_parser(
        "clear-password",
        help="remove a user's password, so that it can no longer sign in with one",
    )
    clear_password.add_argument("username", help="the user's userName (case-insensitive)")
    clear_password.set_defaults(handler=run_clear_password)


def read_password() -> str:
    """Twice from the terminal (must match), or the first line of a piped stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("New password: ")
        if getpass.getpass("Repeat it: ") != first:
            raise ValueError("the passwords do not match")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _require_sql(settings: Settings, command: str) -> None:
    if settings.store_backend != "sql":
        raise ConfigError(
            "STORE_BACKEND",
            f"user {command} needs sql: with hybrid, users live in the server's memory and "
            "are managed with SCIM (POST/PATCH /scim/v2/Users with a password attribute)",
        )


def run_set_password(settings: Settings, args: argparse.Namespace) -> int:
    """Hash the password with argon2id and store it for the user ``args.username``."""
    _require_sql(settings, "set-password")
    try:
        password = read_password()
    except (ValueError, EOFError) as exc:
        print(f"auth-service: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    policy = PasswordPolicy(min_length=settings.password_min_length)
    try:
        # Before the database is opened: a refused password costs no connection.
        check_password_policy(password, policy)
    except DomainError as exc:
        print(f"auth-service: {exc} (PASSWORD_MIN_LENGTH={policy.min_length})",
              file=sys.stderr)
        return EXIT_FAILURE
    return asyncio.run(_set_password(settings, args.username, password, policy))


def run_clear_password(settings: Settings, args: argparse.Namespace) -> int:
    """Remove the password of the user ``args.username``."""
    _require_sql(settings, "clear-password")
    return asyncio.run(_set_password(settings, args.username, None, PasswordPolicy()))


async def _set_password(
    settings: Settings, username: str, password: str | None, policy: PasswordPolicy
) -> int:
    from adapters.passwords import Argon2PasswordHasher
    from adapters.sql import open_sql_store
    from domain.signin import set_password

    assert settings.database_url is not None  # required by load_settings for sql
    store = await open_sql_store(settings.database_url, pool_size=1)
    try:
        user = await set_password(store, Argon2PasswordHasher(), user_name=username,
                                  password=password, now=SystemClock().now(), policy=policy)
    except DomainError as exc:
        print(f"auth-service: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        await store.close()
    done = "set" if password is not None else "cleared"
    print(f"password {done} for {user.user_name} ({user.id}); its tokens were revoked")
    return 0

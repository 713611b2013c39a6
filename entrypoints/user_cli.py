"""``auth-service user set-password USERNAME``: set a user's password from a terminal or stdin;
``auth-service user clear-password USERNAME``: remove it (no more password sign-in);
``auth-service user reset-mfa USERNAME``: remove a user's TOTP factor and end its sign-ins.

Each ends every browser session of the user (back-channel logouts included, waited for
before the command exits: :func:`entrypoints.session_cli.command_logout`) and revokes every
token of the user. A new password must satisfy the password policy
(``PASSWORD_MIN_LENGTH`` to 1024 characters).

Works on every backend whose users live where a separate command can reach them (``sql``,
plugins); the store is opened through :func:`entrypoints.backends.command_store`, like every
command's. A store that keeps identities in the serving process's memory (``hybrid``) is
refused with a clear line: such users are managed with SCIM (``POST``/``PATCH
/scim/v2/Users`` with a ``password`` attribute).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

from domain.errors import DomainError
from domain.password_policy import PasswordPolicy, check_password_policy
from entrypoints.backends import command_store
from entrypoints.settings import Settings
from ports.clock import SystemClock
from ports.store import IDENTITY_PARTS, SESSION_PARTS

EXIT_FAILURE = 1
#: What to do instead, when the store keeps users in the serving process.
SCIM_HINT = "manage those users with SCIM (POST/PATCH /scim/v2/Users with a password attribute)"


def add_user_commands(commands: Any) -> None:
    """Add the ``user`` command group to the CLI's subparsers."""
    user = commands.add_parser("user", help="manage users' sign-in credentials")
    actions = user.add_subparsers(dest="user_command", required=True)
    set_password = actions.add_parser(
        "set-password",
        help="set a user's password (read from the terminal, or from stdin when piped)",
    )
    set_password.add_argument("username", help="the user's userName (case-insensitive)")
    set_password.set_defaults(handler=run_set_password)
    reset_mfa = actions.add_parser(
        "reset-mfa",
        help="remove a user's TOTP factor, end the user's sessions and revoke its tokens",
    )
    reset_mfa.add_argument("username", help="the user's userName (case-insensitive)")
    reset_mfa.set_defaults(handler=run_reset_mfa)
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


def run_set_password(settings: Settings, args: argparse.Namespace) -> int:
    """Hash the password with argon2id and store it for the user ``args.username``."""
    return asyncio.run(_set_password(settings, args.username, ask=True))


def run_clear_password(settings: Settings, args: argparse.Namespace) -> int:
    """Remove the password of the user ``args.username``."""
    return asyncio.run(_set_password(settings, args.username, ask=False))


async def _set_password(settings: Settings, username: str, *, ask: bool) -> int:
    from adapters.passwords import Argon2PasswordHasher
    from domain.signin import set_password
    from entrypoints.session_cli import command_logout

    policy = PasswordPolicy(min_length=settings.password_min_length)
    # The store first: a store that cannot take the password is refused before asking for it.
    async with command_store(settings, command=f"user {'set' if ask else 'clear'}-password",
                             needs=IDENTITY_PARTS | SESSION_PARTS, hint=SCIM_HINT) as store:
        password: str | None = None
        if ask:
            try:
                password = read_password()
                check_password_policy(password, policy)
            except (ValueError, EOFError) as exc:
                print(f"auth-service: {exc}", file=sys.stderr)
                return EXIT_FAILURE
            except DomainError as exc:
                print(f"auth-service: {exc} (PASSWORD_MIN_LENGTH={policy.min_length})",
                      file=sys.stderr)
                return EXIT_FAILURE
        async with command_logout(settings, store) as logout:
            try:
                user = await set_password(
                    store, Argon2PasswordHasher(), user_name=username, password=password,
                    now=SystemClock().now(), sessions=logout.end_user_sessions, policy=policy)
            except DomainError as exc:
                print(f"auth-service: {exc}", file=sys.stderr)
                return EXIT_FAILURE
    done = "set" if password is not None else "cleared"
    print(f"password {done} for {user.user_name} ({user.id}); its tokens were revoked"
          f"{logout.summary()}")
    return 0


def run_reset_mfa(settings: Settings, args: argparse.Namespace) -> int:
    """Remove the TOTP factor of ``args.username`` and revoke the user's tokens."""
    return asyncio.run(_reset_mfa(settings, args.username))


async def _reset_mfa(settings: Settings, username: str) -> int:
    from domain.errors import DomainError
    from domain.mfa import reset_mfa
    from entrypoints.session_cli import command_logout
    from ports.clock import SystemClock

    async with (
        command_store(settings, command="user reset-mfa",
                      needs=IDENTITY_PARTS | SESSION_PARTS, hint=SCIM_HINT) as store,
        command_logout(settings, store) as logout,
    ):
        try:
            done = await reset_mfa(store, user_name=username, now=SystemClock().now(),
                                   sessions=logout.end_user_sessions)
        except DomainError as exc:
            print(f"auth-service: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    print(f"TOTP factor removed for {done.user.user_name} ({done.user.id}); "
          f"{done.revoked} token record(s) revoked{logout.summary()}")
    return 0

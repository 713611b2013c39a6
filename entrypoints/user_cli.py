"""``auth-service user set-password USERNAME``: set a user's password from a terminal or stdin;
``auth-service user clear-password USERNAME``: remove it (no more password sign-in);
``auth-service user reset-mfa USER``: remove a user's second factors and end its sign-ins;
``auth-service user passkeys list USER``, ``user passkeys remove USER CREDENTIAL_ID``: a
user's passkeys; ``auth-service user verify-email USER``: mark the user's email verified.

``USER`` is a user id or a ``userName`` (case-insensitive; an id is tried first) for the
commands of issue 17 (``reset-mfa``, ``passkeys``, ``verify-email``, the same operations as
``/admin/users/{id}/...``: domain.account_admin); ``--json`` prints one JSON document. Each
change is one security-event line on stderr (``admin_mfa_reset``, ``admin_passkey_removed``,
``admin_email_verified``; ``actor`` ``cli``).

Each ends every browser session of the user (back-channel logouts included, waited for
before the command exits: :func:`entrypoints.session_cli.command_logout`) and revokes every
token of the user. A new password must satisfy the password policy
(``PASSWORD_MIN_LENGTH`` to 1024 characters). Removing one passkey or marking an email
verified ends nothing.

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
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from domain.errors import DomainError, StoreUnavailable
from domain.password_policy import PasswordPolicy, check_password_policy
from entrypoints.backends import command_store
from entrypoints.settings import ConfigError, Settings
from ports.clock import SystemClock
from ports.store import IDENTITY_PARTS, SESSION_PARTS, Store, StorePart

EXIT_FAILURE = 1
#: What to do instead, when the store keeps users in the serving process.
SCIM_HINT = "manage those users with SCIM (POST/PATCH /scim/v2/Users with a password attribute)"
#: What to do instead for the account commands, when the store keeps users in the server.
ADMIN_HINT = ("use the admin API of the running server (GET /admin/users/{id}/passkeys, "
              "DELETE /admin/users/{id}/passkeys/{credential_id}, POST "
              "/admin/users/{id}/mfa/reset, POST /admin/users/{id}/email/verify)")
USER_HELP = "the user's id or userName (case-insensitive)"
#: The ``actor`` of the security events of these commands.
ACTOR = "cli"


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
        help="remove a user's second factors (TOTP, passkeys, recovery codes), end the "
             "user's sessions and revoke its tokens",
    )
    reset_mfa.add_argument("user", help=USER_HELP)
    reset_mfa.add_argument("--json", action="store_true", help="print JSON")
    reset_mfa.set_defaults(handler=run_reset_mfa)
    passkeys = actions.add_parser("passkeys", help="list and remove a user's passkeys")
    passkey_actions = passkeys.add_subparsers(dest="passkeys_command", required=True)
    listing = passkey_actions.add_parser("list", help="list a user's passkeys, oldest first")
    listing.add_argument("user", help=USER_HELP)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=run_list_passkeys)
    remove = passkey_actions.add_parser(
        "remove", help="remove one passkey of a user (its sessions are kept)")
    remove.add_argument("user", help=USER_HELP)
    remove.add_argument("credential_id", help="the passkey's credential id, as listed")
    remove.add_argument("--json", action="store_true", help="print JSON")
    remove.set_defaults(handler=run_remove_passkey)
    verify_email = actions.add_parser(
        "verify-email", help="mark the user's current primary email verified")
    verify_email.add_argument("user", help=USER_HELP)
    verify_email.add_argument("--json", action="store_true", help="print JSON")
    verify_email.set_defaults(handler=run_verify_email)
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


def _account_command(settings: Settings, command: str, needs: frozenset[StorePart],
                     work: Callable[[Store], Awaitable[int]]) -> int:
    """Run ``work`` on the store for the account command ``command``: a refusal (no such
    user or passkey, no email) is one line and exit status 1."""
    from entrypoints.logging import configure_logging
    from entrypoints.session_cli import Refused

    configure_logging(settings)  # the security-event lines, as the server writes them

    async def run() -> int:
        async with command_store(settings, command=f"user {command}", needs=needs,
                                 hint=ADMIN_HINT) as store:
            return await work(store)

    try:
        return asyncio.run(run())
    except StoreUnavailable as exc:
        raise ConfigError("STORE_BACKEND", str(exc)) from exc
    except (Refused, DomainError) as exc:
        print(f"auth-service: user {command}: {exc}", file=sys.stderr)
    return EXIT_FAILURE


def _time(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_reset_mfa(settings: Settings, args: argparse.Namespace) -> int:
    """Remove every second factor of ``args.user``, end its sessions, revoke its tokens."""
    from domain.account_admin import reset_user_mfa
    from entrypoints.session_cli import command_logout, resolve_user_id

    async def work(store: Store) -> int:
        user_id, _ = await resolve_user_id(store, args.user)
        async with command_logout(settings, store) as logout:
            done = await reset_user_mfa(store, logout.ports.events, user_id=user_id,
                                        actor=ACTOR, sessions=logout.end_user_sessions,
                                        now=SystemClock().now())
        if args.json:
            print(json.dumps({
                "user_id": done.user.id, "user_name": done.user.user_name,
                "totp_removed": done.totp_removed, "passkeys_removed": done.passkeys_removed,
                "recovery_codes_removed": done.recovery_codes_removed,
                "sessions_ended": done.sessions_ended, "tokens_revoked": done.tokens_revoked,
                "backchannel_delivered": logout.events.delivered,
                "backchannel_failed": logout.events.failed}, indent=2))
            return 0
        totp = "TOTP factor" if done.totp_removed else "no TOTP factor"
        print(f"MFA reset for {done.user.user_name} ({done.user.id}): {totp}, "
              f"{done.passkeys_removed} passkey(s) and {done.recovery_codes_removed} "
              f"recovery code(s) removed; {done.tokens_revoked} token record(s) revoked"
              f"{logout.summary()}")
        return 0

    return _account_command(settings, "reset-mfa", IDENTITY_PARTS | SESSION_PARTS, work)


def run_list_passkeys(settings: Settings, args: argparse.Namespace) -> int:
    """Print the passkeys of ``args.user``, oldest first."""
    from domain.account_admin import list_user_passkeys, passkey_view
    from entrypoints.session_cli import resolve_user_id

    async def work(store: Store) -> int:
        user_id, shown = await resolve_user_id(store, args.user)
        passkeys = await list_user_passkeys(store, user_id)
        if args.json:
            print(json.dumps([passkey_view(p) for p in passkeys], indent=2))
            return 0
        if not passkeys:
            print(f"auth-service: {shown} ({user_id}) has no passkey", file=sys.stderr)
        for p in passkeys:
            print(f"{p.credential_id}\t{p.name}\tcreated {_time(p.created_at)}\t"
                  f"last used {_time(p.last_used_at)}\t"
                  f"{'synced' if p.synced else 'device-bound'}\t"
                  f"transports {' '.join(p.transports) or '-'}")
        return 0

    return _account_command(settings, "passkeys list", IDENTITY_PARTS, work)


def run_remove_passkey(settings: Settings, args: argparse.Namespace) -> int:
    """Remove the passkey ``args.credential_id`` of ``args.user``."""
    from domain.account_admin import remove_user_passkey
    from entrypoints.session_cli import resolve_user_id
    from ports.events import LoggingEvents

    async def work(store: Store) -> int:
        user_id, shown = await resolve_user_id(store, args.user)
        credential_id = args.credential_id
        done = await remove_user_passkey(store, LoggingEvents(), user_id=user_id,
                                         credential_id=credential_id, actor=ACTOR)
        if args.json:
            print(json.dumps({"user_id": user_id, "credential_id": credential_id,
                              "passkeys_left": done.passkeys_left,
                              "recovery_codes_removed": done.recovery_codes_removed},
                             indent=2))
            return 0
        codes = (f"; its {done.recovery_codes_removed} recovery code(s) went with its last "
                 "second factor") if done.recovery_codes_removed else ""
        print(f"passkey {done.passkey.name!r} removed from {shown} ({user_id}); "
              f"{done.passkeys_left} passkey(s) left{codes}")
        return 0

    return _account_command(settings, "passkeys remove", IDENTITY_PARTS, work)


def run_verify_email(settings: Settings, args: argparse.Namespace) -> int:
    """Mark the current primary email of ``args.user`` verified."""
    from domain.account_admin import mark_email_verified
    from entrypoints.session_cli import resolve_user_id
    from ports.events import LoggingEvents

    async def work(store: Store) -> int:
        user_id, shown = await resolve_user_id(store, args.user)
        done = await mark_email_verified(store, LoggingEvents(), user_id=user_id, actor=ACTOR)
        if args.json:
            print(json.dumps({"user_id": user_id, "email": done.email, "email_verified": True,
                              "already_verified": done.already}, indent=2))
            return 0
        was = " (it was already)" if done.already else ""
        print(f"email {done.email} of {shown} ({user_id}) is verified{was}")
        return 0

    return _account_command(settings, "verify-email", IDENTITY_PARTS, work)

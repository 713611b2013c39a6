"""``auth-service client initial-token [--uses N] [--expires-in S] [--json]``: an initial
access token for dynamic client registration with ``CLIENT_REGISTRATION=token``.

The token is printed once; the store keeps only its SHA-256. It works on every backend
whose clients a separate command can reach (``sql``, ``hybrid`` with ``REDIS_URL``,
plugins); one that keeps clients in the serving process's memory is refused with a line
pointing at ``POST /admin/initial-access-tokens``, which the serving process answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from domain.client_registration import (
    DEFAULT_INITIAL_TOKEN_SECONDS,
    MAX_INITIAL_TOKEN_SECONDS,
    issue_initial_access_token,
)
from entrypoints.backends import command_store
from entrypoints.settings import ConfigError, Settings
from ports.clock import SystemClock
from ports.events import LoggingEvents
from ports.security import SecretsTokenGenerator
from ports.store import CLIENT_PARTS

HINT = "ask the running service instead: POST /admin/initial-access-tokens"


def add_initial_token_command(actions: Any) -> None:
    """Add ``initial-token`` to the subparsers of the ``client`` command group."""
    command = actions.add_parser(
        "initial-token",
        help="create an initial access token for dynamic client registration "
        "(CLIENT_REGISTRATION=token); printed once",
    )
    command.add_argument("--uses", type=int, default=1,
                         help="how many registrations it allows (default 1)")
    command.add_argument(
        "--expires-in", type=int, default=DEFAULT_INITIAL_TOKEN_SECONDS, metavar="SECONDS",
        help=f"lifetime in seconds (default {DEFAULT_INITIAL_TOKEN_SECONDS}; 0: no expiry; "
        f"at most {MAX_INITIAL_TOKEN_SECONDS})")
    command.add_argument("--json", action="store_true", help="print a JSON object")
    command.set_defaults(handler=run_initial_token)


def run_initial_token(settings: Settings, args: argparse.Namespace) -> int:
    if args.expires_in < 0:
        raise ConfigError("--expires-in", "must be 0 (no expiry) or a number of seconds")
    return asyncio.run(_initial_token(settings, args.uses, args.expires_in or None,
                                      as_json=args.json))


async def _initial_token(settings: Settings, uses: int, expires_in: int | None, *,
                         as_json: bool) -> int:
    async with command_store(settings, command="client initial-token", needs=CLIENT_PARTS,
                             hint=HINT) as store:
        try:
            issued = await issue_initial_access_token(
                store, SystemClock(), SecretsTokenGenerator(), LoggingEvents(),
                uses=uses, expires_in=expires_in)
        except ValueError as exc:
            raise ConfigError("--uses/--expires-in", str(exc)) from None
    if as_json:
        print(json.dumps({"initial_access_token": issued.value,
                          "uses": issued.token.uses_left,
                          "created_at": issued.token.created_at,
                          "expires_at": issued.token.expires_at}))
    else:
        print(issued.value)
    return 0

"""``auth-service keys generate-sealing-key PATH``: write a new key for ``SEALING_KEY_FILE``.

The file holds one line: base64 of 32 random bytes (what ``openssl rand -base64 32`` prints).
It is created with mode 0600 and never overwritten, so a key in use cannot be lost by a
mistyped path (a lost sealing key makes every TOTP seed sealed with it unreadable).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from adapters.secret_sealing import key_id, new_key_text, parse_key_text
from entrypoints.settings import Settings

EXIT_FAILURE = 1


def add_key_commands(commands: Any) -> None:
    """Add the ``keys`` command group to the CLI's subparsers."""
    keys = commands.add_parser("keys", help="create key files")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    generate = actions.add_parser(
        "generate-sealing-key",
        help="write a new random 256-bit key for SEALING_KEY_FILE (mode 0600, never overwrites)",
    )
    generate.add_argument("path", help="the file to create")
    generate.set_defaults(handler=run_generate_sealing_key)


def run_generate_sealing_key(settings: Settings, args: argparse.Namespace) -> int:
    text = new_key_text()
    try:
        descriptor = os.open(args.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        print(f"auth-service: cannot create {args.path}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILURE
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(text)
    print(f"wrote sealing key {key_id(parse_key_text(text))} to {args.path}")
    return 0

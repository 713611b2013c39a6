"""``auth-service keys``: write new key files.

- ``keys generate-sealing-key PATH``: a key for ``SEALING_KEY_FILE``, one line of base64 of
  32 random bytes (what ``openssl rand -base64 32`` prints).
- ``keys generate --alg RS256|ES256|EdDSA PATH``: a signing key for ``SIGNING_KEY_FILE``, a
  PKCS#8 PEM private key (RSA 2048 bits, EC P-256 or Ed25519).

Files are created with mode 0600 and never overwritten, so a key in use cannot be lost by a
mistyped path (a lost sealing key makes every TOTP seed sealed with it unreadable; a lost
signing key, every token it signed unverifiable).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from adapters.jose_signer import SIGNING_ALGORITHMS, generate_pem_key, import_pem_key
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
    signing = actions.add_parser(
        "generate",
        help="write a new signing key for SIGNING_KEY_FILE (PEM, mode 0600, never overwrites)",
    )
    signing.add_argument("--alg", choices=SIGNING_ALGORITHMS, default="RS256",
                         help="RS256 (RSA 2048), ES256 (EC P-256) or EdDSA (Ed25519); "
                         "default RS256")
    signing.add_argument("path", help="the file to create")
    signing.set_defaults(handler=run_generate_signing_key)


def _create(path: str, data: bytes) -> bool:
    """Write ``data`` to a new file ``path`` (mode 0600); False, with a message, when it
    exists or cannot be created."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        print(f"auth-service: cannot create {path}: {exc.strerror}", file=sys.stderr)
        return False
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    return True


def run_generate_sealing_key(settings: Settings, args: argparse.Namespace) -> int:
    text = new_key_text()
    if not _create(args.path, text.encode("ascii")):
        return EXIT_FAILURE
    print(f"wrote sealing key {key_id(parse_key_text(text))} to {args.path}")
    return 0


def run_generate_signing_key(settings: Settings, args: argparse.Namespace) -> int:
    pem = generate_pem_key(args.alg)
    if not _create(args.path, pem):
        return EXIT_FAILURE
    # The kid the server will publish it under: its RFC 7638 thumbprint.
    print(f"wrote {args.alg} signing key {import_pem_key(pem).thumbprint()} to {args.path}")
    return 0

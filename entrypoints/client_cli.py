"""``auth-service client create|list|show|update|rotate-secret|delete``: stored clients
from a terminal, on every backend, through the same use cases as the admin API
(``domain.client_admin``) and the same metadata reader (docs/clients.md).

- ``create`` takes the metadata as flags and/or ``--metadata FILE.json`` (flags win) and
  prints the client, with its secret, once.
- ``update ID`` changes what the flags and the file name and keeps the rest; it is
  compare-and-set on the version it read (or on ``--if-version N``).
- ``rotate-secret ID [--expires-in S] [--retire-old-after S]`` adds a secret and prints it
  once; the others stay valid until their expiry (or for ``S`` more seconds).
- ``list`` and ``show`` include the static clients (``CLIENTS_FILE``, ``CLIENT_CREDENTIALS``)
  of this environment, marked static; those cannot be changed here.

``--json`` prints one JSON document instead of ``key: value`` lines. The store is opened by
:func:`entrypoints.backends.command_store` with the clients part: a store that keeps its
clients in the serving process's memory (``hybrid`` without ``REDIS_URL``) is refused with
one line, since this command would only change an empty copy of its own. Every change is
one security-event log line on stderr (``actor`` ``cli``). A ``client_secret_jwt`` secret is
sealed with the server's key (``SEALING_KEY_FILE``, else derived from ``SIGNING_KEY_FILE``);
without either, such a secret is refused, since the server could not open it.

Exit status: 0 done; 1 refused (not found, static, stale version, bad metadata); 2 a bad
configuration or store (one line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from adapters.jose_assertions import JoseAssertionCodec
from domain import client_admin
from domain.client_admin import ClientPorts, client_view
from domain.client_metadata import (
    SERVER_MANAGED_KEYS,
    ClientMetadataError,
    MetadataSource,
    parse_client_metadata,
)
from domain.clients import Client, ClientRegistry
from domain.errors import DomainError, NotFound, PreconditionFailed, StoreUnavailable
from domain.text import is_storable
from entrypoints.backends import command_store
from entrypoints.clients import load_clients
from entrypoints.logging import configure_logging
from entrypoints.registration_cli import add_initial_token_command
from entrypoints.settings import ConfigError, Settings
from entrypoints.signing import signing_algorithms
from ports.clock import SystemClock
from ports.events import LoggingEvents
from ports.sealing import OpenedSecret, SecretSealer
from ports.security import SecretsTokenGenerator
from ports.store import CLIENT_PARTS, ClientStore

EXIT_FAILURE = 1
ACTOR = "cli"
HINT = ("set REDIS_URL so that the clients are shared, or use the admin API of the running "
        "server (POST /admin/clients)")
_PAGE = 200


class ServerSealer:
    """The server's sealer of secrets at rest, built on first use (loading or deriving keys
    costs time that most commands do not need). Without a configured key it refuses: a key
    generated for this process would seal a secret that no server could open."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._sealer: SecretSealer | None = None

    def _get(self) -> SecretSealer:
        if self._sealer is None:
            from entrypoints.signing import load_secret_sealer, load_signer

            if not (self._settings.sealing_key_files or self._settings.signing_key_files):
                raise ConfigError(
                    "SEALING_KEY_FILE", "is required to give a client_secret_jwt client a "
                    "secret from the CLI (the server's key; or SIGNING_KEY_FILE, from which it "
                    "is derived)")
            self._sealer = load_secret_sealer(self._settings, load_signer(self._settings))
        return self._sealer

    def seal(self, plaintext: str, associated_data: str) -> str:
        return self._get().seal(plaintext, associated_data)

    def open(self, sealed: str, associated_data: str) -> OpenedSecret:
        return self._get().open(sealed, associated_data)

    def is_sealed(self, value: str) -> bool:
        return self._get().is_sealed(value)


def add_client_commands(commands: Any) -> None:
    """Add the ``client`` command group to the CLI's subparsers."""
    client = commands.add_parser("client", help="manage stored OAuth clients")
    actions = client.add_subparsers(dest="client_command", required=True)
    add_initial_token_command(actions)

    create = actions.add_parser("create", help="create a client; prints its secret once")
    _metadata_flags(create)
    create.add_argument("--client-id", help="the client_id (default: a generated cl_... id)")
    create.set_defaults(handler=run_create)

    listing = actions.add_parser("list", help="list the clients, static ones included")
    _json_flag(listing)
    listing.set_defaults(handler=run_list)

    show = actions.add_parser("show", help="show one client (never its secrets)")
    show.add_argument("client_id")
    _json_flag(show)
    show.set_defaults(handler=run_show)

    update = actions.add_parser(
        "update", help="change a stored client's metadata (what is not named is kept)")
    update.add_argument("client_id")
    _metadata_flags(update)
    update.add_argument("--if-version", type=int, metavar="N",
                        help="change it only if it is still at version N")
    update.set_defaults(handler=run_update)

    rotate = actions.add_parser(
        "rotate-secret", help="add a secret to a client and print it once")
    rotate.add_argument("client_id")
    rotate.add_argument("--expires-in", type=int, metavar="SECONDS",
                        help="the new secret's lifetime (default: until removed)")
    rotate.add_argument("--retire-old-after", type=int, metavar="SECONDS",
                        help="the other secrets stop working after this long (default: at "
                             "their own expiry; 0: now)")
    _json_flag(rotate)
    rotate.set_defaults(handler=run_rotate)

    remove = actions.add_parser("delete", help="delete a stored client")
    remove.add_argument("client_id")
    _json_flag(remove)
    remove.set_defaults(handler=run_delete)


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")


def _metadata_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metadata", metavar="FILE.json",
                        help="client metadata as a JSON object (RFC 7591 names; flags win)")
    parser.add_argument("--name", help="client_name")
    parser.add_argument("--redirect-uri", action="append", metavar="URI",
                        help="a redirect URI (repeat for several)")
    parser.add_argument("--post-logout-redirect-uri", action="append", metavar="URI")
    parser.add_argument("--grant-type", action="append", metavar="GRANT",
                        help="authorization_code, refresh_token, client_credentials (repeat)")
    parser.add_argument("--scope", action="append", metavar="SCOPE",
                        help="the scopes it may ask for (repeat, or space-separated)")
    parser.add_argument("--auth-method", metavar="METHOD",
                        help="token_endpoint_auth_method (client_secret_basic, "
                             "client_secret_post, client_secret_jwt, private_key_jwt, none)")
    parser.add_argument("--public", action="store_true",
                        help="a public client (token_endpoint_auth_method none)")
    parser.add_argument("--jwks-uri", metavar="URL")
    parser.add_argument("--jwks-file", metavar="FILE.json", help="a JWK Set of public keys")
    parser.add_argument("--backchannel-logout-uri", metavar="URL")
    parser.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                        help="an allowed CORS origin (repeat)")
    parser.add_argument("--access-token-lifetime", type=int, metavar="SECONDS")
    parser.add_argument("--refresh-token-lifetime", type=int, metavar="SECONDS")
    parser.add_argument("--resource-uri", metavar="URI",
                        help="make it a resource server (RFC 8707) with this identifier")
    parser.add_argument("--resource-scope", action="append", metavar="SCOPE",
                        help="a scope the resource server defines (repeat, or "
                             "space-separated)")
    parser.add_argument("--access-token-format", choices=("opaque", "jwt"),
                        help="the format of the access tokens for the resource server")
    for flag, help_text in (("require-pkce", "require PKCE (the default)"),
                            ("introspect-any-token", "may introspect every token (a gateway)"),
                            ("require-mfa", "sign-ins need a second factor"),
                            ("first-party", "trusted: no consent screen"),
                            ("backchannel-logout-session-required", "send sid")):
        parser.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, default=None,
                            help=help_text)
    parser.add_argument("--secret", metavar="SECRET",
                        help="use this client_secret (default: a generated one); prefer "
                             "the generated one, which no shell history holds")
    _json_flag(parser)


class Refused(Exception):
    """A request the command refuses (exit status 1); the message says why."""


def _read_json_file(path: str, what: str) -> Any:
    try:
        with open(path, "rb") as handle:
            return json.load(handle)
    except OSError as exc:
        raise Refused(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, RecursionError):
        raise Refused(f"{path} is not valid JSON ({what})") from None


def _metadata(args: argparse.Namespace) -> dict[str, Any]:
    """The metadata named by ``--metadata`` and the flags (flags win)."""
    document: dict[str, Any] = {}
    if args.metadata:
        loaded = _read_json_file(args.metadata, "--metadata")
        if not isinstance(loaded, dict):
            raise Refused(f"{args.metadata} must hold a JSON object (--metadata)")
        document.update(loaded)
    flags: dict[str, Any] = {
        "client_name": args.name,
        "redirect_uris": args.redirect_uri,
        "post_logout_redirect_uris": args.post_logout_redirect_uri,
        "grant_types": args.grant_type,
        "scope": " ".join(args.scope) if args.scope else None,
        "token_endpoint_auth_method": "none" if args.public else args.auth_method,
        "jwks_uri": args.jwks_uri,
        "jwks": _read_json_file(args.jwks_file, "--jwks-file") if args.jwks_file else None,
        "backchannel_logout_uri": args.backchannel_logout_uri,
        "allowed_cors_origins": args.cors_origin,
        "access_token_lifetime": args.access_token_lifetime,
        "refresh_token_lifetime": args.refresh_token_lifetime,
        "require_pkce": args.require_pkce,
        "require_mfa": args.require_mfa,
        "first_party": args.first_party,
        "backchannel_logout_session_required": args.backchannel_logout_session_required,
        "resource_uri": args.resource_uri,
        "resource_scopes": " ".join(args.resource_scope) if args.resource_scope else None,
        "access_token_format": args.access_token_format,
        "introspect_any_token": args.introspect_any_token,
        "client_secret": args.secret,
    }
    if args.public and args.auth_method not in (None, "none"):
        raise Refused("--public and --auth-method name different methods")
    document.update({k: v for k, v in flags.items() if v is not None})
    return document


# Running a command


def _run(settings: Settings, command: str, work: Any) -> int:
    """Open the store for ``command``, run ``work(ports, static)``, and turn refusals into
    one line and exit status 1."""
    configure_logging(settings)  # the security-event lines, as the server writes them
    static = load_clients(settings)

    async def run() -> int:
        async with command_store(settings, command=f"client {command}", needs=CLIENT_PARTS,
                                 hint=HINT) as store:
            ports = ClientPorts(store=store, static=static, clock=SystemClock(),
                                token_generator=SecretsTokenGenerator(),
                                sealer=ServerSealer(settings), events=LoggingEvents(),
                                check_keys=JoseAssertionCodec().key_set_problem,
                                signing_algs=signing_algorithms(settings))
            result: int = await work(ports, static)
            return result

    try:
        return asyncio.run(run())
    except ClientMetadataError as exc:
        print(f"auth-service: client {command}: {exc.description}", file=sys.stderr)
    except PreconditionFailed:
        print(f"auth-service: client {command}: the client was changed since that version; "
              "show it again and retry", file=sys.stderr)
    except StoreUnavailable as exc:
        raise ConfigError("STORE_BACKEND", str(exc)) from exc
    except (Refused, DomainError) as exc:
        print(f"auth-service: client {command}: {exc}", file=sys.stderr)
    return EXIT_FAILURE


def _print(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(view, indent=2, sort_keys=True))
        return
    for key, value in view.items():
        if isinstance(value, list | dict) or value is None:
            value = json.dumps(value)
        print(f"{key}: {value}")


def _with_secret(client: Client, secret: str | None) -> dict[str, Any]:
    view = client_view(client)
    if secret is not None:
        view["client_secret"] = secret
        print("auth-service: the client_secret is shown only now; store it safely",
              file=sys.stderr)
    return view


def run_create(settings: Settings, args: argparse.Namespace) -> int:
    document = _metadata_or_none(args)
    if document is None:
        return EXIT_FAILURE
    if args.client_id is not None:
        document["client_id"] = args.client_id

    async def work(ports: ClientPorts, static: ClientRegistry) -> int:
        draft = parse_client_metadata(
            document, source=MetadataSource.ADMIN, client_id=client_admin.new_client_id(ports),
            allow_loopback_http=settings.outbound_allow_loopback, check_keys=ports.check_keys,
            signing_algs=ports.signing_algs)
        client, secret = await client_admin.create_client(ports, draft, actor=ACTOR)
        _print(_with_secret(client, secret), args.json)
        return 0

    return _run(settings, "create", work)


def run_list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ports: ClientPorts, static: ClientRegistry) -> int:
        clients = sorted(static, key=lambda c: c.client_id)
        cursor = None
        while True:
            batch = await ports.store.list_clients(cursor, _PAGE)
            clients.extend(c for c in batch.records if c.client_id not in static)
            cursor = batch.cursor
            if cursor is None:
                break
        if args.json:
            print(json.dumps([client_view(c) for c in clients], indent=2, sort_keys=True))
            return 0
        for c in clients:
            kind = "static" if c.static else f"v{c.version}"
            print(f"{c.client_id}\t{kind}\t{c.token_endpoint_auth_method}\t"
                  f"{' '.join(sorted(c.scopes))}\t{c.name}")
        return 0

    return _run(settings, "list", work)


async def _find(store: ClientStore, static: ClientRegistry, client_id: str) -> Client:
    if not is_storable(client_id):
        raise Refused("the client id contains a character that is not allowed (NUL)")
    client = static.get(client_id) or await store.get_client(client_id)
    if client is None:
        raise NotFound(f"no client {client_id!r}")
    return client


def run_show(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ports: ClientPorts, static: ClientRegistry) -> int:
        _print(client_view(await _find(ports.store, static, args.client_id)), args.json)
        return 0

    return _run(settings, "show", work)


def run_update(settings: Settings, args: argparse.Namespace) -> int:
    changes = _metadata_or_none(args)
    if changes is None:
        return EXIT_FAILURE

    async def work(ports: ClientPorts, static: ClientRegistry) -> int:
        if not is_storable(args.client_id):
            raise Refused("the client id contains a character that is not allowed (NUL)")
        held = await client_admin.get_stored_client(ports, args.client_id)
        if changes.get("client_id", held.client_id) != held.client_id:
            raise Refused("client_id cannot be changed (a client cannot be renamed)")
        current = {k: v for k, v in client_view(held).items() if k not in SERVER_MANAGED_KEYS}
        if "resource_uri" in changes and changes["resource_uri"] is None:
            # "resource_uri": null in --metadata: no longer a resource server.
            for key in ("resource_uri", "resource_scopes", "access_token_format"):
                current.pop(key, None)
        draft = parse_client_metadata(
            {**current, **changes}, source=MetadataSource.ADMIN, client_id=held.client_id,
            allow_loopback_http=settings.outbound_allow_loopback, check_keys=ports.check_keys,
            signing_algs=ports.signing_algs)
        expected = held.version if args.if_version is None else args.if_version
        client, secret = await client_admin.update_client(
            ports, draft, expected_version=expected, actor=ACTOR)
        _print(_with_secret(client, secret), args.json)
        return 0

    return _run(settings, "update", work)


def run_rotate(settings: Settings, args: argparse.Namespace) -> int:
    for flag, value, minimum in (("--expires-in", args.expires_in, 1),
                                 ("--retire-old-after", args.retire_old_after, 0)):
        if value is not None and value < minimum:
            print(f"auth-service: client rotate-secret: {flag} must be at least {minimum}",
                  file=sys.stderr)
            return EXIT_FAILURE

    async def work(ports: ClientPorts, static: ClientRegistry) -> int:
        if not is_storable(args.client_id):
            raise Refused("the client id contains a character that is not allowed (NUL)")
        now = ports.clock.now()
        client, secret = await client_admin.add_secret(
            ports, args.client_id,
            expires_at=None if args.expires_in is None else now + args.expires_in,
            retire_others_at=(None if args.retire_old_after is None
                              else now + args.retire_old_after),
            actor=ACTOR)
        held = client.secrets[-1]
        if args.json:
            print(json.dumps({"client_id": client.client_id, "client_secret": secret,
                              "secret_id": held.id, "expires_at": held.expires_at,
                              "secrets": client_view(client)["secrets"]}, indent=2))
        else:
            print(secret)
        print(f"auth-service: new secret {held.id} for {client.client_id}; it is shown only "
              "now. The other secrets "
              + ("stay valid until their own expiry" if args.retire_old_after is None
                 else f"stop working in {args.retire_old_after} s"), file=sys.stderr)
        return 0

    return _run(settings, "rotate-secret", work)


def run_delete(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ports: ClientPorts, static: ClientRegistry) -> int:
        if not is_storable(args.client_id):
            raise Refused("the client id contains a character that is not allowed (NUL)")
        await client_admin.delete_client(ports, args.client_id, actor=ACTOR)
        if args.json:
            print(json.dumps({"client_id": args.client_id, "deleted": True}))
        else:
            print(f"deleted client {args.client_id}")
        return 0

    return _run(settings, "delete", work)


def _metadata_or_none(args: argparse.Namespace) -> dict[str, Any] | None:
    try:
        return _metadata(args)
    except Refused as exc:
        print(f"auth-service: client {args.client_command}: {exc}", file=sys.stderr)
        return None


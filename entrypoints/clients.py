"""Building the client registry from the settings, once, before the server listens.

Two sources, merged (a client id may appear in only one):

- ``CLIENT_CREDENTIALS`` (already parsed and hashed by the settings) with
  ``CLIENT_REDIRECT_URIS`` and ``ALLOWED_SCOPES``: confidential clients that may use every
  grant type and authenticate with ``client_secret_basic`` or ``client_secret_post``.
- ``CLIENTS_FILE``, TOML with one ``[[clients]]`` table per client (docs/oauth.md).

Every problem is a :class:`ConfigError` naming the variable and the client.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any

import msgspec

from domain.client_metadata import ClientMetadataError, MetadataSource, parse_client_metadata
from domain.clients import (
    AUTH_BASIC,
    AUTH_POST,
    GRANT_TYPES,
    Client,
    ClientRegistry,
    ClientSecret,
)
from entrypoints.settings import ConfigError, Settings


def load_clients(settings: Settings) -> ClientRegistry:
    """The registry for these settings; raises :class:`ConfigError` on the first problem."""
    clients: dict[str, Client] = {}
    for client_id, secret_hash in settings.client_credentials:
        clients[client_id] = Client(
            client_id=client_id,
            name=client_id,
            secrets=(ClientSecret(id=secret_hash[:12], digest=secret_hash),),
            redirect_uris=tuple(settings.client_redirect_uris.get(client_id, ())),
            grant_types=frozenset(GRANT_TYPES),
            scopes=frozenset(settings.allowed_scopes),
            auth_methods=frozenset({AUTH_BASIC, AUTH_POST}),
            static=True,
        )
    for client_id in settings.client_redirect_uris:
        if client_id not in clients:
            raise ConfigError(
                "CLIENT_REDIRECT_URIS", f"client {client_id!r} is not in CLIENT_CREDENTIALS"
            )
    if settings.clients_file is not None:
        for client in _read_clients_file(settings.clients_file,
                                         settings.outbound_allow_loopback):
            if client.client_id in clients:
                raise ConfigError(
                    "CLIENTS_FILE",
                    f"client {client.client_id!r} is also declared in CLIENT_CREDENTIALS "
                    "or twice in the file",
                )
            clients[client.client_id] = client
    return ClientRegistry(clients.values())


def _read_clients_file(path: str, allow_loopback_http: bool) -> list[Client]:
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError("CLIENTS_FILE", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("CLIENTS_FILE", f"{path} is not valid TOML: {exc}") from None
    unknown = set(document) - {"clients"}
    if unknown:
        raise ConfigError("CLIENTS_FILE", f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    tables = document.get("clients", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError("CLIENTS_FILE", "clients must be an array of tables ([[clients]])")
    return [_client_from_table(index, table, allow_loopback_http)
            for index, table in enumerate(tables, start=1)]


def _client_from_table(index: int, table: Mapping[str, Any], allow_loopback_http: bool) -> Client:
    client_id = table.get("client_id")
    if not isinstance(client_id, str) or not client_id.strip():
        raise ConfigError("CLIENTS_FILE", f"client #{index} needs a client_id (a string)")
    try:
        draft = parse_client_metadata(table, source=MetadataSource.FILE,
                                      allow_loopback_http=allow_loopback_http)
    except ClientMetadataError as exc:
        raise ConfigError("CLIENTS_FILE",
                          f"client {client_id.strip()!r}: {exc.description}") from None
    secrets = () if draft.secret is None else (ClientSecret.of(draft.secret),)
    return msgspec.structs.replace(draft.client, secrets=secrets, static=True)

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

from adapters.jose_assertions import JoseAssertionCodec
from domain.client_assertion import seal_client_secret
from domain.client_metadata import ClientMetadataError, MetadataSource, parse_client_metadata
from domain.clients import (
    AUTH_BASIC,
    AUTH_POST,
    AUTH_SECRET_JWT,
    GRANT_DEVICE_CODE,
    GRANT_TOKEN_EXCHANGE,
    GRANT_TYPES,
    Client,
    ClientRegistry,
    ClientSecret,
)
from domain.resources import ResourceServers
from entrypoints.settings import ConfigError, Settings
from ports.client_assertion import InvalidAssertion
from ports.sealing import SecretSealer
from ports.store import ClientStore


def load_clients(settings: Settings, sealer: SecretSealer | None = None) -> ClientRegistry:
    """The registry for these settings; raises :class:`ConfigError` on the first problem.

    ``sealer`` seals the secrets of ``client_secret_jwt`` clients (required for them)."""
    clients: dict[str, Client] = {}
    for client_id, secret_hash in settings.client_credentials:
        clients[client_id] = Client(
            client_id=client_id,
            name=client_id,
            secrets=(ClientSecret(id=secret_hash[:12], digest=secret_hash),),
            redirect_uris=tuple(settings.client_redirect_uris.get(client_id, ())),
            # The device grant is opted into per client (CLIENTS_FILE, admin API), so that
            # these clients keep the grants they had before it existed; token exchange needs
            # token_exchange_audiences, which these clients cannot set.
            grant_types=frozenset(GRANT_TYPES) - {GRANT_DEVICE_CODE, GRANT_TOKEN_EXCHANGE},
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
        for client in _read_clients_file(settings.clients_file, settings, sealer):
            if client.client_id in clients:
                raise ConfigError(
                    "CLIENTS_FILE",
                    f"client {client.client_id!r} is also declared in CLIENT_CREDENTIALS "
                    "or twice in the file",
                )
            clients[client.client_id] = client
    return ClientRegistry(clients.values())


def load_resource_servers(
    settings: Settings, clients: ClientRegistry, store: ClientStore | None = None
) -> ResourceServers:
    """The resource servers: the static clients' (unique ``resource_uri``s, else
    :class:`ConfigError`), then the stored ones (``store``), and ``DEFAULT_RESOURCE``. A
    ``DEFAULT_RESOURCE`` that is no static client's is taken to name a stored resource
    server: it is looked up when used (the store is not open yet at the start-up checks,
    and the server may be created later), and a request it applies to is
    ``invalid_target`` while no client has it."""
    try:
        return ResourceServers(clients, settings.default_resource, store)
    except ValueError as exc:
        raise ConfigError("CLIENTS_FILE", str(exc)) from None


def _read_clients_file(
    path: str, settings: Settings, sealer: SecretSealer | None
) -> list[Client]:
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
    return [_client_from_table(index, table, settings, sealer)
            for index, table in enumerate(tables, start=1)]


def _client_from_table(
    index: int, table: Mapping[str, Any], settings: Settings, sealer: SecretSealer | None
) -> Client:
    client_id = table.get("client_id")
    if not isinstance(client_id, str) or not client_id.strip():
        raise ConfigError("CLIENTS_FILE", f"client #{index} needs a client_id (a string)")

    def fail(problem: str) -> ConfigError:
        return ConfigError("CLIENTS_FILE", f"client {client_id.strip()!r}: {problem}")

    try:
        draft = parse_client_metadata(table, source=MetadataSource.FILE,
                                      allow_loopback_http=settings.outbound_allow_loopback)
    except ClientMetadataError as exc:
        raise fail(exc.description) from None
    client = draft.client
    if client.jwks is not None:
        try:
            JoseAssertionCodec().public_keys(client.jwks)
        except InvalidAssertion as exc:
            raise fail(f"has unusable jwks: {exc}") from None
    secrets: tuple[ClientSecret, ...] = ()
    if draft.secret is not None and AUTH_SECRET_JWT in client.auth_methods:
        if sealer is None:
            raise fail("uses client_secret_jwt, which needs the secret sealing key")
        secrets = (seal_client_secret(client.client_id, draft.secret, sealer, now=0),)
    elif draft.secret is not None:
        secrets = (ClientSecret.of(draft.secret),)
    return msgspec.structs.replace(client, secrets=secrets, static=True)


def check_signing_algorithms(clients: ClientRegistry, algorithms: tuple[str, ...]) -> None:
    """Refuse a ``CLIENTS_FILE`` client whose ``id_token_signed_response_alg`` no key of
    ``SIGNING_KEY_FILE`` signs: its ID tokens could not be made (a :class:`ConfigError`)."""
    for client in clients:
        alg = client.id_token_signed_response_alg
        if alg is not None and alg not in algorithms:
            raise ConfigError("CLIENTS_FILE", f"client {client.client_id!r}: "
                              f"id_token_signed_response_alg {alg} needs a {alg} key in "
                              f"SIGNING_KEY_FILE (the server signs with "
                              f"{', '.join(algorithms)})")

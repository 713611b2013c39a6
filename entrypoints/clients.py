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
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from adapters.jose_assertions import JoseAssertionCodec
from domain.client_assertion import seal_client_secret
from domain.clients import (
    AUTH_BASIC,
    AUTH_METHODS,
    AUTH_NONE,
    AUTH_POST,
    AUTH_PRIVATE_KEY_JWT,
    AUTH_SECRET_JWT,
    GRANT_AUTHORIZATION_CODE,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_REFRESH_TOKEN,
    GRANT_TYPES,
    Client,
    ClientRegistry,
    ClientSecret,
)
from domain.oauth import OAuthError, parse_scope
from domain.outbound import OutboundPolicy
from entrypoints.settings import MIN_CLIENT_SECRET_LENGTH, ConfigError, Settings
from ports.client_assertion import InvalidAssertion
from ports.sealing import SecretSealer

_FILE_KEYS = frozenset({
    "client_id", "secret", "public", "redirect_uris", "grant_types", "scopes",
    "token_endpoint_auth_method", "name", "require_pkce", "jwks", "jwks_uri",
})
_DEFAULT_GRANTS = (GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN)


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
        for client in _read_clients_file(settings.clients_file, settings, sealer):
            if client.client_id in clients:
                raise ConfigError(
                    "CLIENTS_FILE",
                    f"client {client.client_id!r} is also declared in CLIENT_CREDENTIALS "
                    "or twice in the file",
                )
            clients[client.client_id] = client
    return ClientRegistry(clients.values())


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
    client_id = client_id.strip()

    def fail(problem: str) -> ConfigError:
        return ConfigError("CLIENTS_FILE", f"client {client_id!r} {problem}")

    unknown = set(table) - _FILE_KEYS
    if unknown:
        raise fail(f"has unknown key(s): {', '.join(sorted(unknown))}")
    public = table.get("public", False)
    if not isinstance(public, bool):
        raise fail("has a non-boolean public")
    method = table.get("token_endpoint_auth_method", AUTH_NONE if public else AUTH_BASIC)
    if method not in AUTH_METHODS:
        raise fail(f"has token_endpoint_auth_method {method!r}; use {', '.join(AUTH_METHODS)}")
    if public != (method == AUTH_NONE):
        raise fail("must use token_endpoint_auth_method 'none' exactly when public = true")
    secret = table.get("secret")
    secrets: tuple[ClientSecret, ...] = ()
    if public or method == AUTH_PRIVATE_KEY_JWT:
        if secret is not None:
            raise fail("is public and must not have a secret" if public
                       else f"uses {method} and must not have a secret")
    else:
        if not isinstance(secret, str) or not secret:
            raise fail("needs a secret (or public = true)")
        if len(secret) < MIN_CLIENT_SECRET_LENGTH:
            raise fail(f"has a secret shorter than {MIN_CLIENT_SECRET_LENGTH} characters")
        if method == AUTH_SECRET_JWT:
            if sealer is None:
                raise fail("uses client_secret_jwt, which needs the secret sealing key")
            secrets = (seal_client_secret(client_id, secret, sealer, now=0),)
        else:
            secrets = (ClientSecret.of(secret),)
    jwks, jwks_uri = _client_keys(table, method, settings, fail)

    grant_types = _strings(table, "grant_types", fail, default=_DEFAULT_GRANTS)
    bad = [g for g in grant_types if g not in GRANT_TYPES]
    if bad:
        raise fail(f"has unsupported grant type(s) {', '.join(bad)}; use {', '.join(GRANT_TYPES)}")
    if public and GRANT_CLIENT_CREDENTIALS in grant_types:
        raise fail("is public and cannot use client_credentials")

    redirect_uris = _strings(table, "redirect_uris", fail, default=())
    for uri in redirect_uris:
        parts = urlsplit(uri)
        if not parts.scheme or not parts.netloc or parts.fragment:
            raise fail(f"has redirect URI {uri!r}: it must be absolute, without fragment")
    if GRANT_AUTHORIZATION_CODE in grant_types and not redirect_uris:
        raise fail("uses authorization_code and needs at least one redirect URI")

    scope_list = _strings(table, "scopes", fail, default=())
    try:
        scopes = parse_scope(" ".join(scope_list))
    except OAuthError:
        scopes = None
    if not scopes or any(" " in s for s in scope_list):
        raise fail("needs scopes: a non-empty list of scope names")

    require_pkce = table.get("require_pkce", True)
    if not isinstance(require_pkce, bool):
        raise fail("has a non-boolean require_pkce")
    if public and not require_pkce:
        # A public client has no secret: PKCE is all that binds its code to it.
        raise fail("is public and cannot set require_pkce = false")

    name = table.get("name", client_id)
    if not isinstance(name, str):
        raise fail("has a non-string name")
    return Client(
        client_id=client_id,
        name=name,
        secrets=secrets,
        redirect_uris=tuple(redirect_uris),
        grant_types=frozenset(grant_types),
        scopes=frozenset(scopes),
        auth_methods=frozenset({method}),
        jwks=jwks,
        jwks_uri=jwks_uri,
        require_pkce=require_pkce,
        static=True,
    )


def _client_keys(
    table: Mapping[str, Any], method: str, settings: Settings,
    fail: Callable[[str], ConfigError],
) -> tuple[dict[str, Any] | None, str | None]:
    """``jwks`` and ``jwks_uri``: exactly one of them for ``private_key_jwt``, else none."""
    jwks, jwks_uri = table.get("jwks"), table.get("jwks_uri")
    if method != AUTH_PRIVATE_KEY_JWT:
        if jwks is not None or jwks_uri is not None:
            raise fail("has jwks or jwks_uri, which only private_key_jwt uses")
        return None, None
    if (jwks is None) == (jwks_uri is None):
        raise fail("uses private_key_jwt and needs exactly one of jwks and jwks_uri")
    if jwks_uri is not None:
        refusal = (OutboundPolicy(allow_loopback=settings.outbound_allow_loopback)
                   .refusal(jwks_uri) if isinstance(jwks_uri, str) else "it is not a string")
        if refusal is not None:
            raise fail(f"has jwks_uri {jwks_uri!r}: {refusal}")
        return None, jwks_uri
    if not isinstance(jwks, dict):
        raise fail("has jwks that is not a JWK Set table (keys = [...])")
    try:
        JoseAssertionCodec().public_keys(jwks)
    except InvalidAssertion as exc:
        raise fail(f"has unusable jwks: {exc}") from None
    return jwks, None


def _strings(
    table: Mapping[str, Any],
    key: str,
    fail: Callable[[str], ConfigError],
    *,
    default: tuple[str, ...],
) -> tuple[str, ...]:
    value = table.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise fail(f"has {key} that is not a list of non-empty strings")
    return tuple(value)

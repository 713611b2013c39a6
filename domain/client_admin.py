"""Managing stored clients: the use cases behind the admin API, the CLI and dynamic
registration.

Each takes a :class:`ClientPorts` and a :class:`~domain.client_metadata.ClientDraft` (or
an id), and emits one security event per change (``client_created``, ``client_updated``,
``client_deleted``, ``client_secret_added``). A stored resource server may not take a
static one's ``resource_uri`` (``ClientMetadataError``, 400); the store refuses a stored
one's (``Conflict``, attribute ``resource_uri``, 409). Static clients cannot be changed here:
:class:`StaticClient` is raised, which callers answer with 409. A secret is returned in
clear exactly once, by the call that made it, and kept only as a digest, or also sealed
for a ``client_secret_jwt`` client (HMAC verification needs the secret itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from domain.client_assertion import seal_client_secret
from domain.client_metadata import ClientDraft, ClientMetadataError, KeyCheck, client_metadata
from domain.clients import AUTH_SECRET_JWT, SECRET_METHODS, Client, ClientRegistry, ClientSecret
from domain.errors import Conflict, DomainError, NotFound, PreconditionFailed
from ports.clock import Clock
from ports.events import Events
from ports.sealing import SecretSealer
from ports.security import TokenGenerator
from ports.store import ClientStore

CLIENT_ID_PREFIX = "cl_"
SECRET_PREFIX = "cs_"
REGISTRATION_TOKEN_PREFIX = "rat_"
_ROTATION_ATTEMPTS = 3


class StaticClient(DomainError):
    """The client comes from the configuration (``CLIENTS_FILE``, ``CLIENT_CREDENTIALS``)
    and can only be changed there."""


@dataclass(frozen=True, slots=True)
class ClientPorts:
    store: ClientStore
    static: ClientRegistry
    clock: Clock
    token_generator: TokenGenerator
    sealer: SecretSealer
    events: Events
    #: Checks a ``private_key_jwt`` client's inline ``jwks`` (the JOSE adapter's).
    check_keys: KeyCheck | None = None
    #: The algorithms the server has signing keys for (``id_token_signed_response_alg``).
    signing_algs: tuple[str, ...] | None = None


class NewSecret(msgspec.Struct, frozen=True, kw_only=True):
    """A secret just made: its value (shown once) and how the client holds it."""

    value: str
    held: ClientSecret


def client_view(client: Client) -> dict[str, Any]:
    """What the admin API and the CLI show of a client: its metadata
    (:func:`~domain.client_metadata.client_metadata`), where it comes from, its version, and
    its secrets by public id and expiry (never a digest or a sealed value). Every key added
    here is one the metadata reader ignores, so what a GET returned can be sent in a PUT."""
    view = client_metadata(client)
    view.update({
        "static": client.static,
        "registered": client.registered,
        "version": client.version,
        "client_id_issued_at": client.created_at,
        "updated_at": client.updated_at,
        "secrets": [{"id": s.id, "created_at": s.created_at, "expires_at": s.expires_at}
                    for s in client.secrets],
    })
    return view


def make_secret(ports: ClientPorts, client: Client, value: str | None = None, *,
                expires_at: int | None = None) -> NewSecret:
    """A secret for ``client`` (generated unless ``value`` is given), hashed, and sealed
    too when the client authenticates with ``client_secret_jwt``."""
    value = value if value is not None else ports.token_generator.new(SECRET_PREFIX)
    now = ports.clock.now()
    if AUTH_SECRET_JWT in client.auth_methods:
        held = seal_client_secret(client.client_id, value, ports.sealer, now=now,
                                  expires_at=expires_at)
    else:
        held = ClientSecret.of(value, created_at=now, expires_at=expires_at)
    return NewSecret(value=value, held=held)


def _check_resource_uri(ports: ClientPorts, client: Client) -> None:
    """Refuse a ``resource_uri`` a static client has: the static one would win every
    look-up, so the stored one could never be the server its tokens name."""
    uri = client.resource_uri
    if uri is not None and any(c.resource_uri == uri for c in ports.static):
        raise ClientMetadataError("resource_uri", f"resource_uri {uri} belongs to a static "
                                  "client (CLIENTS_FILE)")


def new_client_id(ports: ClientPorts) -> str:
    return ports.token_generator.new(CLIENT_ID_PREFIX)[:27]


async def create_client(
    ports: ClientPorts, draft: ClientDraft, *, actor: str | None = None
) -> tuple[Client, str | None]:
    """Store the drafted client; return it and its secret in clear (None for a client
    without one). A confidential client that was given no secret gets a generated one.
    ``actor`` names who asked (the admin client's id, ``cli``), for the event."""
    client = draft.client
    if client.client_id in ports.static:
        raise Conflict(f"client {client.client_id!r} is a static client", "client_id")
    _check_resource_uri(ports, client)
    now = ports.clock.now()
    secret = None
    secrets: tuple[ClientSecret, ...] = ()
    if client.auth_methods & SECRET_METHODS:
        made = make_secret(ports, client, draft.secret)
        secret, secrets = made.value, (made.held,)
    stored = await ports.store.create_client(
        msgspec.structs.replace(client, secrets=secrets, created_at=now, updated_at=now))
    ports.events.emit("client_created", client_id=stored.client_id, actor=actor,
                      registered=stored.registered,
                      auth_method=stored.token_endpoint_auth_method,
                      scope=" ".join(sorted(stored.scopes)))
    return stored, secret


async def get_stored_client(ports: ClientPorts, client_id: str) -> Client:
    """The stored client; ``StaticClient`` for a static one, ``NotFound`` when none."""
    if client_id in ports.static:
        raise StaticClient(f"client {client_id!r} is a static client (CLIENTS_FILE or "
                           "CLIENT_CREDENTIALS); change it there")
    client = await ports.store.get_client(client_id)
    if client is None:
        raise NotFound(f"no client {client_id!r}")
    return client


async def update_client(
    ports: ClientPorts, draft: ClientDraft, *, expected_version: int | None = None,
    actor: str | None = None,
    registration_token_digest: str | None = None,
) -> tuple[Client, str | None]:
    """Replace a stored client's metadata, keeping its secrets (a secret in the draft is
    added; a client whose method no longer uses secrets drops them). ``expected_version``
    None: the current one (last writer wins). ``registration_token_digest``: a new
    registration access token (RFC 7592 rotation), in the same write; None keeps the held
    one. Returns the client and a new secret, if any.
    """
    held = await get_stored_client(ports, draft.client.client_id)
    client = draft.client
    _check_resource_uri(ports, client)
    secrets = held.secrets if client.auth_methods & SECRET_METHODS else ()
    new_secret = None
    if AUTH_SECRET_JWT in client.auth_methods and any(s.sealed is None for s in secrets):
        # A digest cannot check an HMAC: the old secrets cannot serve client_secret_jwt.
        secrets = tuple(s for s in secrets if s.sealed is not None)
    if client.auth_methods & SECRET_METHODS and (draft.secret is not None or not secrets):
        made = make_secret(ports, client, draft.secret)
        new_secret, secrets = made.value, (*secrets, made.held)
    replaced = await ports.store.replace_client(
        msgspec.structs.replace(
            client, secrets=secrets, created_at=held.created_at,
            updated_at=ports.clock.now(),
            registration_token_digest=(registration_token_digest
                                       or held.registration_token_digest),
            registered=held.registered),
        expected_version=held.version if expected_version is None else expected_version,
    )
    ports.events.emit("client_updated", client_id=replaced.client_id, actor=actor,
                      version=replaced.version, secret_added=new_secret is not None,
                      scope=" ".join(sorted(replaced.scopes)))
    return replaced, new_secret


async def add_secret(
    ports: ClientPorts, client_id: str, *, expires_at: int | None = None,
    retire_others_at: int | None = None, actor: str | None = None,
) -> tuple[Client, str]:
    """Rotation: give the client one more secret (returned in clear, once). The others
    stay valid until their own expiry, or until ``retire_others_at`` when given (an
    existing expiry is never extended). Expired secrets are dropped.

    The caller names no version: a concurrent change of the client (another rotation, an
    update) is read again and the rotation applied to it, a few times, before
    ``PreconditionFailed`` is let through.
    """
    for attempt in range(1, _ROTATION_ATTEMPTS + 1):
        held = await get_stored_client(ports, client_id)
        if not held.auth_methods & SECRET_METHODS:
            raise Conflict(f"client {client_id!r} authenticates with "
                           f"{held.token_endpoint_auth_method}, which uses no secret",
                           "secrets")
        now = ports.clock.now()
        kept = []
        for secret in held.live_secrets(now):
            if retire_others_at is not None and (secret.expires_at is None
                                                 or secret.expires_at > retire_others_at):
                secret = msgspec.structs.replace(secret, expires_at=retire_others_at)
            kept.append(secret)
        made = make_secret(ports, held, expires_at=expires_at)
        try:
            replaced = await ports.store.replace_client(
                msgspec.structs.replace(held, secrets=(*kept, made.held), updated_at=now),
                expected_version=held.version)
        except PreconditionFailed:
            if attempt == _ROTATION_ATTEMPTS:
                raise
            continue
        ports.events.emit("client_secret_added", client_id=client_id, actor=actor,
                          secret_id=made.held.id, expires_at=expires_at,
                          retire_others_at=retire_others_at, secrets=len(replaced.secrets))
        return replaced, made.value
    raise AssertionError("unreachable")  # the loop returns or raises


async def delete_client(ports: ClientPorts, client_id: str, *, actor: str | None = None
                        ) -> None:
    """Delete a stored client. Its refresh tokens stop working at once (a refresh needs
    the client to authenticate), and so do its access tokens (introspection and userinfo
    treat a token whose client no longer exists as inactive)."""
    await get_stored_client(ports, client_id)
    if not await ports.store.delete_client(client_id):
        raise NotFound(f"no client {client_id!r}")
    ports.events.emit("client_deleted", client_id=client_id, actor=actor)

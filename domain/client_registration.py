"""Dynamic client registration (RFC 7591) and its management protocol (RFC 7592).

``CLIENT_REGISTRATION`` decides who may register: nobody (``off``), anyone (``open``), or
whoever holds an *initial access token* (``token``), made by an operator with
:func:`issue_initial_access_token` (``auth-service client initial-token``, ``POST
/admin/initial-access-tokens``). An initial access token is single-use unless it was
given more uses, expires (a day unless told otherwise), and is spent atomically in the
store, so two instances racing with the last use of one never both register.

A registration returns a *registration access token* once; only its SHA-256 is kept
(``Client.registration_token_digest``), compared in constant time. With it the client
reads (GET), replaces (PUT) and deletes (DELETE) its own registration. Each PUT rotates
it (RFC 7592 section 2.2 allows it): a token that leaked is good until the next update
at most. Deleting a registration ends its tokens at once (``domain.client_admin``).

What a registration may say is ``domain.client_metadata``'s rule for the ``registration``
source (unknown metadata ignored, no service scopes, https / loopback / private-use
redirect URIs), and no ``client_credentials`` grant: a registered client acts only for a
signed-in user. The use cases here raise :class:`RegistrationError` (an RFC 7591 / RFC 6750
error code and a description) and never an HTTP exception.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import msgspec

from domain.client_admin import (
    REGISTRATION_TOKEN_PREFIX,
    ClientPorts,
    create_client,
    delete_client,
    new_client_id,
    update_client,
)
from domain.client_metadata import (
    MAX_CLIENT_ID_LENGTH,
    ClientDraft,
    ClientMetadataError,
    KeyCheck,
    MetadataSource,
    client_metadata,
    parse_client_metadata,
)
from domain.clients import GRANT_CLIENT_CREDENTIALS, Client, InitialAccessToken, hash_secret
from domain.errors import NotFound
from domain.text import is_storable
from ports.clock import Clock
from ports.events import Events
from ports.security import TokenGenerator
from ports.store import ClientStore

REGISTRATION_OFF = "off"
REGISTRATION_OPEN = "open"
REGISTRATION_TOKEN = "token"
INITIAL_TOKEN_PREFIX = "iat_"
#: An initial access token lives a day unless the operator says otherwise.
DEFAULT_INITIAL_TOKEN_SECONDS = 86_400
MAX_INITIAL_TOKEN_USES = 1_000_000
MAX_INITIAL_TOKEN_SECONDS = 31_536_000
# Our tokens are ~50 characters; anything much longer is not one, and is not hashed.
_MAX_TOKEN_LENGTH = 512
# Compared against when there is nothing to compare with (unknown client, no digest), so
# that a refusal costs what an acceptance costs.
_NO_DIGEST = hash_secret("auth-service: no registration access token")

INVALID_TOKEN = "invalid_token"
INVALID_METADATA = "invalid_client_metadata"


class RegistrationError(Exception):
    """A refused registration request: ``error`` is the RFC 7591 section 3.2.2 code
    (``invalid_redirect_uri``, ``invalid_client_metadata``), or ``invalid_token`` (RFC
    6750) for a missing or wrong initial or registration access token; ``disabled`` when
    registration is off."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


class RegistrationDisabled(RegistrationError):
    def __init__(self) -> None:
        super().__init__("not_found", "dynamic client registration is not enabled on this "
                         "server (CLIENT_REGISTRATION=off)")


class Registration(msgspec.Struct, frozen=True, kw_only=True):
    """A registration as the client sees it: the client, its secret and registration
    access token in clear when they were just made (None otherwise)."""

    client: Client
    client_secret: str | None = None
    registration_access_token: str | None = None

    def response(self, registration_client_uri: str) -> dict[str, Any]:
        """The RFC 7591 section 3.2.1 (and RFC 7592 section 3) response body."""
        body = client_metadata(self.client)
        body["client_id_issued_at"] = self.client.created_at
        body["registration_client_uri"] = registration_client_uri
        if self.client_secret is not None:
            body["client_secret"] = self.client_secret
        if self.client.secrets:
            expiries = [s.expires_at for s in self.client.secrets]
            # RFC 7591: 0 means the secret does not expire.
            body["client_secret_expires_at"] = (
                0 if None in expiries else max(e for e in expiries if e is not None))
        if self.registration_access_token is not None:
            body["registration_access_token"] = self.registration_access_token
        return body


class IssuedInitialToken(msgspec.Struct, frozen=True, kw_only=True):
    """An initial access token just made: its value (shown once) and what is stored."""

    value: str
    token: InitialAccessToken


async def issue_initial_access_token(
    store: ClientStore, clock: Clock, token_generator: TokenGenerator, events: Events, *,
    uses: int = 1, expires_in: int | None = DEFAULT_INITIAL_TOKEN_SECONDS,
) -> IssuedInitialToken:
    """Make an initial access token good for ``uses`` registrations until ``expires_in``
    seconds from now (None: no expiry). Raises ``ValueError`` for out-of-range values."""
    if isinstance(uses, bool) or not isinstance(uses, int) or not (
            1 <= uses <= MAX_INITIAL_TOKEN_USES):
        raise ValueError(f"uses must be a whole number from 1 to {MAX_INITIAL_TOKEN_USES}")
    if expires_in is not None and (isinstance(expires_in, bool) or not isinstance(
            expires_in, int) or not 1 <= expires_in <= MAX_INITIAL_TOKEN_SECONDS):
        raise ValueError("expires_in must be a whole number of seconds from 1 to "
                         f"{MAX_INITIAL_TOKEN_SECONDS}")
    now = clock.now()
    value = token_generator.new(INITIAL_TOKEN_PREFIX)
    token = InitialAccessToken(digest=hash_secret(value), uses_left=uses, created_at=now,
                               expires_at=None if expires_in is None else now + expires_in)
    await store.save_initial_access_token(token, now)
    events.emit("initial_access_token_created", token_id=token.digest[:12], uses=uses,
                expires_at=token.expires_at)
    return IssuedInitialToken(value=value, token=token)


async def register_client(
    ports: ClientPorts, document: Mapping[str, Any], *, mode: str,
    initial_token: str | None, allow_loopback_http: bool = False,
) -> Registration:
    """Register the client ``document`` describes (RFC 7591 section 3.1).

    A ``client_secret`` in the document is ignored: a confidential client always gets a
    generated one. With ``mode`` ``token``, ``initial_token`` must be a live initial access
    token; one of its uses is spent only once the metadata is known to be acceptable, so a
    typo in a registration does not burn a single-use token.
    """
    if mode not in (REGISTRATION_OPEN, REGISTRATION_TOKEN):
        raise RegistrationDisabled
    if mode == REGISTRATION_TOKEN and not initial_token:
        raise RegistrationError(INVALID_TOKEN, "an initial access token is required "
                                "(Authorization: Bearer)")
    # The server issues secrets (RFC 7591 section 3.2.1): a chosen one may be guessable.
    metadata = {k: v for k, v in document.items() if k != "client_secret"}
    draft = _parse(metadata, new_client_id(ports), allow_loopback_http, ports.check_keys,
                   ports.signing_algs)
    if mode == REGISTRATION_TOKEN and not await _spend_initial_token(ports, initial_token):
        raise RegistrationError(INVALID_TOKEN, "the initial access token is invalid, "
                                "expired or used up")
    token = ports.token_generator.new(REGISTRATION_TOKEN_PREFIX)
    client = msgspec.structs.replace(draft.client, registered=True,
                                     registration_token_digest=hash_secret(token))
    stored, secret = await create_client(ports, ClientDraft(client=client,
                                                            secret=draft.secret))
    return Registration(client=stored, client_secret=secret, registration_access_token=token)


async def read_registration(ports: ClientPorts, client_id: str, token: str | None) -> Client:
    """The registered client, for the holder of its registration access token (RFC 7592
    section 2.1)."""
    return await _authorized(ports, client_id, token)


async def update_registration(
    ports: ClientPorts, client_id: str, token: str | None, document: Mapping[str, Any], *,
    allow_loopback_http: bool = False,
) -> Registration:
    """Replace the registered client's metadata with ``document`` (RFC 7592 section 2.2):
    what it omits is reset to the default. It must name the client's ``client_id``; a
    ``client_secret`` in it must be one the client holds (a client cannot choose its
    secret). Returns the client with a new registration access token."""
    held = await _authorized(ports, client_id, token)
    if document.get("client_id") != client_id:
        raise RegistrationError(INVALID_METADATA, "the body must include the client's "
                                "client_id, unchanged")
    secret = document.get("client_secret")
    if secret is not None and not (isinstance(secret, str) and is_storable(secret)
                                   and held.secret_matches(secret, ports.clock.now())):
        raise RegistrationError(INVALID_METADATA, "client_secret does not match the "
                                "client's current secret; it cannot be chosen by the client")
    draft = _parse({k: v for k, v in document.items() if k != "client_secret"}, client_id,
                   allow_loopback_http, ports.check_keys, ports.signing_algs)
    rotated = ports.token_generator.new(REGISTRATION_TOKEN_PREFIX)
    try:
        updated, new_secret = await update_client(
            ports, draft, expected_version=held.version,
            registration_token_digest=hash_secret(rotated))
    except NotFound:
        raise _unauthorized() from None
    return Registration(client=updated, client_secret=new_secret,
                        registration_access_token=rotated)


async def delete_registration(ports: ClientPorts, client_id: str, token: str | None) -> None:
    """Delete the registered client (RFC 7592 section 2.3): its tokens stop working."""
    await _authorized(ports, client_id, token)
    try:
        await delete_client(ports, client_id)
    except NotFound:
        raise _unauthorized() from None


def _parse(document: Mapping[str, Any], client_id: str, allow_loopback_http: bool,
           check_keys: KeyCheck | None,
           signing_algs: tuple[str, ...] | None = None) -> ClientDraft:
    try:
        draft = parse_client_metadata(document, source=MetadataSource.REGISTRATION,
                                     client_id=client_id,
                                     allow_loopback_http=allow_loopback_http,
                                     check_keys=check_keys, signing_algs=signing_algs)
    except ClientMetadataError as exc:
        raise RegistrationError(exc.error, exc.description) from None
    if GRANT_CLIENT_CREDENTIALS in draft.client.grant_types:
        # A registered client gets user scopes only, which a signed-in user delegates; with
        # client_credentials anyone could mint API tokens (read, write) for no user at all.
        raise RegistrationError(INVALID_METADATA, "grant_types: client_credentials is for "
                                "clients an operator creates, never for a registered client")
    return draft


async def _spend_initial_token(ports: ClientPorts, token: str | None) -> bool:
    if not token or len(token) > _MAX_TOKEN_LENGTH or not token.startswith(
            INITIAL_TOKEN_PREFIX):
        return False
    return await ports.store.use_initial_access_token(hash_secret(token), ports.clock.now())


def _unauthorized() -> RegistrationError:
    # One answer for an unknown client, a static or operator-made one, and a wrong token
    # (RFC 7592 section 2: a client that does not exist is a 401 too), so that the
    # endpoint tells a stranger nothing about which client ids exist.
    return RegistrationError(INVALID_TOKEN, "the registration access token is invalid for "
                             "this client")


async def _authorized(ports: ClientPorts, client_id: str, token: str | None) -> Client:
    if not token:
        raise RegistrationError(INVALID_TOKEN, "a registration access token is required "
                                "(Authorization: Bearer)")
    client = None
    if (client_id not in ports.static and len(token) <= _MAX_TOKEN_LENGTH
            and len(client_id) <= MAX_CLIENT_ID_LENGTH and is_storable(client_id)):
        client = await ports.store.get_client(client_id)
    expected = (client.registration_token_digest if client is not None
                and client.registered else None)
    matches = hmac.compare_digest(hash_secret(token), expected or _NO_DIGEST)
    if client is None or expected is None or not matches:
        raise _unauthorized()
    return client

"""OAuth clients and their authentication.

A client is *static* (from ``CLIENT_CREDENTIALS`` or ``CLIENTS_FILE``, read at start-up,
read-only) or *stored* (created through the admin API, the CLI or dynamic registration,
kept in the Store's client part). :class:`ClientRegistry` holds the static ones;
:class:`~domain.client_directory.ClientDirectory` looks a client up in both, static first.

Client secrets are high-entropy values (at least 32 characters, refused otherwise), so a
SHA-256 digest compared in constant time protects them as well as a slow hash would,
without capping the token endpoint's throughput. Only the digest is kept, except for a
client that authenticates with ``client_secret_jwt``: checking an HMAC needs the secret
itself, so that secret is also kept *sealed* (AES-GCM, ``ports.sealing``), never in clear.
A client may hold several secrets at once, each with an optional expiry, so that a secret
can be rotated without downtime.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

GRANT_AUTHORIZATION_CODE = "authorization_code"
GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_REFRESH_TOKEN = "refresh_token"
#: The device authorization grant (RFC 8628 section 3.4), for devices without a browser.
GRANT_DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
#: RFC 8693: a service exchanges a user's access token for one meant for another API.
GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
GRANT_TYPES: tuple[str, ...] = (
    GRANT_AUTHORIZATION_CODE,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_REFRESH_TOKEN,
    GRANT_DEVICE_CODE,
    GRANT_TOKEN_EXCHANGE,
)

AUTH_BASIC = "client_secret_basic"
AUTH_POST = "client_secret_post"
AUTH_NONE = "none"
AUTH_PRIVATE_KEY_JWT = "private_key_jwt"
AUTH_SECRET_JWT = "client_secret_jwt"
AUTH_METHODS: tuple[str, ...] = (
    AUTH_BASIC, AUTH_POST, AUTH_SECRET_JWT, AUTH_PRIVATE_KEY_JWT, AUTH_NONE,
)
#: The methods that prove a shared secret (and so need the client to hold one).
SECRET_METHODS = frozenset({AUTH_BASIC, AUTH_POST, AUTH_SECRET_JWT})

RESPONSE_TYPE_CODE = "code"

# Compared against when the client id is unknown or public, so that every failed
# authentication runs the same digest and comparison.
_DUMMY_HASH = hashlib.sha256(b"auth-service: no such client").hexdigest()


def hash_secret(secret: str) -> str:
    """Lowercase hex SHA-256 of the secret: the only form in which a client secret is kept."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class ClientSecret(msgspec.Struct, frozen=True, kw_only=True):
    """One secret of a client.

    ``id`` is public (it names the secret in listings; derived from the digest, so it
    reveals nothing). ``sealed`` holds the secret sealed by the server's sealing key, only
    for clients that use ``client_secret_jwt``. ``expires_at`` None: valid until removed.
    """

    id: str
    digest: str
    created_at: int = 0
    expires_at: int | None = None
    sealed: str | None = None

    @classmethod
    def of(cls, secret: str, *, created_at: int = 0, expires_at: int | None = None,
           sealed: str | None = None) -> ClientSecret:
        digest = hash_secret(secret)
        return cls(id=digest[:12], digest=digest, created_at=created_at,
                   expires_at=expires_at, sealed=sealed)

    def live(self, now: int) -> bool:
        return self.expires_at is None or self.expires_at > now


class Client(msgspec.Struct, frozen=True, kw_only=True):
    """A client and its metadata (RFC 7591 names where RFC 7591 has one; docs/clients.md).

    ``auth_methods`` lists the authentication methods the client may use at the token,
    introspection and revocation endpoints (a ``CLIENT_CREDENTIALS`` client may use both
    ``client_secret_basic`` and ``client_secret_post``; every other client exactly its
    ``token_endpoint_auth_method``). A public client has the single method ``none``.
    ``require_pkce`` False is the opt-out of a legacy confidential client from PKCE (OAuth
    2.1 section 7.5.1); a public client always needs PKCE, whatever it says.

    ``static`` clients come from the configuration and cannot be changed at run time.
    ``registered`` clients were created by dynamic registration (RFC 7591): they never get
    service scopes, and ``registration_token_digest`` is the SHA-256 of the registration
    access token that lets them read, update and delete themselves (RFC 7592).
    ``version`` starts at 1 when stored and grows by one with every replace.
    """

    client_id: str
    name: str
    secrets: tuple[ClientSecret, ...] = ()
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    grant_types: frozenset[str] = frozenset()
    response_types: frozenset[str] = frozenset({RESPONSE_TYPE_CODE})
    scopes: frozenset[str] = frozenset()
    auth_methods: frozenset[str] = frozenset({AUTH_BASIC})
    #: A JWK Set (``{"keys": [...]}``) of the client's public keys, for ``private_key_jwt``.
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = False
    #: Seconds; None: the server's ``ACCESS_TOKEN_TTL_SECONDS`` / ``REFRESH_TOKEN_TTL_SECONDS``.
    access_token_lifetime: int | None = None
    refresh_token_lifetime: int | None = None
    require_pkce: bool = True
    require_mfa: bool = False
    #: Trusted by the operator: skips the consent screen.
    first_party: bool = False
    #: Whether ending a browser session (logout, deprovisioning) revokes the tokens this
    #: client got in it, refresh tokens included; False keeps them (offline access).
    revoke_tokens_on_logout: bool = True
    #: The JWS ``alg`` of this client's ID tokens (OIDC Registration); None: RS256 when the
    #: server has an RSA key, else its primary key's algorithm.
    id_token_signed_response_alg: str | None = None
    #: RFC 9449 section 5.2: every token request of this client must carry a DPoP proof.
    dpop_bound_access_tokens: bool = False
    allowed_cors_origins: tuple[str, ...] = ()
    #: A resource server (RFC 8707, ``domain.resources``): its resource identifier, the
    #: API scopes it defines, and the format of the access tokens meant for it.
    resource_uri: str | None = None
    resource_scopes: frozenset[str] = frozenset()
    access_token_format: str = "opaque"
    #: Trusted by the operator to introspect every token (a gateway in front of older
    #: APIs), not only its own and those meant for it.
    introspect_any_token: bool = False
    #: The resource URIs this client may exchange a user's token for (RFC 8693,
    #: ``domain.token_exchange``); set by the operator only. Empty: none.
    token_exchange_audiences: tuple[str, ...] = ()
    static: bool = False
    registered: bool = False
    registration_token_digest: str | None = None
    version: int = 0
    created_at: int = 0
    updated_at: int = 0

    @property
    def is_public(self) -> bool:
        return AUTH_NONE in self.auth_methods

    @property
    def token_endpoint_auth_method(self) -> str:
        """The RFC 7591 ``token_endpoint_auth_method``: the client's method, or
        ``client_secret_basic`` for a client that may use both secret methods."""
        if len(self.auth_methods) == 1:
            return next(iter(self.auth_methods))
        return AUTH_BASIC if AUTH_BASIC in self.auth_methods else min(self.auth_methods)

    @property
    def needs_pkce(self) -> bool:
        """Whether an authorization code of this client must be bound to a PKCE challenge."""
        return self.require_pkce or self.is_public

    def allows_grant(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def allows_scopes(self, scopes: Iterable[str]) -> bool:
        return all(scope in self.scopes for scope in scopes)

    def live_secrets(self, now: int) -> tuple[ClientSecret, ...]:
        return tuple(s for s in self.secrets if s.live(now))

    def secret_matches(self, secret: str, now: int) -> bool:
        """Whether ``secret`` is one of the client's unexpired secrets.

        One SHA-256, then a constant-time comparison with every secret the client holds
        (expired ones included, their verdict discarded), so timing tells nothing about
        which secret matched or whether one had expired.
        """
        digest = hash_secret(secret)
        matched = False
        for held in self.secrets:
            if hmac.compare_digest(digest, held.digest) and held.live(now):
                matched = True
        return matched


def check_secret(client: Client | None, secret: str, method: str, now: int) -> Client | None:
    """``client``, when ``method`` is a secret method it may use and ``secret`` proves it.

    Always costs one digest and at least one constant-time comparison, whether the client
    exists or not, so that timing does not reveal which client ids exist.
    """
    if client is None or client.is_public or not client.secrets:
        hmac.compare_digest(hash_secret(secret), _DUMMY_HASH)
        return None
    if not client.secret_matches(secret, now):
        return None
    return client if method in client.auth_methods else None


class InitialAccessToken(msgspec.Struct, frozen=True, kw_only=True):
    """What lets a caller register a client when ``CLIENT_REGISTRATION=token`` (RFC 7591
    section 3): stored by the SHA-256 ``digest`` of the token, usable ``uses_left`` more
    times, until ``expires_at`` (None: no expiry)."""

    digest: str
    uses_left: int
    created_at: int
    expires_at: int | None = None

    def live(self, now: int) -> bool:
        return self.uses_left > 0 and (self.expires_at is None or self.expires_at > now)


class ClientRegistry:
    """The static clients, by id. Built once at start-up, read-only afterwards."""

    __slots__ = ("_clients",)

    def __init__(self, clients: Iterable[Client] = ()) -> None:
        self._clients: dict[str, Client] = {}
        for client in clients:
            if client.client_id in self._clients:
                raise ValueError(f"client {client.client_id!r} is registered twice")
            self._clients[client.client_id] = client

    def get(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._clients

    def __iter__(self) -> Iterator[Client]:
        return iter(self._clients.values())

    def __len__(self) -> int:
        return len(self._clients)

    def authenticate(
        self, client_id: str, secret: str | None, method: str, now: int = 0
    ) -> Client | None:
        """The static client, when ``method`` is one it may use and ``secret`` proves it.

        ``method`` is ``client_secret_basic``, ``client_secret_post`` or ``none`` (a public
        client sending only its id). See :func:`check_secret` for the timing rule.
        """
        client = self._clients.get(client_id)
        if method == AUTH_NONE:
            return authenticate_public(client, secret)
        return check_secret(client, secret or "", method, now)


def authenticate_public(client: Client | None, secret: str | None) -> Client | None:
    """``client``, when it is public and was named without a secret."""
    if secret is not None or client is None or not client.is_public:
        return None
    return client

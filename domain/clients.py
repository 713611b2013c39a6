"""OAuth clients and their authentication.

Client secrets are high-entropy values (at least 32 characters, refused otherwise at
start-up), so a SHA-256 digest compared in constant time protects them as well as a slow
hash would, without capping the token endpoint's throughput. Only the digest is kept.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator

import msgspec

GRANT_AUTHORIZATION_CODE = "authorization_code"
GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_REFRESH_TOKEN = "refresh_token"
GRANT_TYPES: tuple[str, ...] = (
    GRANT_AUTHORIZATION_CODE,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_REFRESH_TOKEN,
)

AUTH_BASIC = "client_secret_basic"
AUTH_POST = "client_secret_post"
AUTH_NONE = "none"
AUTH_METHODS: tuple[str, ...] = (AUTH_BASIC, AUTH_POST, AUTH_NONE)

# Compared against when the client id is unknown or public, so that every failed
# authentication runs the same digest and comparison.
_DUMMY_HASH = hashlib.sha256(b"auth-service: no such client").hexdigest()


def hash_secret(secret: str) -> str:
    """Lowercase hex SHA-256 of the secret: the only form in which a client secret is kept."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class Client(msgspec.Struct, frozen=True, kw_only=True):
    """A registered client.

    ``secret_hash`` is None for a public client (``token_endpoint_auth_method`` ``none``).
    ``auth_methods`` lists the authentication methods the client may use at the token,
    introspection and revocation endpoints. ``require_pkce`` False is the opt-out of a
    legacy confidential client from PKCE (OAuth 2.1 section 7.5.1); a public client always
    needs PKCE, whatever it says.
    """

    client_id: str
    name: str
    secret_hash: str | None = None
    redirect_uris: tuple[str, ...] = ()
    grant_types: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    auth_methods: frozenset[str] = frozenset({AUTH_BASIC})
    require_pkce: bool = True

    @property
    def is_public(self) -> bool:
        return self.secret_hash is None

    @property
    def needs_pkce(self) -> bool:
        """Whether an authorization code of this client must be bound to a PKCE challenge."""
        return self.require_pkce or self.is_public

    def allows_grant(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def allows_scopes(self, scopes: Iterable[str]) -> bool:
        return all(scope in self.scopes for scope in scopes)


class ClientRegistry:
    """The clients this server knows, by id. Built once at start-up, read-only afterwards."""

    __slots__ = ("_clients",)

    def __init__(self, clients: Iterable[Client] = ()) -> None:
        self._clients: dict[str, Client] = {}
        for client in clients:
            if client.client_id in self._clients:
                raise ValueError(f"client {client.client_id!r} is registered twice")
            self._clients[client.client_id] = client

    def get(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def __iter__(self) -> Iterator[Client]:
        return iter(self._clients.values())

    def __len__(self) -> int:
        return len(self._clients)

    def authenticate(self, client_id: str, secret: str | None, method: str) -> Client | None:
        """The client, when ``method`` is one it may use and ``secret`` proves it; else None.

        ``method`` is ``client_secret_basic``, ``client_secret_post`` or ``none`` (a public
        client sending only its id). Confidential clients always cost one SHA-256 and one
        constant-time comparison, whether the id exists or not, so that timing does not
        reveal which client ids exist.
        """
        client = self._clients.get(client_id)
        if method == AUTH_NONE:
            if secret is not None or client is None or not client.is_public:
                return None
            return client if AUTH_NONE in client.auth_methods else None
        expected = _DUMMY_HASH
        if client is not None and client.secret_hash is not None:
            expected = client.secret_hash
        matches = hmac.compare_digest(hash_secret(secret or ""), expected)
        if not matches or client is None or client.is_public:
            return None
        return client if method in client.auth_methods else None

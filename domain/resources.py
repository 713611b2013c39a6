"""Resource servers and audiences (RFC 8707), and JWT access tokens (RFC 9068).

A *resource server* is a client with a ``resource_uri`` (its RFC 8707 identifier): it
authenticates to introspect tokens, and it names what a token may be for. A request's
``resource`` values (authorization and token requests; several allowed) become the
token's ``aud``; the token's API scopes are limited to the ``resource_scopes`` of those
servers, while identity scopes (:data:`~domain.scopes.IDENTITY_SCOPES`) pass unchanged.
Without ``resource``, ``DEFAULT_RESOURCE`` applies when set, else the token has no
audience (and no scope is limited).

A grant is *bound* to the resources of its authorization request (kept on the code and
the refresh token): a token request of that grant may name some of them (narrowing),
never another. A grant whose authorization request named none is not bound: each token
request may name any resource server (its scopes are limited all the same).

Resource servers are found among the static clients first (``CLIENTS_FILE``), through an
index built at start-up (a dict read on the token endpoint's hot path; a clash stops the
start-up), then among the stored clients (admin API, CLI) through
``ClientStore.find_client_by_resource`` (one store read; the store keeps resource URIs
unique among stored clients, and the admin use cases refuse a static client's URI).

Introspection (RFC 7662 section 4) answers a token's details only to the client it was
issued to, to the resource servers in its ``aud``, and to clients with
``introspect_any_token``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import msgspec

from domain.clients import Client
from domain.entities import AccessToken
from domain.scopes import IDENTITY_SCOPES, SERVICE_SCOPES
from domain.token_binding import confirmation
from ports.store import ClientStore

ACCESS_TOKEN_OPAQUE = "opaque"
ACCESS_TOKEN_JWT = "jwt"
ACCESS_TOKEN_FORMATS: tuple[str, ...] = (ACCESS_TOKEN_OPAQUE, ACCESS_TOKEN_JWT)
#: The JWS ``typ`` of a JWT access token (RFC 9068 section 2.1).
AT_JWT_TYPE = "at+jwt"
#: The JWS ``typ`` of a signed introspection response (RFC 9701 section 5).
INTROSPECTION_JWT_TYPE = "token-introspection+jwt"
#: Longest resource URI accepted (a token carries each; a JWT repeats them).
MAX_RESOURCE_LENGTH = 512
#: Most ``resource`` values one request may name.
MAX_RESOURCES = 10
#: Error code of RFC 8707 section 2 for a resource that is invalid, unknown or not allowed.
INVALID_TARGET = "invalid_target"


class ResourceRefused(Exception):
    """A ``resource`` the server cannot accept: ``invalid_target`` (RFC 8707 section 2)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.error = INVALID_TARGET
        self.description = description


def resource_uri_problem(uri: str) -> str | None:
    """Why ``uri`` is not a resource indicator (RFC 8707 section 2: an absolute URI
    without fragment), or None."""
    if not uri or len(uri) > MAX_RESOURCE_LENGTH:
        return f"must be an absolute URI of at most {MAX_RESOURCE_LENGTH} characters"
    if any(c.isspace() or ord(c) < 0x21 or ord(c) == 0x7F for c in uri):
        return "must be an absolute URI (no spaces or control characters)"
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "is not a URI"
    if not parts.scheme or not (parts.netloc or parts.path):
        return "must be an absolute URI (with a scheme)"
    if "#" in uri:
        return "must not have a fragment"
    if parts.scheme.lower() in ("http", "https") and not parts.hostname:
        return "has no host"
    return None


class Audience(msgspec.Struct, frozen=True):
    """What a token is for: the resource URIs (its ``aud``, in request order) and their
    resource servers. Empty: a token without audience."""

    resources: tuple[str, ...] = ()
    servers: tuple[Client, ...] = ()

    @property
    def jwt(self) -> bool:
        """Whether the token is a JWT: every server of the audience asked for one. With
        mixed formats the token stays opaque, which every server can introspect."""
        return bool(self.servers) and all(
            s.access_token_format == ACCESS_TOKEN_JWT for s in self.servers)

    def limit(self, scopes: Iterable[str]) -> tuple[str, ...]:
        """``scopes`` without the API scopes none of the audience's servers defines
        (identity scopes are kept; with no audience nothing is limited)."""
        if not self.servers:
            return tuple(scopes)
        defined = frozenset().union(*(s.resource_scopes for s in self.servers))
        return tuple(s for s in scopes if s in IDENTITY_SCOPES or s in defined)


NO_AUDIENCE = Audience()


class ResourceServers:
    """The resource servers, by resource URI: the static clients that have one (indexed
    once at start-up, read-only afterwards), then the stored ones (``store``, asked on each
    look-up, so that one created, changed or deleted at run time counts at once on every
    instance). And the ``DEFAULT_RESOURCE``: a static server's or a stored one's, looked up
    when it is used (a stored one may be created after the start-up), so that one naming
    no server makes the requests it applies to ``invalid_target``."""

    __slots__ = ("_servers", "_store", "default")

    def __init__(self, clients: Iterable[Client] = (), default: str | None = None,
                 store: ClientStore | None = None) -> None:
        self._servers: dict[str, Client] = {}
        for client in clients:
            uri = client.resource_uri
            if uri is None:
                continue
            held = self._servers.get(uri)
            if held is not None:
                raise ValueError(f"clients {held.client_id!r} and {client.client_id!r} have "
                                 f"the same resource_uri {uri!r}")
            self._servers[uri] = client
        self._store = store
        self.default = default

    def get(self, resource_uri: str) -> Client | None:
        """The static resource server of ``resource_uri`` (no store read), or None."""
        return self._servers.get(resource_uri)

    async def find(self, resource_uri: str) -> Client | None:
        """The resource server of ``resource_uri``: a static one, else a stored one."""
        server = self._servers.get(resource_uri)
        if server is None and self._store is not None:
            server = await self._store.find_client_by_resource(resource_uri)
        return server

    async def named(self, name: str) -> Client | None:
        """The resource server ``name`` names: by its resource URI, else by its client id
        (the RFC 8693 ``audience`` parameter is a logical name); static ones first."""
        found = await self.find(name)
        if found is None:
            found = next((s for s in self._servers.values() if s.client_id == name), None)
        if found is None and self._store is not None:
            stored = await self._store.get_client(name)
            if stored is not None and stored.resource_uri is not None:
                found = stored
        return found

    def __len__(self) -> int:
        return len(self._servers)

    async def audience(
        self, requested: tuple[str, ...], bound: tuple[str, ...] = (),
        scopes: tuple[str, ...] = (),
    ) -> Audience:
        """The audience of a token for the ``resource`` values of its request.

        ``bound`` holds the resources the grant is bound to (empty: not bound): a request
        may name only some of them, and without ``resource`` the token is for all of them.
        An unbound request without ``resource`` gets ``DEFAULT_RESOURCE``, if any, when
        ``scopes`` holds an API scope: a request for identity and service scopes only is
        for this server itself (userinfo, SCIM, admin), whose tokens have no audience.
        Raises :class:`ResourceRefused` for a malformed, unknown or unbound resource.
        """
        if not requested:
            wants_api = any(s not in IDENTITY_SCOPES and s not in SERVICE_SCOPES
                            for s in scopes)
            default = (self.default,) if self.default is not None and wants_api else ()
            requested = bound or default
        elif bound:
            outside = [r for r in requested if r not in bound]
            if outside:
                raise ResourceRefused(f"{outside[0]} was not part of the authorization")
        servers = tuple([await self.server(uri) for uri in requested])
        return Audience(requested, servers)

    async def server(self, resource_uri: str) -> Client:
        """The resource server of ``resource_uri``; :class:`ResourceRefused` when none."""
        problem = resource_uri_problem(resource_uri)
        server = None if problem is not None else await self.find(resource_uri)
        if server is None:
            raise ResourceRefused(f"resource {problem}" if problem is not None
                                  else f"{resource_uri} is not a known resource server")
        return server


def parse_resources(values: Iterable[str]) -> tuple[str, ...]:
    """The ``resource`` values of a request, duplicates removed, order kept; each must be
    an absolute URI without fragment (else :class:`ResourceRefused`)."""
    resources = tuple(dict.fromkeys(v for v in values if v))
    if len(resources) > MAX_RESOURCES:
        raise ResourceRefused(f"at most {MAX_RESOURCES} resource values are accepted")
    for uri in resources:
        problem = resource_uri_problem(uri)
        if problem is not None:
            raise ResourceRefused(f"resource {problem}")
    return resources


async def may_introspect(
    client: Client, token: AccessToken, servers: ResourceServers | None = None
) -> bool:
    """Whether ``client`` may see the details of ``token`` (RFC 7662 section 4): it is the
    token's client, a resource server of its audience, or trusted with every token.

    With ``servers``, a client that names a resource of the audience must also be the
    server ``servers`` finds for it (static or stored): a client holding a stale copy of
    a ``resource_uri`` that another client now has sees nothing."""
    if client.client_id == token.client_id or client.introspect_any_token:
        return True
    uri = client.resource_uri
    if uri is None or uri not in token.audience:
        return False
    if servers is None:
        return True
    server = await servers.find(uri)
    return server is not None and server.client_id == client.client_id


def aud_claim(audience: tuple[str, ...]) -> str | list[str] | None:
    """The ``aud`` claim of an audience: one string, or a list of several (RFC 7519
    section 4.1.3); None for none."""
    if not audience:
        return None
    return audience[0] if len(audience) == 1 else list(audience)


def act_claim(actors: tuple[str, ...]) -> dict[str, Any] | None:
    """The ``act`` claim (RFC 8693 section 4.1) of a token's actor chain (current actor
    first): ``{"sub": actor, "act": {...earlier actors}}``; None when there is none."""
    claim: dict[str, Any] | None = None
    for actor in reversed(actors):
        claim = {"sub": actor} if claim is None else {"sub": actor, "act": claim}
    return claim


def access_token_claims(
    *, issuer: str, token: AccessToken, jti: str, acr: str | None,
) -> dict[str, Any]:
    """The claims of a JWT access token (RFC 9068 section 2.2) for ``token``'s record.

    ``sub`` is the user, or the client itself for its own token (section 2.2); ``cnf``
    names the key a bound token is bound to.
    """
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": token.sub if token.sub is not None else token.client_id,
        "aud": aud_claim(token.audience),
        "exp": token.exp,
        "iat": token.iat,
        "jti": jti,
        "client_id": token.client_id,
        "scope": token.scope,
    }
    if token.auth_time is not None and token.sub is not None:
        claims["auth_time"] = token.auth_time
    if acr is not None and token.sub is not None:
        claims["acr"] = acr
    cnf = confirmation(token.token_binding)
    if cnf is not None:
        claims["cnf"] = cnf
    act = act_claim(token.act)
    if act is not None:
        claims["act"] = act
    return claims


def signed_introspection_claims(
    *, issuer: str, client_id: str, now: int, introspection: dict[str, Any]
) -> dict[str, Any]:
    """The claims of a signed introspection response (RFC 9701 section 5): for the client
    that asked (``aud``), the introspection answer under ``token_introspection``."""
    return {"iss": issuer, "aud": client_id, "iat": now,
            "token_introspection": introspection}

"""Token exchange (RFC 8693): a service that holds a user's access token gets one for
another API, to call it on the user's behalf.

The exchanging client must allow the grant type and name the resource servers it may
exchange for (``token_exchange_audiences``, set by the operator); anything else is
``unauthorized_client``, and a target outside that list is ``invalid_target``. The
``subject_token`` is an active access token of ours with a user ``sub``, issued to the
exchanging client or meant for it (the same rule as introspection,
:func:`domain.resources.may_introspect`); else ``invalid_request``. The new token:

- belongs to the subject token's grant (same ``sub``, sign-in and ``grant_id``), so that
  revoking the grant (logout, a reused refresh token, deprovisioning) revokes it too;
- is issued to the exchanging client (``client_id``), for the targets only (``aud``);
- carries the subject's API scopes the targets define, narrowed by ``scope`` (never more
  than the subject's: ``invalid_scope``); identity scopes are not exchanged, since the
  new token is for an API, not for userinfo;
- never outlives the subject token, and comes without a refresh token;
- names its actor in ``act`` (the ``actor_token``'s client, else the exchanging client),
  nested over the subject's own ``act`` when the subject was itself exchanged.
"""

from __future__ import annotations

import msgspec

from domain.clients import GRANT_TOKEN_EXCHANGE, Client
from domain.entities import AccessToken
from domain.oauth import (
    OAuthError,
    OAuthPorts,
    audience_of,
    client_exists,
    new_user_access_token,
    parse_scope,
)
from domain.resources import INVALID_TARGET, Audience, may_introspect
from domain.scopes import IDENTITY_SCOPES
from domain.token_binding import token_type
from domain.tokens import hash_token, is_access_token

#: RFC 8693 section 3: the token type identifiers this server accepts.
TOKEN_TYPE_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
REQUESTED_TOKEN_TYPES = frozenset({TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT})


class ExchangeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The parameters of a token exchange request (RFC 8693 section 2.1). ``resources``
    are checked ``resource`` values (``domain.resources.parse_resources``); ``audiences``
    name resource servers by resource URI or client id."""

    subject_token: str | None
    subject_token_type: str | None
    actor_token: str | None = None
    actor_token_type: str | None = None
    resources: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    scope: str | None = None
    requested_token_type: str | None = None


class ExchangeResponse(msgspec.Struct, frozen=True):
    """A successful token exchange response (RFC 8693 section 2.2.1)."""

    access_token: str
    issued_token_type: str
    token_type: str
    expires_in: int
    scope: str


async def exchange_token(
    ports: OAuthPorts, client: Client, request: ExchangeRequest, binding: str | None = None,
) -> ExchangeResponse:
    """Exchange the request's subject token for an access token meant for its targets.

    Raises :class:`~domain.oauth.OAuthError`: ``unauthorized_client`` (the client may not
    exchange), ``invalid_target`` (a target it may not reach, or no resource server),
    ``invalid_request`` (missing or unusable tokens, a token type not supported),
    ``invalid_scope`` (beyond the subject token's scope, or nothing the targets define).
    ``binding`` (a DPoP key, ``domain.dpop``) binds the new token: ``token_type`` DPoP.
    """
    if not client.allows_grant(GRANT_TOKEN_EXCHANGE) or not client.token_exchange_audiences:
        raise OAuthError("unauthorized_client", "the client may not exchange tokens")
    wanted = request.requested_token_type
    if wanted is not None and wanted not in REQUESTED_TOKEN_TYPES:
        raise OAuthError("invalid_request", "requested_token_type must be "
                         f"{TOKEN_TYPE_ACCESS_TOKEN} or {TOKEN_TYPE_JWT}")
    audience = await audience_of(ports, await _targets(ports, client, request))
    if wanted == TOKEN_TYPE_JWT and not audience.jwt:
        raise OAuthError("invalid_request", "the target resource server does not take JWT "
                         f"access tokens; ask for {TOKEN_TYPE_ACCESS_TOKEN}")
    now = ports.clock.now()
    subject = await _our_access_token(ports, "subject_token", request.subject_token,
                                      request.subject_token_type, now)
    if subject.sub is None:
        raise OAuthError("invalid_request", "the subject_token is not a user's token")
    if not await may_introspect(client, subject, ports.resources):
        raise OAuthError("invalid_request", "the subject_token was neither issued to this "
                         "client nor meant for it")
    actor = client.client_id
    if request.actor_token is not None or request.actor_token_type is not None:
        actor = (await _our_access_token(ports, "actor_token", request.actor_token,
                                         request.actor_token_type, now)).client_id
    scope = _exchanged_scope(subject, request.scope, audience)
    value, token = new_user_access_token(ports, client, subject=subject, scope=scope, now=now,
                                         audience=audience, binding=binding,
                                         act=(actor, *subject.act))
    await ports.store.save_tokens(token, None, now)
    ports.events.emit("token_exchanged", client_id=client.client_id,
                      subject_client_id=subject.client_id, actor=actor,
                      audience=" ".join(audience.resources))
    ports.events.emit("token_issued", grant_type=GRANT_TOKEN_EXCHANGE,
                      client_id=client.client_id)
    return ExchangeResponse(
        access_token=value,
        issued_token_type=TOKEN_TYPE_ACCESS_TOKEN,
        token_type=token_type(binding),
        expires_in=token.exp - now,
        scope=token.scope,
    )


async def _targets(
    ports: OAuthPorts, client: Client, request: ExchangeRequest
) -> tuple[str, ...]:
    """The resource URIs the new token is for: ``resource`` values and the resource
    servers ``audience`` names, each one the client may exchange for."""
    named: list[str] = []
    for name in request.audiences:
        server = await ports.resources.named(name)
        if server is None or server.resource_uri is None:
            raise OAuthError(INVALID_TARGET, f"audience {name} names no resource server")
        named.append(server.resource_uri)
    targets = tuple(dict.fromkeys((*request.resources, *named)))
    if not targets:
        raise OAuthError("invalid_request", "name the API the token is for: resource or "
                         "audience is required")
    for uri in targets:
        if uri not in client.token_exchange_audiences:
            raise OAuthError(INVALID_TARGET, f"this client may not exchange tokens for {uri}")
    return targets


async def _our_access_token(
    ports: OAuthPorts, name: str, value: str | None, type_: str | None, now: int,
) -> AccessToken:
    """The active access token of ours that ``value`` is; ``invalid_request`` otherwise."""
    if value is None:
        raise OAuthError("invalid_request", f"{name} is required")
    if type_ != TOKEN_TYPE_ACCESS_TOKEN:
        raise OAuthError("invalid_request", f"{name}_type must be {TOKEN_TYPE_ACCESS_TOKEN}")
    record = None
    if is_access_token(value):
        record = await ports.store.get_access_token(hash_token(value), now)
    # A deleted client's tokens are worth nothing (as in introspection).
    if record is None or not record.is_active(now) or (
            ports.clients is not None and not await client_exists(ports.clients,
                                                                   record.client_id)):
        raise OAuthError("invalid_request", f"the {name} is not an active access token "
                         "of this server")
    return record


def _exchanged_scope(subject: AccessToken, scope: str | None, audience: Audience) -> str:
    granted = subject.scope.split()
    requested = parse_scope(scope)
    if requested is not None:
        beyond = [s for s in requested if s not in granted]
        if beyond:
            raise OAuthError("invalid_scope", f"{' '.join(beyond)} is beyond the scope of "
                             "the subject_token")
        identity = [s for s in requested if s in IDENTITY_SCOPES]
        if identity:
            raise OAuthError("invalid_scope", f"{' '.join(identity)} is not exchanged: the "
                             "new token is for an API")
    asked = requested if requested is not None else granted
    limited = audience.limit(s for s in asked if s not in IDENTITY_SCOPES)
    if not limited:
        raise OAuthError("invalid_scope", "the subject_token has no scope that the resource "
                         f"server(s) {' '.join(audience.resources)} define")
    return " ".join(limited)

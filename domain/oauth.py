"""OAuth 2 token use cases: issue, exchange, rotate, introspect and revoke.

Every function depends only on ports (the token, code and user parts of the Store, a clock,
a token generator, events and the ID-token signer), gathered in :class:`OAuthPorts`. Client
authentication happens before these are called: they receive the authenticated
:class:`~domain.clients.Client`. Failures are :class:`OAuthError` with an RFC 6749 error
code; a :class:`~domain.errors.StoreUnavailable` is never caught here, so every store
failure fails closed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import msgspec

from domain.client_directory import ClientDirectory
from domain.clients import (
    GRANT_AUTHORIZATION_CODE,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_REFRESH_TOKEN,
    Client,
)
from domain.email_verification import email_claims
from domain.entities import (
    AccessToken,
    AuthorizationCode,
    ConsumedCode,
    RefreshToken,
    Reused,
    Taken,
    User,
)
from domain.errors import NotFound
from domain.redirects import redirect_uri_registered
from domain.resources import (
    AT_JWT_TYPE,
    NO_AUDIENCE,
    Audience,
    ResourceRefused,
    ResourceServers,
    access_token_claims,
    act_claim,
    aud_claim,
    may_introspect,
)
from domain.scopes import (
    EMAIL,
    GROUPS,
    IDENTITY_SCOPES,
    OFFLINE_ACCESS,
    OPENID,
    service_scopes_in,
)
from domain.sessions import ACR_MFA, ACR_PASSWORD, AMR_OTP, acr_of, amr_of
from domain.token_binding import bound_jkt, confirmation, token_type
from domain.tokens import (
    ACCESS_TOKEN_PREFIX,
    CODE_PREFIX,
    MAX_JWT_LENGTH,
    REFRESH_TOKEN_PREFIX,
    hash_token,
    is_access_token,
    token_display,
)
from ports.clock import Clock
from ports.events import Events
from ports.security import IdTokenSigner, TokenGenerator
from ports.store import (
    CodeStore,
    ConsentStore,
    CredentialStore,
    EphemeralStore,
    TokenStore,
    UserStore,
)

GRANT_ID_PREFIX = "gr_"
PKCE_S256 = "S256"
BEARER = "Bearer"
RS256 = "RS256"

# RFC 7636 section 4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_PKCE_VALUE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_MAX_TOKEN_LENGTH = 512


class OAuthError(Exception):
    """An OAuth error (RFC 6749 section 5.2): ``error`` is the RFC code, ``description``
    the human-readable ``error_description``.

    ``event`` names the security event the use case emitted for it, if any (e.g.
    ``refresh_token_reused``), so callers and tests can tell the failures apart.
    """

    def __init__(self, error: str, description: str, *, event: str | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.event = event


class TokenPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Lifetimes (seconds) and the issuer named in introspection and ID tokens.

    ``refresh_max_lifetime_seconds`` is the absolute lifetime of a user's grant, counted
    from the sign-in (``auth_time``): no token of the grant, refresh or access, lives past
    it, however often it is rotated, whatever lifetimes its client has.

    ``access_token_seconds`` and ``refresh_token_seconds`` are the defaults; a client with
    its own ``access_token_lifetime`` / ``refresh_token_lifetime`` gets those instead.
    """

    issuer: str
    access_token_seconds: int = 3600
    refresh_token_seconds: int = 1_209_600
    code_seconds: int = 600
    id_token_seconds: int = 3600
    refresh_max_lifetime_seconds: int = 7_776_000

    def access_lifetime(self, client: Client) -> int:
        """Seconds an access token of ``client`` lives (before the grant's cap)."""
        own = client.access_token_lifetime
        return own if own is not None else self.access_token_seconds

    def refresh_lifetime(self, client: Client) -> int:
        """Seconds a refresh token of ``client`` lives, never more than the grant's
        absolute lifetime."""
        own = client.refresh_token_lifetime
        lifetime = own if own is not None else self.refresh_token_seconds
        return min(lifetime, self.refresh_max_lifetime_seconds)


class OAuthStore(CodeStore, TokenStore, EphemeralStore, UserStore, ConsentStore,
                 CredentialStore, Protocol):
    """The part of the Store the OAuth use cases need (users: to refuse deprovisioned ones;
    consents: to refuse a grant whose consent was withdrawn; credentials: whether the
    email is verified, for the ID token)."""


@dataclass(frozen=True, slots=True)
class OAuthPorts:
    """What the OAuth use cases depend on."""

    store: OAuthStore
    clock: Clock
    token_generator: TokenGenerator
    events: Events
    signer: IdTokenSigner
    policy: TokenPolicy
    #: To tell whether a token's client still exists (introspection of a deleted client's
    #: tokens); None only in unit tests that have no clients to delete.
    clients: ClientDirectory | None = None
    #: The resource servers (RFC 8707) and ``DEFAULT_RESOURCE`` (domain.resources).
    resources: ResourceServers = field(default_factory=ResourceServers)


class TokenResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """A successful token response (RFC 6749 section 5.1; ``id_token`` from OIDC Core 3.1.3.3)."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str
    refresh_token: str | None = None
    id_token: str | None = None


def parse_scope(scope: str | None) -> tuple[str, ...] | None:
    """The scope tokens of a ``scope`` parameter, duplicates removed, order kept.

    None (or an empty string) means the parameter was not given. A malformed token raises
    ``invalid_scope``.
    """
    if scope is None:
        return None
    tokens = tuple(dict.fromkeys(scope.split(" ")))
    tokens = tuple(t for t in tokens if t)
    if not tokens:
        return None
    for token in tokens:
        if not _SCOPE_TOKEN.fullmatch(token):
            raise OAuthError("invalid_scope", "the scope parameter is malformed")
    return tokens


# Client credentials


async def issue_client_credentials(
    ports: OAuthPorts, client: Client, scope: str | None, *,
    resources: tuple[str, ...] = (), binding: str | None = None,
) -> TokenResponse:
    """Issue an access token to the client itself (RFC 6749 section 4.4).

    No refresh token (section 4.4.3). Service scopes and API scopes may be granted here;
    identity scopes (:data:`~domain.scopes.IDENTITY_SCOPES`) need a user. Without a
    ``scope`` the token gets every scope of the client except identity scopes; asking for
    one of those, or for a scope the client may not use, is ``invalid_scope``. The token's
    audience is ``resources`` (``domain.resources``; ``invalid_target``), and its scope is
    limited to what they define.

    ``binding`` (``domain.token_binding``, from a DPoP proof checked by ``domain.dpop``)
    binds the access token; it is then ``token_type`` DPoP.
    """
    if not client.allows_grant(GRANT_CLIENT_CREDENTIALS):
        raise OAuthError("unauthorized_client", "the client may not use this grant type")
    requested = parse_scope(scope)
    if requested is None:
        granted = tuple(sorted(s for s in client.scopes if s not in IDENTITY_SCOPES))
    else:
        if not client.allows_scopes(requested):
            raise OAuthError("invalid_scope", "the client may not request this scope")
        if any(s in IDENTITY_SCOPES for s in requested):
            raise OAuthError("invalid_scope", "this scope needs a signed-in user")
        granted = requested
    audience = await audience_of(ports, resources, (), granted)
    now = ports.clock.now()
    scope_text = _scope_for(audience, granted)
    value, access = _new_access_token(ports, client, _Grant(client.client_id, scope_text),
                                      scope_text, now, audience, binding)
    await ports.store.save_tokens(access, None, now)
    ports.events.emit("token_issued", grant_type=GRANT_CLIENT_CREDENTIALS,
                      client_id=client.client_id)
    return TokenResponse(
        access_token=value,
        token_type=token_type(binding),
        expires_in=access.exp - now,
        scope=scope_text,
    )


# Authorization code


async def create_authorization_code(
    ports: OAuthPorts,
    *,
    client: Client,
    redirect_uri: str,
    scope: str | None,
    user_id: str,
    nonce: str | None,
    code_challenge: str | None,
    code_challenge_method: str | None,
    auth_time: int,
    mfa_verified: bool,
    sid: str | None = None,
    acr: str | None = None,
    amr: tuple[str, ...] = (),
    grant_id: str | None = None,
    resources: tuple[str, ...] = (),
) -> str:
    """Store a new authorization code for a signed-in user and return its value.

    ``sid``, ``acr`` and ``amr`` describe the browser session the code is issued in (they
    go into the ID token). ``grant_id`` is the grant the code starts, when the caller has
    already recorded it (in the session, under a consent); a new one otherwise.

    Checks what the authorization endpoint must check before redirecting: the client may use
    the grant, ``redirect_uri`` is one of its registered URIs exactly, the scope is allowed
    and holds no service scope (a user cannot delegate those), PKCE is ``S256``
    (required unless a confidential client opted out; ``plain`` is refused), and a client
    with ``require_mfa`` gets a code only from a sign-in that proved a second factor.
    Raises ``OAuthError`` (``unauthorized_client``, ``invalid_request``, ``invalid_scope``,
    ``access_denied`` with event ``mfa_required``). ``resources`` (RFC 8707) bind the grant
    to those resource servers (``invalid_target`` for an unknown one).
    """
    if not client.allows_grant(GRANT_AUTHORIZATION_CODE):
        raise OAuthError("unauthorized_client", "the client may not use this grant type")
    if not redirect_uri_registered(client.redirect_uris, redirect_uri):
        raise OAuthError("invalid_request", "redirect_uri is not registered for this client")
    requested = parse_scope(scope)
    if requested is None:
        raise OAuthError("invalid_scope", "a scope is required")
    if not client.allows_scopes(requested):
        raise OAuthError("invalid_scope", "the client may not request this scope")
    _refuse_service_scopes(requested)
    if code_challenge is None:
        if code_challenge_method is not None:
            raise OAuthError("invalid_request", "code_challenge_method without code_challenge")
        if client.needs_pkce:
            raise OAuthError("invalid_request", "PKCE (code_challenge, S256) is required")
    else:
        if code_challenge_method != PKCE_S256:
            raise OAuthError("invalid_request", "code_challenge_method must be S256")
        if not _PKCE_VALUE.fullmatch(code_challenge):
            raise OAuthError("invalid_request", "code_challenge is malformed")
    if client.require_mfa and not mfa_verified:
        # The user has no confirmed TOTP factor (the sign-in asks for one whenever there is).
        ports.events.emit("mfa_required", client_id=client.client_id, user_id=user_id)
        raise OAuthError("access_denied", "this application requires two-factor "
                         "authentication: set up an authenticator app (TOTP) for your "
                         "account, then sign in again", event="mfa_required")
    await audience_of(ports, resources)
    now = ports.clock.now()
    value = ports.token_generator.new(CODE_PREFIX)
    code = AuthorizationCode(
        code_hash=hash_token(value),
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope=" ".join(requested),
        exp=now + ports.policy.code_seconds,
        grant_id=grant_id if grant_id is not None else ports.token_generator.new(GRANT_ID_PREFIX),
        user_id=user_id,
        nonce=nonce,
        pkce_challenge=code_challenge,
        pkce_method=PKCE_S256 if code_challenge is not None else None,
        auth_time=auth_time,
        mfa_verified=mfa_verified,
        sid=sid,
        acr=acr,
        amr=amr,
        resources=resources,
    )
    await ports.store.save_code(code, now)
    return value


def _refuse_service_scopes(scopes: tuple[str, ...]) -> None:
    found = service_scopes_in(scopes)
    if found:
        raise OAuthError("invalid_scope", f"{' '.join(found)} is granted only to a client "
                         "for itself (client_credentials), never on behalf of a user")


def pkce_s256(verifier: str) -> str:
    """The S256 code challenge of a verifier (RFC 7636 section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _verify_pkce(code: AuthorizationCode, verifier: str | None, client: Client) -> None:
    if code.pkce_challenge is None:
        # OAuth 2.1 section 4.1.3: a verifier without a stored challenge is a downgrade attempt.
        if verifier is not None:
            raise OAuthError("invalid_grant", "code_verifier sent but no code_challenge was")
        if client.needs_pkce:
            # The code predates a configuration that now requires PKCE for this client.
            raise OAuthError("invalid_grant", "PKCE is required for this client")
        return
    if verifier is None:
        raise OAuthError("invalid_grant", "code_verifier is required")
    if code.pkce_method != PKCE_S256 or not _PKCE_VALUE.fullmatch(verifier):
        raise OAuthError("invalid_grant", "code_verifier does not match")
    if not hmac.compare_digest(pkce_s256(verifier), code.pkce_challenge):
        raise OAuthError("invalid_grant", "code_verifier does not match")


def at_hash(access_token: str) -> str:
    """OIDC Core 3.1.3.6: left half of the SHA-256 of the token, base64url without padding."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def _wants_refresh_token(client: Client, scopes: tuple[str, ...]) -> bool:
    # OIDC Core section 11: a refresh token is what ``offline_access`` asks for; a client
    # without the refresh_token grant could not use one anyway.
    return client.allows_grant(GRANT_REFRESH_TOKEN) and OFFLINE_ACCESS in scopes


async def exchange_authorization_code(
    ports: OAuthPorts,
    client: Client,
    code: str,
    redirect_uri: str | None,
    code_verifier: str | None,
    *,
    binding: str | None = None,
    resources: tuple[str, ...] = (),
) -> TokenResponse:
    """Redeem an authorization code (RFC 6749 section 4.1.3, RFC 7636 section 4.6).

    The code is taken atomically. A code taken before (a replay) revokes every token issued
    from it and raises ``invalid_grant`` with event ``authorization_code_replayed``. The code
    must belong to the calling client, ``redirect_uri`` must equal the one it was issued
    for, and the PKCE verifier must match a stored challenge. Issues an access token, a
    refresh token when the scope has ``offline_access`` and the client may refresh, and an
    ID token when the scope has ``openid``.

    A code whose user was deleted or deactivated meanwhile is ``invalid_grant``, and the
    grant is revoked. The user is read *after* the tokens are saved: a deprovisioning that
    the read misses runs ``revoke_subject`` later, which then finds them. The same holds
    for the consent of a client that is not ``first_party``: a code whose scopes the
    user's consent no longer covers (withdrawn since the code was issued) is
    ``invalid_grant`` with event ``grant_refused_no_consent``, and the grant is revoked.

    ``binding`` (a DPoP key, ``domain.dpop``) binds the access token, and the refresh token
    of a public client (a confidential one's is bound by its authentication already, RFC
    9449 section 5). The ID token is signed with the client's
    ``id_token_signed_response_alg`` (:func:`id_token_alg`).
    ``resources`` (RFC 8707) choose the access token's audience among those of the code
    (``domain.resources``); its scope is limited to what they define.
    """
    if not client.allows_grant(GRANT_AUTHORIZATION_CODE):
        raise OAuthError("unauthorized_client", "the client may not use this grant type")
    alg = id_token_alg(client, ports.signer)
    if not code.startswith(CODE_PREFIX) or len(code) > _MAX_TOKEN_LENGTH:
        raise OAuthError("invalid_grant", "the code is invalid or expired")
    # An unknown resource is refused before the code is used.
    await audience_of(ports, resources)
    policy = ports.policy
    now = ports.clock.now()
    # Remember a redeemed code as long as anything issued from it may live, so that a late
    # replay still revokes it all.
    lifetime = policy.access_lifetime(client)
    if client.allows_grant(GRANT_REFRESH_TOKEN):
        lifetime = max(lifetime, policy.refresh_lifetime(client))
    remember_until = now + max(lifetime, policy.code_seconds)
    taken = await ports.store.take_code(hash_token(code), now, remember_until=remember_until)
    if taken is None:
        raise OAuthError("invalid_grant", "the code is invalid or expired")
    if isinstance(taken, ConsumedCode):
        await ports.store.claim_once(_settled_key(taken.grant_id), remember_until, now)
        await ports.store.revoke_grant(taken.grant_id, now)
        ports.events.emit("authorization_code_replayed", client_id=client.client_id,
                          code_client_id=taken.client_id, grant_id=taken.grant_id)
        raise OAuthError("invalid_grant", "the code was already used; its tokens are revoked",
                         event="authorization_code_replayed")
    if taken.client_id != client.client_id:
        raise OAuthError("invalid_grant", "the code was issued to another client")
    if redirect_uri != taken.redirect_uri:
        # Exact: the very URI of the authorization request, port included (RFC 6749 4.1.3).
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
    _verify_pkce(taken, code_verifier, client)

    scopes = tuple(taken.scope.split())
    # The client's policy may have changed while the user signed in: the code obeys the
    # policy of now.
    if not client.allows_scopes(scopes):
        raise OAuthError("invalid_grant", "the code's scope is no longer allowed for this client")
    if client.require_mfa and not taken.mfa_verified:
        raise OAuthError("invalid_grant", "this client requires a two-factor sign-in")
    # A code minted before scope kinds existed may still name a service scope.
    _refuse_service_scopes(scopes)
    # A sign-in time is what the absolute lifetime counts from: a code without one (older
    # than this rule) starts it now.
    auth_time = taken.auth_time if taken.auth_time is not None else now
    audience = await audience_of(ports, resources, taken.resources, scopes)
    grant = _Grant(client.client_id, taken.scope, taken.grant_id, taken.user_id,
                   taken.mfa_verified, auth_time, taken.resources,
                   taken.acr or _acr(taken.mfa_verified))
    access_value, access = _new_access_token(ports, client, grant,
                                             _scope_for(audience, scopes), now, audience,
                                             binding)
    refresh_value: str | None = None
    refresh: RefreshToken | None = None
    if _wants_refresh_token(client, scopes):
        refresh_value, refresh = _new_refresh_token(ports, client, grant, access.token_hash,
                                                    now, binding if client.is_public else None)
    await ports.store.save_tokens(access, refresh, now)
    if not await ports.store.claim_once(_settled_key(taken.grant_id), remember_until, now):
        # A replay came between the take and the save, and its revocation may have run
        # before these tokens existed: revoke them too. (Whichever of the two claims second
        # revokes, so the tokens of a replayed code never survive, in either order.)
        await ports.store.revoke_grant(taken.grant_id, now)
        raise OAuthError("invalid_grant", "the code was already used; its tokens are revoked",
                         event="authorization_code_replayed")
    if taken.sid is not None and not await ports.store.claim_once(
            session_ended_key(taken.grant_id), remember_until, now):
        # The session ended (a logout, a deprovisioning) after the code was issued, and its
        # revocation ran before these tokens existed: revoke them too.
        await ports.store.revoke_grant(taken.grant_id, now)
        ports.events.emit("grant_refused_session_ended", client_id=client.client_id,
                          grant_id=taken.grant_id)
        raise OAuthError("invalid_grant", "the sign-in session of this code has ended",
                         event="grant_refused_session_ended")
    user = await _require_active_user(ports, taken.user_id, taken.grant_id, client, now)
    await _require_consent(ports, user.id, scopes, taken.grant_id, client, now)
    id_token: str | None = None
    if OPENID in scopes:
        claims = _id_token_claims(policy, taken, access_value, now)
        if EMAIL in scopes:
            claims.update(await email_claims(ports.store, user))
        if GROUPS in scopes:
            claims["groups"] = groups_claim(user)
        id_token = ports.signer.sign(claims, alg=alg)
    ports.events.emit("token_issued", grant_type=GRANT_AUTHORIZATION_CODE,
                      client_id=client.client_id)
    return TokenResponse(
        access_token=access_value,
        token_type=token_type(binding),
        expires_in=access.exp - now,
        scope=access.scope,
        refresh_token=refresh_value,
        id_token=id_token,
    )


async def _require_active_user(
    ports: OAuthPorts, user_id: str | None, grant_id: str, client: Client, now: int
) -> User:
    """The grant's user; refuse, and revoke the grant, when it is gone or deactivated (SCIM)."""
    user = None
    if user_id is not None:
        try:
            user = await ports.store.get_user(user_id)
        except NotFound:
            user = None
    if user is not None and user.active:
        return user
    await ports.store.revoke_grant(grant_id, now)
    ports.events.emit("grant_refused_inactive_user", client_id=client.client_id,
                      grant_id=grant_id)
    raise OAuthError("invalid_grant", "the user of this grant is deactivated or deleted",
                     event="grant_refused_inactive_user")


async def _require_consent(
    ports: OAuthPorts, user_id: str, scopes: tuple[str, ...], grant_id: str, client: Client,
    now: int,
) -> None:
    """Refuse, and revoke the grant, when the user's consent for a client that is not
    ``first_party`` no longer covers the grant's scopes (it was withdrawn).

    Called after the grant's new tokens are saved: a withdrawal that this read misses
    revokes the grant's recorded tokens after it, so either way none survives.
    """
    if client.first_party:
        return
    consent = await ports.store.get_consent(user_id, client.client_id)
    if consent is not None and set(scopes) <= set(consent.scopes):
        return
    await ports.store.revoke_grant(grant_id, now)
    ports.events.emit("grant_refused_no_consent", client_id=client.client_id,
                      grant_id=grant_id)
    raise OAuthError("invalid_grant", "the user has withdrawn their consent for this "
                     "application; they must sign in and allow it again",
                     event="grant_refused_no_consent")


def groups_claim(user: User) -> list[str]:
    """The ``groups`` claim (ID token and userinfo, scope ``groups``): the display names of
    the user's groups, sorted. Empty when the user is in none: the claim was asked for,
    and "no groups" is an answer a client can act on."""
    return sorted(ref.display for ref in user.groups)


def id_token_alg(client: Client, signer: IdTokenSigner) -> str | None:
    """The ``alg`` of ``client``'s ID tokens (None: the signer's primary key): its
    ``id_token_signed_response_alg``, else RS256 (the OIDC default) when the server has an RSA
    key. ``unauthorized_client`` when the client's algorithm lost its key since it was
    registered (checked before a code is taken, so that the code is not burnt)."""
    alg = client.id_token_signed_response_alg
    if alg is None:
        return RS256 if RS256 in signer.algorithms else None
    if alg not in signer.algorithms:
        raise OAuthError("unauthorized_client", f"the server has no {alg} key for this "
                         "client's id_token_signed_response_alg")
    return alg


def session_ended_key(grant_id: str) -> str:
    """The claim that settles a session's code against the end of that session: whichever
    of the code exchange and the logout (``domain.logout``) claims it second revokes the
    grant, so no token issued from a code outlives the session it came from."""
    return f"grant-session-ended:{grant_id}"


def _settled_key(grant_id: str) -> str:
    """The claim that settles a code's redemption against a concurrent replay."""
    return f"code-grant-settled:{grant_id}"


def _id_token_claims(
    policy: TokenPolicy, code: AuthorizationCode, access_token: str, now: int
) -> dict[str, Any]:
    # A code from before sessions has no amr of its own: mfa_verified says what was proved.
    amr = code.amr or amr_of(second_factor=AMR_OTP if code.mfa_verified else None)
    claims: dict[str, Any] = {
        "iss": policy.issuer,
        "sub": code.user_id,
        "aud": code.client_id,
        "exp": now + policy.id_token_seconds,
        "iat": now,
        "auth_time": code.auth_time if code.auth_time is not None else now,
        "amr": list(amr),
        "acr": code.acr if code.acr is not None else acr_of(amr),
        "at_hash": at_hash(access_token),
    }
    if code.sid is not None:
        claims["sid"] = code.sid
    if code.nonce is not None:
        claims["nonce"] = code.nonce
    return claims


# Refresh


async def refresh(
    ports: OAuthPorts, client: Client, refresh_token: str, scope: str | None, *,
    binding: str | None = None,
    resources: tuple[str, ...] = (),
) -> TokenResponse:
    """Rotate a refresh token (RFC 6749 section 6, RFC 9700 section 4.14.2).

    The token is read first, without side effect, so that a wrong client or a widened scope
    is refused without burning it. Then it is taken atomically: the old refresh token stops
    working and its access token is revoked; a new pair of the same grant is issued with the
    same subject, ``mfa_verified`` and ``auth_time``. The new access token carries the
    requested (narrowed) scope; the new refresh token keeps the original scope (section 6).
    A service scope is ``invalid_scope``, and neither token outlives the grant's absolute
    lifetime (``auth_time`` plus ``refresh_max_lifetime_seconds``); past it the refresh is
    ``invalid_grant``. A token already rotated revokes its whole family and raises
    ``invalid_grant`` with event ``refresh_token_reused``. A grant whose user was deleted
    or deactivated is revoked and ``invalid_grant``, and so is a grant of a client that is
    not ``first_party`` whose scopes the user's consent no longer covers (withdrawn).

    The client's policy of now applies (it may have changed since the sign-in): its
    lifetimes; ``require_mfa`` (a grant without MFA is ``invalid_grant``); its scopes (asking
    for one it lost is ``invalid_scope``; without ``scope``, the access token keeps only the
    grant's scopes the client still holds, ``invalid_grant`` when none is left).

    The new pair is saved *before* the take. Of concurrent rotations one wins the take and
    the others find a reuse marker and revoke the family; because every pair was saved
    before its take, the family revocation reaches the winner's new pair too, on any
    backend. A rotation that loses revokes the pair it saved.

    ``binding`` (a DPoP key, ``domain.dpop``) binds the new access token. A refresh token
    bound to a key (a public client's) needs a proof by that same key, else
    ``invalid_dpop_proof`` before anything is taken; the next one stays bound to it.
    ``resources`` (RFC 8707) may narrow the new access token's audience to some of the
    grant's resources (``invalid_target`` for another); the refresh token keeps them all.
    """
    if not client.allows_grant(GRANT_REFRESH_TOKEN):
        raise OAuthError("unauthorized_client", "the client may not use this grant type")
    if not refresh_token.startswith(REFRESH_TOKEN_PREFIX) or len(refresh_token) > _MAX_TOKEN_LENGTH:
        raise OAuthError("invalid_grant", "the refresh token is invalid or expired")
    requested = parse_scope(scope)
    token_hash = hash_token(refresh_token)
    now = ports.clock.now()
    current = await ports.store.get_refresh_token(token_hash, now)
    issued: tuple[TokenResponse, AccessToken, RefreshToken] | None = None
    if current is not None:
        access_scope = _check_refresh(ports.policy, current, client, requested, now)
        issued = await _next_pair(ports, client, current, access_scope, now, resources, binding)
        await ports.store.save_tokens(issued[1], issued[2], now)
    outcome = await ports.store.take_refresh_token(token_hash, now)
    if isinstance(outcome, Reused):
        # The store revoked the family, which includes the pair saved above.
        ports.events.emit("refresh_token_reused", client_id=client.client_id,
                          grant_id=outcome.grant_id, token=token_display(refresh_token))
        raise OAuthError("invalid_grant", "the refresh token was already used; "
                         "every token of its grant is revoked", event="refresh_token_reused")
    if not isinstance(outcome, Taken):
        if current is not None:
            # Revoked or expired since it was read: nothing of this family may stay usable.
            await ports.store.revoke_grant(current.grant_id, now)
        raise OAuthError("invalid_grant", "the refresh token is invalid or expired")
    if issued is None:
        # The token appeared between the read and the take (refresh-token records are never
        # modified in place, so a token that was read is the one taken).
        access_scope = _check_refresh(ports.policy, outcome.token, client, requested, now)
        issued = await _next_pair(ports, client, outcome.token, access_scope, now, resources,
                            binding)
        await ports.store.save_tokens(issued[1], issued[2], now)
    # After the save, as in the code exchange, so that a concurrent deprovisioning cannot
    # slip between this read and the new pair.
    user = await _require_active_user(ports, outcome.token.sub, outcome.token.grant_id,
                                      client, now)
    await _require_consent(ports, user.id, tuple(outcome.token.scope.split()),
                           outcome.token.grant_id, client, now)
    ports.events.emit("token_issued", grant_type=GRANT_REFRESH_TOKEN, client_id=client.client_id)
    return issued[0]


async def _next_pair(
    ports: OAuthPorts, client: Client, old: RefreshToken, requested: tuple[str, ...] | None,
    now: int, resources: tuple[str, ...] = (), binding: str | None = None,
) -> tuple[TokenResponse, AccessToken, RefreshToken]:
    refresh_binding = _refresh_binding(client, old, binding)
    asked = requested if requested is not None else tuple(old.scope.split())
    audience = await audience_of(ports, resources, old.resources, asked)
    access_scope = _scope_for(audience, asked)
    # The refresh token keeps the grant's whole scope (RFC 6749 section 6); only the access
    # token is narrowed. ``auth_time`` is carried, never renewed: it anchors the cap.
    grant = _Grant(old.client_id, old.scope, old.grant_id, old.sub, old.mfa_verified,
                   _grant_start(old), old.resources, _acr(old.mfa_verified))
    access_value, access = _new_access_token(ports, client, grant, access_scope, now,
                                             audience, binding)
    refresh_value, new_refresh = _new_refresh_token(ports, client, grant, access.token_hash,
                                                    now, refresh_binding)
    response = TokenResponse(
        access_token=access_value,
        token_type=token_type(binding),
        expires_in=access.exp - now,
        scope=access_scope,
        refresh_token=refresh_value,
    )
    return response, access, new_refresh


def _refresh_binding(client: Client, old: RefreshToken, binding: str | None) -> str | None:
    """The next refresh token's binding: the old one's, which the proof must match; a public
    client's unbound refresh token gets bound by its first proof."""
    if old.binding is None:
        return binding if client.is_public and bound_jkt(binding) is not None else None
    if binding is None or binding != old.binding:
        raise OAuthError("invalid_dpop_proof", "this refresh token is bound to a DPoP key: "
                         "send a DPoP proof signed by that key")
    return old.binding


class _Grant(NamedTuple):
    """What every token of one grant carries over from the sign-in (or the client)."""

    client_id: str
    scope: str
    grant_id: str | None = None
    sub: str | None = None
    mfa_verified: bool = False
    auth_time: int | None = None
    #: The resource servers the grant is bound to (empty: none), and the sign-in's acr.
    resources: tuple[str, ...] = ()
    acr: str | None = None

    def not_after(self, policy: TokenPolicy) -> int | None:
        """The end of a user grant's absolute lifetime; None for a client's own token."""
        if self.sub is None or self.auth_time is None:
            return None
        return self.auth_time + policy.refresh_max_lifetime_seconds


def _grant_start(token: RefreshToken) -> int:
    # A refresh token from before ``auth_time`` was recorded: its issue time is the oldest
    # moment known, and is carried from now on.
    return token.auth_time if token.auth_time is not None else token.iat


def _capped(exp: int, not_after: int | None) -> int:
    return exp if not_after is None else min(exp, not_after)


def new_user_access_token(
    ports: OAuthPorts, client: Client, *, subject: AccessToken, scope: str, now: int,
    audience: Audience, binding: str | None, act: tuple[str, ...],
) -> tuple[str, AccessToken]:
    """A new access token of ``subject``'s grant (same user, sign-in and grant id), issued
    to ``client`` for ``audience`` with ``scope`` and actors ``act``, never outliving
    ``subject`` (token exchange, ``domain.token_exchange``). Not saved."""
    grant = _Grant(client.client_id, scope, subject.grant_id, subject.sub,
                   subject.mfa_verified, subject.auth_time, (), _acr(subject.mfa_verified))
    return _new_access_token(ports, client, grant, scope, now, audience, binding, act=act,
                             not_after=subject.exp)


def _new_access_token(
    ports: OAuthPorts, client: Client, grant: _Grant, scope: str, now: int,
    audience: Audience = NO_AUDIENCE,
    binding: str | None = None,
    *,
    act: tuple[str, ...] = (),
    not_after: int | None = None,
) -> tuple[str, AccessToken]:
    value = ports.token_generator.new(ACCESS_TOKEN_PREFIX)
    exp = _capped(now + ports.policy.access_lifetime(client), grant.not_after(ports.policy))
    record = AccessToken(
        token_hash=hash_token(value),
        token_display=token_display(value),
        active=True,
        scope=scope,
        client_id=grant.client_id,
        exp=_capped(exp, not_after),
        iat=now,
        sub=grant.sub,
        mfa_verified=grant.mfa_verified,
        grant_id=grant.grant_id,
        auth_time=grant.auth_time,
        token_binding=binding,
        audience=audience.resources,
        act=act,
    )
    if audience.jwt:
        return _as_jwt(ports, record, value, grant.acr)
    return value, record


def _as_jwt(
    ports: OAuthPorts, record: AccessToken, jti: str, acr: str | None
) -> tuple[str, AccessToken]:
    """The JWT access token (RFC 9068) of ``record``: the random value becomes its ``jti``,
    and the JWT is recorded by its hash like an opaque token (introspection, revocation)."""
    claims = access_token_claims(issuer=ports.policy.issuer, token=record, jti=jti, acr=acr)
    value = ports.signer.sign(claims, typ=AT_JWT_TYPE)
    return value, msgspec.structs.replace(record, token_hash=hash_token(value))


async def audience_of(
    ports: OAuthPorts, requested: tuple[str, ...], bound: tuple[str, ...] = (),
    scopes: tuple[str, ...] = (),
) -> Audience:
    """The audience for a request's ``resource`` values (``ResourceServers.audience``),
    or ``invalid_target``."""
    try:
        return await ports.resources.audience(requested, bound, scopes)
    except ResourceRefused as exc:
        raise OAuthError(exc.error, exc.description) from None


def _scope_for(audience: Audience, scopes: tuple[str, ...]) -> str:
    """The scope of an access token for ``audience``: ``scopes`` limited to what its
    resource servers define; ``invalid_scope`` when that leaves nothing of a scope asked."""
    limited = audience.limit(scopes)
    if scopes and not limited:
        raise OAuthError("invalid_scope", "no requested scope is defined by the resource "
                         f"server(s) {' '.join(audience.resources)}")
    return " ".join(limited)


def _acr(mfa_verified: bool) -> str:
    # What a grant's sign-in achieved, for one that does not record its acr (refresh
    # tokens, codes from before sessions): the values of domain.sessions.
    return ACR_MFA if mfa_verified else ACR_PASSWORD


def _new_refresh_token(
    ports: OAuthPorts, client: Client, grant: _Grant, access_token_hash: str, now: int,
    binding: str | None = None,
) -> tuple[str, RefreshToken]:
    if grant.grant_id is None:
        raise ValueError("refresh tokens exist only inside a grant")
    value = ports.token_generator.new(REFRESH_TOKEN_PREFIX)
    record = RefreshToken(
        token_hash=hash_token(value),
        access_token_hash=access_token_hash,
        exp=_capped(now + ports.policy.refresh_lifetime(client), grant.not_after(ports.policy)),
        iat=now,
        grant_id=grant.grant_id,
        client_id=grant.client_id,
        scope=grant.scope,
        sub=grant.sub,
        mfa_verified=grant.mfa_verified,
        auth_time=grant.auth_time,
        binding=binding,
        resources=grant.resources,
    )
    return value, record


def _check_refresh(
    policy: TokenPolicy,
    token: RefreshToken,
    client: Client,
    requested: tuple[str, ...] | None,
    now: int,
) -> tuple[str, ...] | None:
    """Refuse a refresh the grant or the client's policy forbids; return the scope of the
    new access token (None: the grant's whole scope)."""
    if token.client_id != client.client_id:
        raise OAuthError("invalid_grant", "the refresh token was issued to another client")
    granted = tuple(token.scope.split())
    if requested is not None and any(scope not in granted for scope in requested):
        raise OAuthError("invalid_scope", "the scope exceeds the scope originally granted")
    # A grant from before scope kinds may hold a service scope: the client must narrow it.
    _refuse_service_scopes(requested if requested is not None else granted)
    if _grant_start(token) + policy.refresh_max_lifetime_seconds <= now:
        # Reached only when the limit was lowered after the token was issued.
        raise OAuthError("invalid_grant", "the sign-in is too old; the user must sign in again")
    if client.require_mfa and not token.mfa_verified:
        # The client started requiring MFA after this grant's password-only sign-in.
        raise OAuthError("invalid_grant", "this client now requires a two-factor sign-in; "
                         "the user must sign in again")
    if requested is not None:
        if not client.allows_scopes(requested):
            raise OAuthError("invalid_scope", "the client may not request this scope")
        return requested
    if client.allows_scopes(granted):
        return None
    # Scopes the operator took from the client since the sign-in stop at once; the refresh
    # token keeps the grant's scope, so they come back if the client gets them back.
    kept = tuple(scope for scope in granted if scope in client.scopes)
    if not kept:
        raise OAuthError("invalid_grant", "the client may no longer use any scope of this grant")
    return kept


# Introspection and revocation


class Introspection(msgspec.Struct, frozen=True, omit_defaults=True):
    """An RFC 7662 introspection response. Inactive tokens give only ``active: false``."""

    active: bool
    scope: str | None = None
    client_id: str | None = None
    sub: str | None = None
    exp: int | None = None
    iat: int | None = None
    iss: str | None = None
    token_type: str | None = None
    mfa_verified: bool | None = None
    cnf: dict[str, str] | None = None
    aud: str | list[str] | None = None
    #: RFC 8693 section 4.1: who acts for ``sub`` (an exchanged token).
    act: dict[str, Any] | None = None


INACTIVE = Introspection(active=False)
#: ``token_type`` reported for refresh tokens (access tokens report ``Bearer``).
REFRESH_TOKEN_TYPE = "refresh_token"


async def introspect(
    ports: OAuthPorts, client: Client, token: str, token_type_hint: str | None
) -> Introspection:
    """What the token is, for a resource server (RFC 7662).

    An access token is shown only to the client it was issued to, to the resource servers
    of its audience and to clients with ``introspect_any_token`` (RFC 7662 section 4,
    :func:`domain.resources.may_introspect`); anyone else is told it is inactive. A refresh
    token is shown only to the client it was issued to. Unknown, expired and revoked tokens
    are inactive. The hint is not trusted: our tokens carry their type in their shape.
    """
    del token_type_hint  # the shape decides; a wrong hint must not hide a token
    now = ports.clock.now()
    result = INACTIVE
    if len(token) <= MAX_JWT_LENGTH:
        if is_access_token(token):
            access = await ports.store.get_access_token(hash_token(token), now)
            clients = ports.clients
            # A deleted client's tokens (a revoked registration) are inactive at once. The
            # static check is a dict lookup, so static clients' tokens cost no store read.
            if access is not None and access.is_active(now) and await may_introspect(
                    client, access, ports.resources) and (
                    clients is None or access.client_id in clients.static
                    or await clients.store.get_client(access.client_id) is not None):
                result = Introspection(
                    active=True,
                    scope=access.scope,
                    client_id=access.client_id,
                    # RFC 9068 section 2.2: a client's own token has the client as subject.
                    # The record keeps None, so that guards can still tell "no user".
                    sub=access.sub if access.sub is not None else access.client_id,
                    exp=access.exp,
                    iat=access.iat,
                    iss=ports.policy.issuer,
                    token_type=token_type(access.token_binding),
                    mfa_verified=access.mfa_verified,
                    cnf=confirmation(access.token_binding),
                    aud=aud_claim(access.audience),
                    act=act_claim(access.act),
                )
        elif token.startswith(REFRESH_TOKEN_PREFIX):
            refresh_record = await ports.store.get_refresh_token(hash_token(token), now)
            if refresh_record is not None and refresh_record.client_id == client.client_id:
                result = Introspection(
                    active=True,
                    scope=refresh_record.scope,
                    client_id=refresh_record.client_id,
                    sub=refresh_record.sub,
                    exp=refresh_record.exp,
                    iat=refresh_record.iat,
                    iss=ports.policy.issuer,
                    token_type=REFRESH_TOKEN_TYPE,
                    mfa_verified=refresh_record.mfa_verified,
                    cnf=confirmation(refresh_record.binding),
                )
    ports.events.emit("token_introspected", active=result.active)
    return result


async def client_exists(clients: ClientDirectory, client_id: str) -> bool:
    """Whether a token's client still exists (static, or in the store): a deleted
    client's tokens are worth nothing, without a sweep over them."""
    return client_id in clients.static or await clients.store.get_client(client_id) is not None


async def revoke(
    ports: OAuthPorts, client: Client, token: str, token_type_hint: str | None
) -> bool:
    """Revoke one of the client's own tokens (RFC 7009). True if something was revoked.

    A refresh token revokes its whole family (every token of its grant). Tokens of other
    clients and unknown tokens are left alone without error: the endpoint answers 200
    either way, so it reveals nothing about tokens the caller does not own.
    """
    del token_type_hint  # the shape decides, as in introspect
    if len(token) > MAX_JWT_LENGTH:
        return False
    now = ports.clock.now()
    revoked = False
    if is_access_token(token):
        token_hash = hash_token(token)
        access = await ports.store.get_access_token(token_hash, now)
        if access is not None and access.client_id == client.client_id:
            revoked = await ports.store.revoke_access_token(token_hash, now)
    elif token.startswith(REFRESH_TOKEN_PREFIX):
        refresh_record = await ports.store.get_refresh_token(hash_token(token), now)
        if refresh_record is not None and refresh_record.client_id == client.client_id:
            revoked = await ports.store.revoke_grant(refresh_record.grant_id, now) > 0
    if revoked:
        ports.events.emit("token_revoked", client_id=client.client_id)
    return revoked


# The helpers above under public names, for the other grants a signed-in user makes
# (domain.device_grant), so that every user grant issues its tokens the same way.


class UserTokens(NamedTuple):
    """The tokens of a new user grant, not yet saved: their values and records."""

    access_value: str
    access: AccessToken
    refresh_value: str | None
    refresh: RefreshToken | None


async def new_user_tokens(
    ports: OAuthPorts, client: Client, *, scope: str, grant_id: str, user_id: str,
    mfa_verified: bool, auth_time: int, now: int, resources: tuple[str, ...] = (),
    acr: str | None = None,
) -> UserTokens:
    """The tokens a code exchange would issue for this grant: an access token, and a refresh
    token when the scope has ``offline_access`` and the client may refresh; both capped by
    the grant's absolute lifetime, counted from ``auth_time``. ``resources`` (RFC 8707)
    bind the grant and are the access token's audience, its scope limited to what they
    define (``invalid_target`` for one that names no resource server)."""
    scopes = tuple(scope.split())
    audience = await audience_of(ports, resources, (), scopes)
    grant = _Grant(client.client_id, scope, grant_id, user_id, mfa_verified, auth_time,
                   resources, acr or _acr(mfa_verified))
    access_value, access = _new_access_token(ports, client, grant, _scope_for(audience, scopes),
                                             now, audience)
    if not _wants_refresh_token(client, tuple(scope.split())):
        return UserTokens(access_value, access, None, None)
    refresh_value, refresh_record = _new_refresh_token(ports, client, grant, access.token_hash,
                                                       now)
    return UserTokens(access_value, access, refresh_value, refresh_record)


def refuse_service_scopes(scopes: tuple[str, ...]) -> None:
    """``invalid_scope`` when ``scopes`` holds a service scope: a user cannot delegate one."""
    _refuse_service_scopes(scopes)


async def require_active_user(
    ports: OAuthPorts, user_id: str | None, grant_id: str, client: Client, now: int
) -> User:
    """The grant's user; when it is gone or deactivated, the grant is revoked and the
    request is ``invalid_grant`` (event ``grant_refused_inactive_user``)."""
    return await _require_active_user(ports, user_id, grant_id, client, now)

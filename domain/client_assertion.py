"""Client authentication with a signed JWT (RFC 7523 section 2.2, OIDC Core section 9):
``private_key_jwt`` and ``client_secret_jwt``.

The request carries ``client_assertion_type`` = :data:`ASSERTION_TYPE` and
``client_assertion``, a JWT that the client signs with its private key (verified with its
``jwks`` or ``jwks_uri``) or with an HMAC under its client secret. What is checked, in this
order, every failure being ``invalid_client`` with a description that says which rule:

1. ``iss`` and ``sub`` are both the client id (and equal the ``client_id`` parameter when
   one is sent); the client exists and its method is the one the assertion uses.
2. The signature: ``alg`` must be one of the method's algorithms (:data:`PUBLIC_KEY_ALGORITHMS`
   for ``private_key_jwt``, :data:`SECRET_ALGORITHMS` for ``client_secret_jwt``), so
   ``none`` and an HMAC keyed with a public key (algorithm confusion) never verify; the key
   is the one the ``kid`` names (an unknown ``kid`` refreshes a ``jwks_uri`` once,
   :mod:`domain.client_keys`).
3. ``aud`` is the issuer, the token endpoint, or the URL of the endpoint called (a single
   value, or a list of which every value is one of those).
4. ``exp`` is present, not past, and at most :attr:`AssertionPolicy.max_lifetime` seconds
   ahead; ``iat`` and ``nbf``, when present, are not in the future. Each with
   :attr:`AssertionPolicy.leeway` seconds of clock skew.
5. ``jti`` is present and used once: claimed through the store (shared by every instance)
   until the assertion could no longer be accepted anyway.

The signature is checked before the claims so that a forged assertion learns nothing about
them, and the ``jti`` is claimed last so that only a proven client writes to the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import msgspec

from domain.client_directory import ClientDirectory
from domain.client_keys import ClientKeys
from domain.clients import AUTH_PRIVATE_KEY_JWT, AUTH_SECRET_JWT, Client, ClientSecret
from domain.oauth import OAuthError
from ports.client_assertion import AssertionCodec, InvalidAssertion, UnverifiedAssertion
from ports.sealing import SecretSealer, UnreadableSecret
from ports.store import EphemeralStore

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: ``private_key_jwt``: RSA PKCS#1 v1.5, ECDSA P-256, and Ed25519 under both its names
#: (``EdDSA``, and ``Ed25519`` of RFC 9864).
PUBLIC_KEY_ALGORITHMS: tuple[str, ...] = ("RS256", "ES256", "EdDSA", "Ed25519")
#: ``client_secret_jwt``.
SECRET_ALGORITHMS: tuple[str, ...] = ("HS256", "HS384", "HS512")
#: Longer than any JWT ID a client makes (a UUID is 36); bounds the stored key's input.
MAX_JTI_LENGTH = 256


class AssertionPolicy(msgspec.Struct, frozen=True, kw_only=True):
    issuer: str
    token_endpoint: str
    #: Longest accepted ``exp - now``: an assertion is meant for one request, and its
    #: ``jti`` is held in the store until then.
    max_lifetime: int = 300
    #: Clock skew tolerated between the client and the server, in seconds.
    leeway: int = 30


@dataclass(frozen=True, slots=True)
class AssertionPorts:
    clients: ClientDirectory
    store: EphemeralStore
    codec: AssertionCodec
    keys: ClientKeys
    sealer: SecretSealer
    policy: AssertionPolicy


class ClientAssertionRefused(OAuthError):
    """``invalid_client`` for an assertion; ``client_id`` is the id the assertion (or the
    request) named, for counting the failure against it."""

    def __init__(self, description: str, client_id: str = "") -> None:
        super().__init__("invalid_client", description)
        self.client_id = client_id


def sealed_secret_context(client_id: str) -> str:
    """The associated data a ``client_secret_jwt`` client's secrets are sealed with: a
    sealed secret copied to another client does not open there."""
    return f"client_secret_jwt:{client_id}"


def seal_client_secret(
    client_id: str, secret: str, sealer: SecretSealer, *, now: int,
    expires_at: int | None = None,
) -> ClientSecret:
    """The :class:`ClientSecret` of a ``client_secret_jwt`` client: the digest (as for every
    client) and the secret sealed for this client, since an HMAC is checked with the secret
    itself. The secret is never kept in clear."""
    return ClientSecret.of(secret, created_at=now, expires_at=expires_at,
                           sealed=sealer.seal(secret, sealed_secret_context(client_id)))


async def authenticate_with_assertion(
    ports: AssertionPorts, *, assertion_type: str | None, assertion: str | None,
    client_id: str | None, endpoint: str, now: int,
) -> Client:
    """The client a ``client_assertion`` proves, at the endpoint whose URL is ``endpoint``.
    Raises :class:`ClientAssertionRefused` (see the module docstring for the rules)."""
    claimed = client_id or ""
    if assertion_type != ASSERTION_TYPE:
        raise ClientAssertionRefused(
            f"client_assertion_type must be {ASSERTION_TYPE}", claimed)
    if not assertion:
        raise ClientAssertionRefused("client_assertion is required", claimed)
    try:
        unverified = ports.codec.read(assertion)
    except InvalidAssertion as exc:
        raise ClientAssertionRefused(f"the client assertion is malformed: {exc}", claimed) from None
    claims = unverified.claims
    issuer, subject = claims.get("iss"), claims.get("sub")
    if not isinstance(issuer, str) or not issuer or issuer != subject:
        raise ClientAssertionRefused(
            "the client assertion's iss and sub must both be the client_id", claimed)
    if client_id is not None and client_id != issuer:
        raise ClientAssertionRefused(
            "client_id differs from the client assertion's iss and sub", claimed)
    client = await ports.clients.find(issuer)
    if client is None:
        raise ClientAssertionRefused("client authentication failed", issuer)
    if unverified.alg in SECRET_ALGORITHMS:
        method = AUTH_SECRET_JWT
    elif unverified.alg in PUBLIC_KEY_ALGORITHMS:
        method = AUTH_PRIVATE_KEY_JWT
    else:
        raise ClientAssertionRefused(
            f"the client assertion's alg {unverified.alg!r} is not accepted; use one of "
            f"{', '.join(PUBLIC_KEY_ALGORITHMS + SECRET_ALGORITHMS)}", issuer)
    if method not in client.auth_methods:
        raise ClientAssertionRefused(
            f"the client assertion is signed with {unverified.alg!r} ({method}), but this "
            f"client authenticates with {client.token_endpoint_auth_method}", issuer)
    try:
        if method == AUTH_PRIVATE_KEY_JWT:
            await _verify_signature(ports, client, assertion, unverified, now)
        else:
            ports.codec.verify_with_secrets(
                assertion, unverified, _shared_secrets(ports.sealer, client, now),
                SECRET_ALGORITHMS)
    except InvalidAssertion as exc:
        raise ClientAssertionRefused(f"the client assertion is refused: {exc}", issuer) from None
    _check_claims(ports.policy, claims, endpoint, now, issuer)
    jti = claims["jti"]
    digest = hashlib.sha256(f"{issuer}\x00{jti}".encode()).hexdigest()
    if not await ports.store.claim_once(f"client_assertion:{digest}",
                                        int(claims["exp"]) + ports.policy.leeway, now):
        raise ClientAssertionRefused(
            "the client assertion was already used (its jti is single-use)", issuer)
    return client


async def _verify_signature(
    ports: AssertionPorts, client: Client, assertion: str, unverified: UnverifiedAssertion,
    now: int,
) -> None:
    kid = unverified.kid
    keys = await ports.keys.keys_of(client, kid, now)
    if kid is not None and not keys.has_kid(kid):
        raise InvalidAssertion(f"no key of the client has kid {kid!r}")
    try:
        ports.codec.verify_with_public_keys(assertion, unverified, keys, PUBLIC_KEY_ALGORITHMS)
    except InvalidAssertion:
        # Without a kid, a rotation shows only as a signature no cached key verifies.
        fresh = await ports.keys.refreshed(client, now) if kid is None else None
        if fresh is None:
            raise
        ports.codec.verify_with_public_keys(assertion, unverified, fresh, PUBLIC_KEY_ALGORITHMS)


def _shared_secrets(sealer: SecretSealer, client: Client, now: int) -> list[str]:
    context = sealed_secret_context(client.client_id)
    opened = []
    for held in client.live_secrets(now):
        if held.sealed is None:
            continue
        try:
            opened.append(sealer.open(held.sealed, context).plaintext)
        except UnreadableSecret:
            continue  # sealed with a retired key: that secret cannot prove anything now
    if not opened:
        raise InvalidAssertion("the client holds no usable secret for client_secret_jwt")
    return opened


def _check_claims(
    policy: AssertionPolicy, claims: Mapping[str, Any], endpoint: str, now: int, client_id: str
) -> None:
    def refuse(problem: str) -> ClientAssertionRefused:
        return ClientAssertionRefused(f"the client assertion {problem}", client_id)

    audiences = claims.get("aud")
    values = audiences if isinstance(audiences, list) else [audiences]
    accepted = {policy.issuer, policy.token_endpoint, endpoint}
    if not values or not all(isinstance(v, str) and v in accepted for v in values):
        raise refuse(f"has aud {audiences!r}; it must be the issuer {policy.issuer!r} or "
                     f"the endpoint's URL {endpoint!r}")
    exp = claims.get("exp")
    if not _is_time(exp):
        raise refuse("needs exp (a NumericDate)")
    if exp <= now - policy.leeway:
        raise refuse("has expired")
    if exp > now + policy.max_lifetime + policy.leeway:
        raise refuse(f"lives too long: exp may be at most {policy.max_lifetime} seconds ahead")
    for name in ("iat", "nbf"):
        value = claims.get(name)
        if value is None:
            continue
        if not _is_time(value):
            raise refuse(f"has a {name} that is not a NumericDate")
        if value > now + policy.leeway:
            raise refuse(f"has {name} in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise refuse("needs a jti (a non-empty string)")
    if len(jti) > MAX_JTI_LENGTH:
        raise refuse(f"has a jti longer than {MAX_JTI_LENGTH} characters")


def _is_time(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)

"""DPoP (RFC 9449): checking proofs, binding tokens to the client's key, server nonces.

A client sends a proof (a JWT signed with a key of its own, the public half in the header)
in the ``DPoP`` header of each request. At the token endpoint, a valid proof binds the
access token (and a public client's refresh token) to that key: the token records its
thumbprint (``domain.token_binding``) and is ``token_type: DPoP``. A resource (userinfo
here; any API through introspection's ``cnf.jkt``) then accepts the token only with a
fresh proof signed by the same key, which carries a hash of the token (``ath``).

What :func:`check_proof` checks, in this order (each failure is ``invalid_dpop_proof``
unless said otherwise):

1. The proof is a compact JWS, at most :data:`MAX_PROOF_LENGTH` characters; header ``typ``
   is ``dpop+jwt``; ``alg`` is one of :data:`DPOP_ALGORITHMS` (never ``none`` or an HMAC);
   ``jwk`` is a public key (no private member) and the signature verifies with it.
2. ``htm`` is the request's method; ``htu`` is the endpoint's URL, compared without query
   and fragment (section 4.3), scheme and host case-insensitively, default ports ignored.
3. ``iat`` is within :attr:`DpopPolicy.iat_leeway` seconds of now, either way.
4. ``ath``, at a resource: the base64url SHA-256 of the access token presented.
5. ``nonce``, when :attr:`DpopPolicy.require_nonce`: a nonce of ours, not older than two
   windows; otherwise ``use_dpop_nonce`` with a fresh one to retry with (section 8).
6. ``jti`` (a string of at most :data:`MAX_JTI_LENGTH` characters) is used once: claimed
   through the store, shared by every instance, until the proof's ``iat`` window is over.

Nonces are stateless: an HMAC of a time window under a key derived from the signing key, so
every instance that shares ``SIGNING_KEY_FILE`` issues and accepts the same ones, and
nothing is stored. The signature is checked before any claim, and the ``jti`` is claimed
last, so that only a holder of the key writes to the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec

from domain.clients import Client
from domain.oauth import OAuthError
from domain.token_binding import bound_jkt, dpop_binding
from ports.dpop import DpopCodec, InvalidProof
from ports.store import EphemeralStore

PROOF_TYPE = "dpop+jwt"
#: The proof algorithms accepted (asymmetric only, RFC 9449 section 4.2), advertised as
#: ``dpop_signing_alg_values_supported``. ``Ed25519`` is RFC 9864's name for ``EdDSA``.
DPOP_ALGORITHMS: tuple[str, ...] = ("ES256", "ES384", "EdDSA", "Ed25519", "RS256", "PS256")
INVALID_DPOP_PROOF = "invalid_dpop_proof"
USE_DPOP_NONCE = "use_dpop_nonce"
#: A resource's answer to a token presented without what its binding needs (RFC 6750).
INVALID_TOKEN = "invalid_token"
#: Far longer than a proof with an RSA-4096 key; bounds the work of a hostile header.
MAX_PROOF_LENGTH = 8192
MAX_JTI_LENGTH = 256
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NONCE_LABEL = b"auth-service dpop nonce v1:"


class DpopPolicy(msgspec.Struct, frozen=True, kw_only=True):
    #: How far ``iat`` may be from now, either way (clock skew and the time a request takes).
    iat_leeway: int = 60
    #: Whether every proof must carry a server nonce (``DPOP_REQUIRE_NONCE``).
    require_nonce: bool = True
    #: A nonce is issued per window of this many seconds and accepted for two windows.
    nonce_window: int = 300


@dataclass(frozen=True, slots=True)
class DpopPorts:
    store: EphemeralStore
    codec: DpopCodec
    #: The key nonces are made with (``signer.derive_secret``): the same on every instance.
    nonce_key: bytes
    policy: DpopPolicy


class DpopRefused(OAuthError):
    """A proof (or a token's presentation) refused: ``error`` is ``invalid_dpop_proof``,
    ``use_dpop_nonce`` or, at a resource, ``invalid_token``."""


def token_hash(access_token: str) -> str:
    """The ``ath`` of an access token: base64url SHA-256, without padding (section 4.2)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def current_nonce(ports: DpopPorts, now: int) -> str:
    """The nonce to hand out now (``DPoP-Nonce``): the same on every instance in a window."""
    return _nonce(ports.nonce_key, now // ports.policy.nonce_window)


def _nonce(key: bytes, window: int) -> str:
    stamp = window.to_bytes(8, "big")
    mac = hmac.new(key, _NONCE_LABEL + stamp, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(stamp + mac).rstrip(b"=").decode("ascii")


def _nonce_accepted(ports: DpopPorts, nonce: object, now: int) -> bool:
    if not isinstance(nonce, str) or len(nonce) != 32:
        return False
    window = now // ports.policy.nonce_window
    # The current window's and the previous one's: a nonce lives one to two windows.
    return any(hmac.compare_digest(nonce, _nonce(ports.nonce_key, w))
               for w in (window, window - 1))


def _canonical_url(url: str) -> tuple[str, str, str] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return scheme, host, parts.path or "/"


def _refused(description: str, error: str = INVALID_DPOP_PROOF) -> DpopRefused:
    return DpopRefused(error, description)


async def check_proof(
    ports: DpopPorts, proof: str, *, method: str, url: str, now: int,
    access_token: str | None = None,
) -> str:
    """The thumbprint (``jkt``) of the key that signed a valid proof for this request;
    raises :class:`DpopRefused` (see the module's docstring for what is checked).

    ``url`` is the endpoint's URL as the server publishes it (the issuer's base and the
    path), not what the request's ``Host`` says. ``access_token`` is the token presented
    at a resource (its hash must be the proof's ``ath``); None at the token endpoint.
    """
    if len(proof) > MAX_PROOF_LENGTH:
        raise _refused("the DPoP proof is too long")
    try:
        unverified = ports.codec.read(proof)
        header, claims = unverified.header, unverified.claims
        if header.get("typ") != PROOF_TYPE:
            raise _refused(f"the DPoP proof's typ must be {PROOF_TYPE}")
        alg = header.get("alg")
        if alg not in DPOP_ALGORITHMS:
            raise _refused(f"the DPoP proof's alg must be one of {', '.join(DPOP_ALGORITHMS)}")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise _refused("the DPoP proof's header needs the public key (jwk)")
        jkt = ports.codec.verify(proof, jwk, str(alg))
    except InvalidProof as exc:
        raise _refused(str(exc)) from None
    if claims.get("htm") != method:
        raise _refused(f"the DPoP proof's htm must be {method}")
    htu = claims.get("htu")
    expected = _canonical_url(url)
    if not isinstance(htu, str) or expected is None or _canonical_url(htu) != expected:
        raise _refused("the DPoP proof's htu must be the URL of this endpoint")
    iat = claims.get("iat")
    leeway = ports.policy.iat_leeway
    if isinstance(iat, bool) or not isinstance(iat, int | float) or abs(now - iat) > leeway:
        raise _refused(f"the DPoP proof's iat must be within {leeway} seconds of the "
                       "server's time")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not hmac.compare_digest(ath, token_hash(access_token)):
            raise _refused("the DPoP proof's ath must be the hash of the access token")
    if ports.policy.require_nonce and not _nonce_accepted(ports, claims.get("nonce"), now):
        raise _refused("a DPoP nonce is required: use the one in the DPoP-Nonce header",
                       USE_DPOP_NONCE)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise _refused(f"the DPoP proof needs a jti of at most {MAX_JTI_LENGTH} characters")
    # Keyed by the key and the jti (hashed: a jti is the client's text), held until no proof
    # with this iat could be accepted any more.
    marker = hashlib.sha256(f"{jkt} {jti}".encode()).hexdigest()
    if not await ports.store.claim_once(f"dpop-jti:{marker}", int(iat) + leeway + 1, now):
        raise _refused("the DPoP proof was already used (jti); make a new one per request")
    return jkt


async def token_request_binding(
    ports: DpopPorts, client: Client, proof: str | None, *, url: str, now: int,
) -> str | None:
    """The binding for the tokens of a token request (``domain.token_binding``), or None
    for bearer tokens. A client with ``dpop_bound_access_tokens`` must send a proof."""
    if proof is None:
        if client.dpop_bound_access_tokens:
            raise _refused("this client must send a DPoP proof with every token request")
        return None
    return dpop_binding(await check_proof(ports, proof, method="POST", url=url, now=now))


async def check_presentation(
    ports: DpopPorts, *, binding: str | None, scheme: str, proof: str | None,
    access_token: str, method: str, url: str, now: int,
) -> None:
    """Accept or refuse how a resource request presents an active access token.

    A DPoP-bound token needs the ``DPoP`` scheme and a proof for this request signed by its
    key, with its ``ath``; presented as ``Bearer`` it is refused (RFC 9449 section 7.1). A
    token that is not DPoP-bound is accepted only as ``Bearer``. Raises
    :class:`DpopRefused` (``invalid_token``, ``invalid_dpop_proof`` or ``use_dpop_nonce``).
    """
    jkt = bound_jkt(binding)
    dpop = scheme.lower() == "dpop"
    if jkt is None:
        if dpop:
            raise _refused("the access token is not DPoP-bound: send it as a Bearer token",
                           INVALID_TOKEN)
        return
    if not dpop:
        raise _refused("the access token is DPoP-bound: send it with the DPoP scheme and a "
                       "DPoP proof", INVALID_TOKEN)
    if proof is None:
        raise _refused("a DPoP proof is required with a DPoP-bound access token")
    proved = await check_proof(ports, proof, method=method, url=url, now=now,
                               access_token=access_token)
    if not hmac.compare_digest(proved, jkt):
        raise _refused("the DPoP proof is signed by another key than the token is bound to")

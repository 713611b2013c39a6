"""DPoP proofs with joserfc, as ``ports.dpop.DpopCodec``."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import msgspec
from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

from ports.dpop import InvalidProof, UnverifiedProof

# RFC 9864 deprecates the name "EdDSA" in favour of "Ed25519"; clients still send it.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

#: The key type (and, for EC and OKP, the curve) each accepted algorithm needs.
_KEYS: dict[str, tuple[type[Any], str | None]] = {
    "RS256": (RSAKey, None), "PS256": (RSAKey, None),
    "ES256": (ECKey, "P-256"), "ES384": (ECKey, "P-384"),
    "EdDSA": (OKPKey, "Ed25519"), "Ed25519": (OKPKey, "Ed25519"),
}
_MIN_RSA_BITS = 2048
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_claims_decoder = msgspec.json.Decoder(dict[str, Any])
#: joserfc's default caps the encoded header at 512 bytes, less than a proof whose ``jwk`` is
#: an RSA key; 4 KiB holds an RSA-8192 key and still bounds the work.
_REGISTRY = jws.JWSRegistry(algorithms=list(_KEYS))
_REGISTRY.max_header_length = 4096


class JoseDpopCodec:
    def read(self, proof: str) -> UnverifiedProof:
        try:
            compact = jws.extract_compact(proof.encode("ascii"), registry=_REGISTRY)
            claims = _claims_decoder.decode(compact.payload)
        except (JoseError, ValueError, UnicodeError, msgspec.DecodeError):
            raise InvalidProof("the DPoP proof is not a signed JWT (compact JWS of a JSON "
                               "object)") from None
        return UnverifiedProof(header=dict(compact.protected), claims=claims)

    def verify(self, proof: str, jwk: dict[str, Any], alg: str) -> str:
        if alg not in _KEYS:
            raise InvalidProof(f"alg {alg!r} is not accepted for DPoP proofs")
        if _PRIVATE_MEMBERS & set(jwk):
            raise InvalidProof("the jwk of a DPoP proof must be a public key")
        try:
            canonical = _canonical(jwk)
        except (TypeError, msgspec.EncodeError):
            raise InvalidProof(f"the jwk is not a public key for {alg}") from None
        key, thumbprint = _public_key(alg, canonical)
        try:
            jws.deserialize_compact(proof, key, algorithms=[alg], registry=_REGISTRY)
        except (JoseError, ValueError):
            raise InvalidProof("the DPoP proof's signature does not verify") from None
        return thumbprint


def _canonical(jwk: dict[str, Any]) -> str:
    return msgspec.json.encode(jwk, order="sorted").decode()


@functools.lru_cache(maxsize=1024)
def _public_key(alg: str, canonical_jwk: str) -> tuple[Any, str]:
    """The imported key and its thumbprint: a client proves with the same key request after
    request, and importing it costs a fifth of a proof's check. Refusals are not cached
    (an exception is never a cached value)."""
    key_type, curve = _KEYS[alg]
    try:
        key = key_type.import_key(msgspec.json.decode(canonical_jwk))
    except (JoseError, ValueError, TypeError, KeyError):
        raise InvalidProof(f"the jwk is not a public key for {alg}") from None
    if curve is not None and key.curve_name != curve:
        raise InvalidProof(f"{alg} needs a key on the curve {curve}")
    if isinstance(key, RSAKey) and key.raw_value.key_size < _MIN_RSA_BITS:
        raise InvalidProof(f"an RSA key needs at least {_MIN_RSA_BITS} bits")
    return key, str(key.thumbprint())

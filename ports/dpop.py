"""The JOSE work of DPoP proofs (RFC 9449): reading a proof, checking its signature with the
public key it carries, and that key's thumbprint.

CPU only, so synchronous. The domain (``domain.dpop``) decides which header values and
algorithms are acceptable and checks the claims; the adapter does the cryptography and
raises only :class:`InvalidProof`.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from domain.errors import DomainError


class InvalidProof(DomainError):
    """The proof is malformed, its key unusable, or its signature does not verify. The
    message is fit for an error description."""


class UnverifiedProof(NamedTuple):
    """The protected header and the claims of a proof, before its signature is checked."""

    header: dict[str, Any]
    claims: dict[str, Any]


class DpopCodec(Protocol):
    def read(self, proof: str) -> UnverifiedProof:
        """The header and claims of a compact JWS whose payload is a JSON object, unverified.
        Raises :class:`InvalidProof` for anything else."""
        ...

    def verify(self, proof: str, jwk: dict[str, Any], alg: str) -> str:
        """Check that ``proof`` is signed with ``alg`` by the public key ``jwk`` (the one in
        its header) and return that key's RFC 7638 SHA-256 thumbprint (base64url). Raises
        :class:`InvalidProof` when the key is not a public key fit for ``alg`` (an RSA key
        under 2048 bits, an EC key on another curve) or the signature does not verify."""
        ...

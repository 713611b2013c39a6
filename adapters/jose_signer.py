"""ID-token signing with joserfc (RS256), behind ``ports.security.IdTokenSigner``.

Several keys may be loaded: the first signs, every one is published in the JWKS, so that
tokens signed by an older key still verify during a rotation. ``kid`` is the key's RFC 7638
thumbprint, stable across restarts and instances for the same key file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

#: RS256 with less than 2048-bit keys is refused by current guidance (NIST SP 800-131A).
MIN_RSA_BITS = 2048
#: Longer than any token this server signs: anything longer is not one of ours.
_MAX_JWS_LENGTH = 16 * 1024


class JoseSigner:
    """Signs with the first key; publishes all of them."""

    algorithm = "RS256"

    def __init__(self, keys: Sequence[RSAKey]) -> None:
        if not keys:
            raise ValueError("at least one signing key is required")
        unique: dict[str, RSAKey] = {}
        for key in keys:
            if not key.is_private:
                raise ValueError("a signing key must be a private key")
            if key.raw_value.key_size < MIN_RSA_BITS:
                raise ValueError(f"an RSA signing key must have at least {MIN_RSA_BITS} bits")
            # The same file listed twice would publish one kid twice.
            unique.setdefault(key.thumbprint(), key)
        self._keys = tuple(unique.values())
        self._by_kid = unique
        self._signing = self._keys[0]
        self._kid = self._signing.thumbprint()
        self._jwks = {
            "keys": [
                {**key.as_dict(private=False), "kid": kid, "use": "sig", "alg": self.algorithm}
                for kid, key in unique.items()
            ]
        }

    @classmethod
    def from_pem_files(cls, paths: Sequence[str]) -> JoseSigner:
        """Load PEM private keys; the first path is the current (signing) key.

        Raises ``OSError`` for an unreadable file and ``ValueError`` for anything that is not
        an RSA private key of at least 2048 bits.
        """
        keys = []
        for path in paths:
            with open(path, "rb") as handle:
                keys.append(RSAKey.import_key(handle.read()))
        return cls(keys)

    @classmethod
    def generated(cls) -> JoseSigner:
        """A signer with a fresh 2048-bit key, for a process without ``SIGNING_KEY_FILE``."""
        return cls([RSAKey.generate_key(2048, private=True)])

    @property
    def kid(self) -> str:
        """The ``kid`` of the signing key."""
        return self._kid

    def sign(self, claims: dict[str, Any], *, typ: str = "JWT") -> str:
        """A compact JWS of ``claims`` with the current key, its ``kid`` and ``typ`` in the
        header."""
        header = {"alg": self.algorithm, "kid": self._kid, "typ": typ}
        return jwt.encode(header, claims, self._signing)

    def verify(self, token: str) -> dict[str, Any] | None:
        """See :meth:`ports.security.IdTokenSigner.verify`: the key is chosen by ``kid``
        among the loaded keys, and only this server's algorithm is accepted."""
        if not isinstance(token, str) or len(token) > _MAX_JWS_LENGTH:
            return None
        try:
            header = jws.extract_compact(token.encode("ascii")).protected
            key = self._by_kid.get(header.get("kid", ""))
            if key is None or header.get("alg") != self.algorithm:
                return None
            decoded = jwt.decode(token, key, algorithms=[self.algorithm])
        except (JoseError, ValueError, UnicodeError):
            return None
        claims = decoded.claims
        return claims if isinstance(claims, dict) else None

    def jwks(self) -> dict[str, Any]:
        """Every public key, the signing one first."""
        return self._jwks

    def derive_secret(self, label: str) -> bytes:
        """A 256-bit secret for ``label``, derived (HKDF-SHA256) from the signing key.

        Every instance configured with the same key derives the same secret, so state sealed
        by one (the sign-in transaction) opens on another; distinct labels give independent
        secrets, and nothing about the private key can be learnt from one.
        """
        return _derive(self._signing, label)

    def derive_secrets(self, label: str) -> tuple[bytes, ...]:
        """:meth:`derive_secret` for every loaded key, the signing key's first: what a
        keyring that rotates along with the signing keys needs."""
        return tuple(_derive(key, label) for key in self._keys)


def _derive(key: RSAKey, label: str) -> bytes:
    private_key = key.private_key
    assert private_key is not None  # only private keys are accepted by JoseSigner
    private_numbers = private_key.private_numbers()
    material = private_numbers.d.to_bytes((private_numbers.d.bit_length() + 7) // 8, "big")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"auth-service", info=label.encode())
    return hkdf.derive(material)

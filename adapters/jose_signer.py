"""JWT signing with joserfc (RS256, ES256, EdDSA), behind ``ports.security.IdTokenSigner``.

Several keys may be loaded, of mixed types: RSA (at least 2048 bits) signs RS256, EC P-256
signs ES256, Ed25519 signs EdDSA. The first key loaded is the *primary* key: it signs
whatever asks for no algorithm (``sign(claims)``: logout tokens, ID tokens of clients
without ``id_token_signed_response_alg``) and it is the key secrets are derived from. For
each algorithm the first key of its type signs; every key is published in the JWKS, so
that tokens signed by an older key still verify during a rotation. ``kid`` is the key's
RFC 7638 thumbprint, stable across restarts and instances for the same key file.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jws, jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

# RFC 9864 deprecates the name "EdDSA" in favour of "Ed25519"; OpenID Connect relying parties
# know only "EdDSA" (it is what discovery lists), so that is the name we sign with.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

#: RS256 with less than 2048-bit keys is refused by current guidance (NIST SP 800-131A).
MIN_RSA_BITS = 2048
#: Longer than any token this server signs: anything longer is not one of ours.
_MAX_JWS_LENGTH = 16 * 1024

RS256 = "RS256"
ES256 = "ES256"
EDDSA = "EdDSA"
#: Every algorithm a key of ours can sign with.
SIGNING_ALGORITHMS: tuple[str, ...] = (RS256, ES256, EDDSA)

SigningKey = RSAKey | ECKey | OKPKey


def key_algorithm(key: SigningKey) -> str:
    """The JWS algorithm ``key`` signs with; ``ValueError`` for a key we do not sign with."""
    if isinstance(key, RSAKey):
        if key.raw_value.key_size < MIN_RSA_BITS:
            raise ValueError(f"an RSA signing key must have at least {MIN_RSA_BITS} bits")
        return RS256
    if isinstance(key, ECKey):
        if key.curve_name != "P-256":
            raise ValueError("an EC signing key must be on the curve P-256 (ES256)")
        return ES256
    if isinstance(key, OKPKey):
        if key.curve_name != "Ed25519":
            raise ValueError("an OKP signing key must be an Ed25519 key (EdDSA)")
        return EDDSA
    raise ValueError("a signing key must be an RSA, EC P-256 or Ed25519 key")


class JoseSigner:
    """Signs with the primary key (or the first key of the algorithm asked for); publishes
    every key."""

    def __init__(self, keys: Sequence[SigningKey]) -> None:
        if not keys:
            raise ValueError("at least one signing key is required")
        unique: dict[str, tuple[SigningKey, str]] = {}
        for key in keys:
            if not key.is_private:
                raise ValueError("a signing key must be a private key")
            # The same file listed twice would publish one kid twice.
            unique.setdefault(key.thumbprint(), (key, key_algorithm(key)))
        self._keys = tuple(key for key, _alg in unique.values())
        self._by_kid = unique
        self._signing: dict[str, tuple[SigningKey, str]] = {}
        for kid, (key, alg) in unique.items():
            self._signing.setdefault(alg, (key, kid))
        self._primary = self._keys[0]
        self._algorithm = key_algorithm(self._primary)
        self._kid = self._primary.thumbprint()
        self._jwks = {
            "keys": [
                {**key.as_dict(private=False), "kid": kid, "use": "sig", "alg": alg}
                for kid, (key, alg) in unique.items()
            ]
        }

    @classmethod
    def from_pem_files(cls, paths: Sequence[str]) -> JoseSigner:
        """Load PEM private keys; the first path is the primary key.

        Raises ``OSError`` for an unreadable file and ``ValueError`` for anything that is not
        an RSA (at least 2048 bits), EC P-256 or Ed25519 private key.
        """
        keys = []
        for path in paths:
            with open(path, "rb") as handle:
                keys.append(import_pem_key(handle.read()))
        return cls(keys)

    @classmethod
    def generated(cls) -> JoseSigner:
        """A signer with a fresh 2048-bit key, for a process without ``SIGNING_KEY_FILE``."""
        return cls([RSAKey.generate_key(2048, private=True)])

    @property
    def algorithm(self) -> str:
        """The algorithm of the primary key."""
        return self._algorithm

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Every algorithm a loaded key signs with, the primary key's first."""
        return tuple(self._signing)

    @property
    def kid(self) -> str:
        """The ``kid`` of the primary key."""
        return self._kid

    def sign(self, claims: dict[str, Any], *, typ: str = "JWT", alg: str | None = None) -> str:
        """A compact JWS of ``claims`` with ``kid`` and ``typ`` in the header: by the primary
        key, or with ``alg`` by the first key of its type (``ValueError`` when no key signs
        ``alg``)."""
        if alg is None:
            key, kid, alg = self._primary, self._kid, self._algorithm
        else:
            chosen = self._signing.get(alg)
            if chosen is None:
                raise ValueError(f"no signing key for {alg}")
            key, kid = chosen
        header = {"alg": alg, "kid": kid, "typ": typ}
        return jwt.encode(header, claims, key, algorithms=[alg])

    def verify(self, token: str) -> dict[str, Any] | None:
        """See :meth:`ports.security.IdTokenSigner.verify`: the key is chosen by ``kid``
        among the loaded keys, and only that key's algorithm is accepted."""
        if not isinstance(token, str) or len(token) > _MAX_JWS_LENGTH:
            return None
        try:
            header = jws.extract_compact(token.encode("ascii")).protected
            found = self._by_kid.get(header.get("kid", ""))
            if found is None or header.get("alg") != found[1]:
                return None
            decoded = jwt.decode(token, found[0], algorithms=[found[1]])
        except (JoseError, ValueError, UnicodeError):
            return None
        claims = decoded.claims
        return claims if isinstance(claims, dict) else None

    def jwks(self) -> dict[str, Any]:
        """Every public key, the primary one first."""
        return self._jwks

    def derive_secret(self, label: str) -> bytes:
        """A 256-bit secret for ``label``, derived (HKDF-SHA256) from the primary key.

        Every instance configured with the same key derives the same secret, so state sealed
        by one (the sign-in transaction) opens on another; distinct labels give independent
        secrets, and nothing about the private key can be learnt from one.
        """
        return _derive(self._primary, label)

    def derive_secrets(self, label: str) -> tuple[bytes, ...]:
        """:meth:`derive_secret` for every loaded key, the primary key's first: what a
        keyring that rotates along with the signing keys needs."""
        return tuple(_derive(key, label) for key in self._keys)


def import_pem_key(data: bytes) -> SigningKey:
    """A private key from PEM: RSA, EC or Ed25519 (``ValueError`` for anything else, a
    public key included)."""
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (TypeError, ValueError) as exc:
        raise ValueError("not an unencrypted PEM private key") from exc
    if isinstance(private, rsa.RSAPrivateKey):
        return RSAKey.import_key(private)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return ECKey.import_key(private)
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return OKPKey.import_key(private)
    raise ValueError("a signing key must be an RSA, EC P-256 or Ed25519 key")


def generate_pem_key(alg: str) -> bytes:
    """A new private key for ``alg`` (RS256: RSA 2048 bits; ES256: P-256; EdDSA: Ed25519),
    as unencrypted PKCS#8 PEM."""
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if alg == RS256:
        private = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
    elif alg == ES256:
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == EDDSA:
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unsupported algorithm {alg!r}; use one of "
                         f"{', '.join(SIGNING_ALGORITHMS)}")
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def _derive(key: SigningKey, label: str) -> bytes:
    private_key = key.private_key
    assert private_key is not None  # only private keys are accepted by JoseSigner
    material: bytes
    if isinstance(private_key, rsa.RSAPrivateKey):
        # Unchanged since RS256 was the only algorithm: existing key files keep deriving the
        # same secrets (sealed sign-ins, seeds sealed without SEALING_KEY_FILE).
        d = private_key.private_numbers().d
        material = d.to_bytes((d.bit_length() + 7) // 8, "big")
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        # The private scalar, at the curve's fixed width (32 bytes for P-256).
        width = (private_key.curve.key_size + 7) // 8
        material = private_key.private_numbers().private_value.to_bytes(width, "big")
    elif isinstance(private_key, ed25519.Ed25519PrivateKey):
        # The 32-byte seed (RFC 8032 section 5.1.5), from which the key itself is derived.
        material = private_key.private_bytes(serialization.Encoding.Raw,
                                             serialization.PrivateFormat.Raw,
                                             serialization.NoEncryption())
    else:  # pragma: no cover - key_algorithm admits no other key type
        raise ValueError("unsupported key type")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"auth-service", info=label.encode())
    return hkdf.derive(material)

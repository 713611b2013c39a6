"""Sealing with joserfc: compact JWE, ``dir`` with A256GCM, behind ``ports.sealing.Sealer``.

AES-GCM gives confidentiality and integrity in one step; the key is 256 bits derived from
the ID-token signing key (see ``JoseSigner.derive_secret``), so instances that share the
signing key share it too.
"""

from __future__ import annotations

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

_HEADER = {"alg": "dir", "enc": "A256GCM"}
_MAX_SEALED_LENGTH = 8192


class JoseSealer:
    """Seals bytes as a compact JWE with a 256-bit symmetric key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the sealing key must be 32 bytes")
        self._key = OctKey.import_key(key)

    def seal(self, payload: bytes) -> str:
        """A compact JWE of ``payload``."""
        return jwe.encrypt_compact(_HEADER, payload, self._key)

    def unseal(self, sealed: str) -> bytes | None:
        """The payload, or None for anything not sealed by this key."""
        if not sealed or len(sealed) > _MAX_SEALED_LENGTH:
            return None
        try:
            plaintext = jwe.decrypt_compact(sealed, self._key, algorithms=["dir", "A256GCM"])
        except (JoseError, ValueError, TypeError):
            return None
        return plaintext.plaintext

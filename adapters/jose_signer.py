"""ID-token signing with joserfc (RS256), behind ``ports.security.IdTokenSigner``.

Several keys may be loaded: the first signs, every one is published in the JWKS, so that
tokens signed by an older key still verify during a rotation. ``kid`` is the key's RFC 7638
thumbprint, stable across restarts and instances for the same key file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey


class JoseSigner:
    algorithm = "RS256"

    def __init__(self, keys: Sequence[RSAKey]) -> None:
        if not keys:
            raise ValueError("at least one signing key is required")
        self._keys = tuple(keys)
        self._signing = keys[0]
        self._kid = keys[0].thumbprint()
        self._jwks = {
            "keys": [
                {**key.as_dict(private=False), "kid": key.thumbprint(), "use": "sig",
                 "alg": self.algorithm}
                for key in self._keys
            ]
        }

    @classmethod
    def from_pem_files(cls, paths: Sequence[str]) -> JoseSigner:
        """Load PEM private keys; the first path is the current (signing) key."""
        keys = []
        for path in paths:
            with open(path, "rb") as handle:
                keys.append(RSAKey.import_key(handle.read()))
        return cls(keys)

    @classmethod
    def generated(cls) -> JoseSigner:
        return cls([RSAKey.generate_key(2048, private=True)])

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": self.algorithm, "kid": self._kid, "typ": "JWT"}
        return jwt.encode(header, claims, self._signing)

    def jwks(self) -> dict[str, Any]:
        return self._jwks

"""A DPoP client's side (RFC 9449 section 4), built with joserfc: Authlib has no DPoP.

``DpopKey`` holds a client's key pair and makes proofs for requests; tests can break any
part of a proof (``typ``, ``alg``, the key in the header, each claim) to see it refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import warnings
from typing import Any

from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

_GENERATE: dict[str, Any] = {
    "ES256": lambda: ECKey.generate_key("P-256", private=True, auto_kid=False),
    "EdDSA": lambda: OKPKey.generate_key("Ed25519", private=True, auto_kid=False),
    "RS256": lambda: RSAKey.generate_key(2048, private=True, auto_kid=False),
    "PS256": lambda: RSAKey.generate_key(2048, private=True, auto_kid=False),
}


def ath(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class DpopKey:
    """A client's DPoP key pair."""

    def __init__(self, alg: str = "ES256", key: Any = None) -> None:
        self.alg = alg
        self.key = key if key is not None else _GENERATE[alg]()

    @property
    def jkt(self) -> str:
        """The RFC 7638 thumbprint the server binds tokens to."""
        return str(self.key.thumbprint())

    def public_jwk(self) -> dict[str, Any]:
        return dict(self.key.as_dict(private=False))

    def proof(
        self, method: str, url: str, *, iat: int, nonce: str | None = None,
        access_token: str | None = None, jti: str | None = None, typ: str = "dpop+jwt",
        header: dict[str, Any] | None = None, claims: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
    ) -> str:
        """A signed proof; ``header``/``claims`` override (or add) members, ``drop`` removes
        claims."""
        protected: dict[str, Any] = {"typ": typ, "alg": self.alg, "jwk": self.public_jwk()}
        protected.update(header or {})
        payload: dict[str, Any] = {"jti": jti or secrets.token_urlsafe(16), "htm": method,
                                   "htu": url, "iat": iat}
        if nonce is not None:
            payload["nonce"] = nonce
        if access_token is not None:
            payload["ath"] = ath(access_token)
        payload.update(claims or {})
        for name in drop:
            payload.pop(name, None)
        return jws.serialize_compact(protected, json.dumps(payload).encode(), self.key,
                                     algorithms=[self.alg])

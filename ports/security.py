"""Ports for secrets: random token values, password hashing and ID-token signing."""

from __future__ import annotations

import secrets
from typing import Any, Protocol


class TokenGenerator(Protocol):
    def new(self, prefix: str) -> str:
        """A fresh opaque value: ``prefix`` + at least 256 random bits, URL-safe."""
        ...


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str:
        """An argon2id PHC string."""
        ...

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when the password matches. With ``password_hash`` None it still spends the
        time of one verification (so unknown users take as long) and returns False."""
        ...


class IdTokenSigner(Protocol):
    def sign(self, claims: dict[str, Any], *, typ: str = "JWT") -> str:
        """A compact JWS of ``claims`` signed by the newest key, with its ``kid`` and
        ``typ`` (``logout+jwt`` for a logout token, RFC 8725 explicit typing) in the
        header."""
        ...

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a compact JWS this server signed with one of the keys it publishes
        (an ``id_token_hint``), or None for anything else. Only the signature is checked:
        ``exp`` and the other claims are the caller's to judge (an expired hint is fine)."""
        ...

    def jwks(self) -> dict[str, Any]:
        """The public keys, newest first: ``{"keys": [...]}``."""
        ...

    @property
    def algorithm(self) -> str:
        """The JWS ``alg`` used, e.g. ``RS256``."""
        ...


class SecretsTokenGenerator:
    """Token values from :mod:`secrets`: 32 random bytes (256 bits), URL-safe base64."""

    def new(self, prefix: str) -> str:
        return prefix + secrets.token_urlsafe(32)

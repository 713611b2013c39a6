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
    def sign(self, claims: dict[str, Any], *, typ: str = "JWT", alg: str | None = None) -> str:
        """A compact JWS of ``claims`` with its key's ``kid`` and ``typ`` (``logout+jwt`` for
        a logout token, RFC 8725 explicit typing) in the header: signed by the primary
        (newest) key, or, with ``alg``, by the newest key of that algorithm. ``ValueError``
        when no key signs ``alg`` (callers check :attr:`algorithms` first)."""
        ...

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a compact JWS this server signed with one of the keys it publishes
        (an ``id_token_hint``), or None for anything else. Only the signature is checked:
        ``exp`` and the other claims are the caller's to judge (an expired hint is fine)."""
        ...

    def jwks(self) -> dict[str, Any]:
        """The public keys, newest first: ``{"keys": [...]}``. Keys that no longer sign stay
        here while tokens they signed may still be presented (a rotation)."""
        ...

    @property
    def algorithm(self) -> str:
        """The JWS ``alg`` of the primary key, e.g. ``RS256``."""
        ...

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Every JWS ``alg`` a loaded key signs with (``RS256``, ``ES256``, ``EdDSA``), the
        primary key's first."""
        ...

    def derive_secret(self, label: str) -> bytes:
        """A 256-bit secret for ``label`` derived from the primary key: the same on every
        instance that holds the same key, independent for distinct labels."""
        ...


class SecretsTokenGenerator:
    """Token values from :mod:`secrets`: 32 random bytes (256 bits), URL-safe base64."""

    def new(self, prefix: str) -> str:
        return prefix + secrets.token_urlsafe(32)

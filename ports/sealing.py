"""The sealing ports: state a browser carries for us, and secrets kept at rest.

``Sealer``: short-lived state a browser carries for us, unreadable and untamperable. The
sign-in transaction (the authorization request, which steps passed) travels between
pages in a cookie sealed with a key every instance shares, so any instance can continue a
sign-in that another one started. A pending TOTP enrolment is sealed the same way and
handed back by the client, so it never touches the stored factor.

``SecretSealer``: long-lived secrets the store keeps (TOTP seeds), under keys that are not
in the store, with rotation.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from domain.errors import DomainError


class Sealer(Protocol):
    def seal(self, payload: bytes) -> str:
        """Encrypt and authenticate ``payload``; the result is URL- and cookie-safe."""
        ...

    def unseal(self, sealed: str) -> bytes | None:
        """The payload of a value made by ``seal`` with the same key; None when the value was
        altered, made with another key, or malformed."""
        ...


class UnreadableSecret(DomainError):
    """A sealed value that cannot be opened: altered, sealed for other associated data, or
    sealed with a key that is not configured (any more)."""


class OpenedSecret(NamedTuple):
    """An opened value. ``stale`` says it was sealed with a key other than the current one:
    seal it again so that the older key can be retired."""

    plaintext: str
    stale: bool


class SecretSealer(Protocol):
    """Secrets kept at rest (TOTP seeds), sealed so that the store alone does not reveal them.

    Sealing happens in the use cases; every store keeps the result as an opaque string, so
    every backend, third-party adapters included, stores sealed values unchanged. The key
    lives outside the store. ``associated_data`` binds a value to its place (the user it
    belongs to): a sealed value copied to another place does not open there.
    """

    def seal(self, plaintext: str, associated_data: str) -> str:
        """Encrypt and authenticate ``plaintext`` with the current key. The result is ASCII
        and never a bare base32 string, so values stored before sealing existed are told
        apart by :meth:`is_sealed`."""
        ...

    def open(self, sealed: str, associated_data: str) -> OpenedSecret:
        """The plaintext of a value made by ``seal`` with any configured key and the same
        ``associated_data``. Raises ``UnreadableSecret`` otherwise."""
        ...

    def is_sealed(self, value: str) -> bool:
        """True when ``value`` has the sealed format (whether or not it opens); False for a
        value stored in clear."""
        ...

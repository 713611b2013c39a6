"""The JOSE work of client assertions (RFC 7523): reading, key sets, signature checks.

CPU only, so synchronous. The domain decides which keys and algorithms are acceptable and
checks the claims; the adapter does the cryptography and raises only
:class:`InvalidAssertion`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from domain.errors import DomainError


class InvalidAssertion(DomainError):
    """The assertion (or a key set) is malformed, or its signature does not verify with the
    keys and algorithms given. The message is fit for an error description."""


class UnverifiedAssertion(NamedTuple):
    """What an assertion claims before its signature is checked: only for choosing keys."""

    alg: str
    kid: str | None
    claims: dict[str, Any]


class PublicKeys(Protocol):
    """A client's public keys, imported once (opaque to the domain)."""

    def has_kid(self, kid: str) -> bool:
        ...


class AssertionCodec(Protocol):
    def read(self, assertion: str) -> UnverifiedAssertion:
        """The header's ``alg`` and ``kid`` and the claims, unverified. Raises
        :class:`InvalidAssertion` for anything that is not a compact JWS of a JSON object."""
        ...

    def public_keys(self, jwks: Mapping[str, Any]) -> PublicKeys:
        """The signature keys of a JWK Set (``{"keys": [...]}``): public RSA, EC and OKP keys
        only; private members are ignored, symmetric keys refused. Raises
        :class:`InvalidAssertion` when the set is malformed or holds no usable key."""
        ...

    def verify_with_public_keys(
        self, assertion: str, header: UnverifiedAssertion, keys: PublicKeys,
        algorithms: Sequence[str],
    ) -> None:
        """Raise :class:`InvalidAssertion` unless ``assertion`` (``header`` is what
        :meth:`read` gave for it) is signed with one of ``algorithms`` by one of ``keys``
        (the one its ``kid`` names; without a ``kid``, any key of the algorithm's type)."""
        ...

    def verify_with_secrets(
        self, assertion: str, header: UnverifiedAssertion, secrets: Sequence[str],
        algorithms: Sequence[str],
    ) -> None:
        """Raise :class:`InvalidAssertion` unless ``assertion`` is an HMAC with one of
        ``algorithms`` under one of the shared ``secrets``."""
        ...

"""Consent: what a user allowed a client that the operator does not trust by default.

A client that is not ``first_party`` gets a code only for scopes the user has consented to.
The decision is kept per (user, client) as the union of every scope the user allowed; an
authorization request is asked again only for the scopes not in it (or always, with
``prompt=consent``). Each grant issued under a consent is recorded with it
(:class:`ConsentGrant`), so that withdrawing the consent revokes that client's tokens for the
user, refresh tokens included, long after the session that issued them ended.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec


class Consent(msgspec.Struct, frozen=True, kw_only=True):
    """The scopes (sorted, no duplicates) ``user_id`` allowed ``client_id``."""

    user_id: str
    client_id: str
    scopes: tuple[str, ...]
    created_at: int
    updated_at: int


class ConsentGrant(msgspec.Struct, frozen=True):
    """A grant issued under a consent, remembered until ``exp`` (when nothing of it can
    still be alive: the grant's absolute lifetime)."""

    grant_id: str
    exp: int


class ConsentRecord(msgspec.Struct, frozen=True):
    """A consent with the live grants issued under it: what withdrawing returns, and what
    ``store copy`` moves."""

    consent: Consent
    grants: tuple[ConsentGrant, ...] = ()


def scopes_to_ask(consent: Consent | None, requested: Iterable[str]) -> tuple[str, ...]:
    """The requested scopes the user has not consented to yet, in the request's order."""
    held = frozenset(consent.scopes) if consent is not None else frozenset()
    return tuple(s for s in dict.fromkeys(requested) if s not in held)


def merged_scopes(held: Iterable[str], added: Iterable[str]) -> tuple[str, ...]:
    """The scopes of a consent after the user allowed ``added`` on top of ``held``."""
    return tuple(sorted(set(held) | set(added)))


def merge_consents(held: Consent, incoming: Consent) -> Consent:
    """The consent an import leaves when the target already holds one (see
    :meth:`ports.store.ConsentTransfer.import_consents`)."""
    return msgspec.structs.replace(
        held, scopes=merged_scopes(held.scopes, incoming.scopes),
        created_at=min(held.created_at, incoming.created_at),
        updated_at=max(held.updated_at, incoming.updated_at))

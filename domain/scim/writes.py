"""SCIM writes as units: the core of the single write endpoints and of each Bulk operation.

Each function is the use case of :mod:`domain.identities` run as one unit of the store
(:func:`atomically`): on a store with transactions (sql), a write that takes several store
calls (a PUT that sets a password and revokes the user's tokens, a DELETE and its
revocations) is kept whole or not at all, whichever endpoint (``/Users/{id}`` or
``/Bulk``) asked for it.

A user write that ends the user's sessions (:mod:`domain.user_sessions`: a deactivation,
a deletion, a password) ends them inside the unit; the back-channel logouts go out once
the unit is done (:func:`~domain.user_sessions.ending_sessions_after`).

Once a user write is done (the unit committed), a primary email it created or changed gets
a verification link (:func:`domain.email_verification.email_written_quietly`, with
``WritePorts.verification``): after the unit, so that no link names a write that was rolled
back, and never failing the write that succeeded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from domain import identities
from domain.email_verification import VerificationPorts, email_written_quietly
from domain.entities import Group, User
from domain.errors import PreconditionFailed
from domain.logout import LogoutPorts
from domain.password_policy import DEFAULT_PASSWORD_POLICY, PasswordPolicy
from domain.scim.resources import versions_of
from domain.user_sessions import ending_sessions_after
from ports.clock import Clock
from ports.events import Events
from ports.security import PasswordHasher
from ports.store import Atomic, Store

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class WritePorts:
    """What a SCIM write needs, assembled once per request."""

    store: Store
    clock: Clock
    hasher: PasswordHasher
    events: Events
    #: Ending the sessions of a user deprovisioned or given a new password.
    logout: LogoutPorts
    policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY
    #: Mailing verification links for new and changed emails; None: none are sent
    #: (``EMAIL_VERIFICATION_ON_PROVISION`` off).
    verification: VerificationPorts | None = None


async def atomically(store: Store, work: Callable[[], Awaitable[_T]]) -> _T:
    """``work`` as one unit of ``store`` when it has units (``ports.store.Atomic``), else
    as it is (memory and hybrid: nothing a crash could leave half-written survives it)."""
    if isinstance(store, Atomic):
        return await store.atomically(work)
    return await work()


async def expected_version(
    tags: str | None, current: Callable[[], Awaitable[User | Group]]
) -> int | None:
    """The ``expected_version`` an ``If-Match`` header (or a Bulk operation's ``version``)
    asks for: None without one. With several tags the resource is read (``current``) and
    must be at one of them, else ``PreconditionFailed``."""
    versions = versions_of(tags)
    if versions is None:
        return None
    if len(versions) == 1:
        return next(iter(versions))
    version = (await current()).version
    if version not in versions:
        raise PreconditionFailed("no entity tag matches")
    return version


class _Written:
    """Keeps the user as it was before the write that succeeded (a PATCH's last attempt)."""

    def __init__(self) -> None:
        self.before: User | None = None

    def __call__(self, before: User, after: User) -> None:
        self.before = before


async def _email_written(ports: WritePorts, before: User | None, after: User, *,
                         created: bool = False) -> None:
    if ports.verification is not None and (created or before is not None):
        await email_written_quietly(ports.verification, before, after, reason="scim")


async def create_user(ports: WritePorts, body: Any) -> User:
    """See :func:`domain.identities.create_user`."""
    user = await atomically(ports.store, lambda: identities.create_user(
        ports.store, ports.clock, ports.hasher, body, ports.policy))
    await _email_written(ports, None, user, created=True)
    return user


async def replace_user(ports: WritePorts, user_id: str, body: Any,
                       expected_version: int | None) -> User:
    """See :func:`domain.identities.replace_user`."""
    written = _Written()
    user = await ending_sessions_after(ports.logout, lambda sessions: atomically(
        ports.store, lambda: identities.replace_user(
            ports.store, ports.clock, ports.hasher, ports.events, user_id, body,
            sessions=sessions, expected_version=expected_version, policy=ports.policy,
            written=written)))
    await _email_written(ports, written.before, user)
    return user


async def patch_user(ports: WritePorts, user_id: str, body: Any,
                     expected_version: int | None) -> User:
    """See :func:`domain.identities.patch_user`."""
    written = _Written()
    user = await ending_sessions_after(ports.logout, lambda sessions: atomically(
        ports.store, lambda: identities.patch_user(
            ports.store, ports.clock, ports.hasher, ports.events, user_id, body,
            sessions=sessions, expected_version=expected_version, policy=ports.policy,
            written=written)))
    await _email_written(ports, written.before, user)
    return user


async def delete_user(ports: WritePorts, user_id: str, expected_version: int | None) -> None:
    """See :func:`domain.identities.delete_user`."""
    await ending_sessions_after(ports.logout, lambda sessions: atomically(
        ports.store, lambda: identities.delete_user(
            ports.store, ports.clock, ports.events, user_id, sessions=sessions,
            expected_version=expected_version)))


async def create_group(ports: WritePorts, body: Any) -> Group:
    """See :func:`domain.identities.create_group`."""
    return await atomically(ports.store, lambda: identities.create_group(
        ports.store, ports.clock, body))


async def replace_group(ports: WritePorts, group_id: str, body: Any,
                        expected_version: int | None) -> Group:
    """See :func:`domain.identities.replace_group`."""
    return await atomically(ports.store, lambda: identities.replace_group(
        ports.store, ports.clock, group_id, body, expected_version=expected_version))


async def patch_group(ports: WritePorts, group_id: str, body: Any,
                      expected_version: int | None, *, members: bool = True) -> Group:
    """See :func:`domain.identities.patch_group`."""
    return await atomically(ports.store, lambda: identities.patch_group(
        ports.store, ports.clock, group_id, body, expected_version=expected_version,
        members=members))


async def delete_group(ports: WritePorts, group_id: str, expected_version: int | None) -> None:
    """See :func:`domain.identities.delete_group`."""
    await atomically(ports.store, lambda: identities.delete_group(
        ports.store, group_id, expected_version=expected_version))

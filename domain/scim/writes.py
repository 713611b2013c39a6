"""SCIM writes as units: the core of the single write endpoints and of each Bulk operation.

Each function is the use case of :mod:`domain.identities` run as one unit of the store
(:func:`atomically`): on a store with transactions (sql), a write that takes several store
calls (a PUT that sets a password and revokes the user's tokens, a DELETE and its
revocations) is kept whole or not at all, whichever endpoint (``/Users/{id}`` or
``/Bulk``) asked for it.

A user write that ends the user's sessions (:mod:`domain.user_sessions`: a deactivation,
a deletion, a password) ends them inside the unit; the back-channel logouts go out once
the unit is done (:func:`~domain.user_sessions.ending_sessions_after`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from domain import identities
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


async def create_user(ports: WritePorts, body: Any) -> User:
    """See :func:`domain.identities.create_user`."""
    return await atomically(ports.store, lambda: identities.create_user(
        ports.store, ports.clock, ports.hasher, body, ports.policy))


async def replace_user(ports: WritePorts, user_id: str, body: Any,
                       expected_version: int | None) -> User:
    """See :func:`domain.identities.replace_user`."""
    return await ending_sessions_after(ports.logout, lambda sessions: atomically(
        ports.store, lambda: identities.replace_user(
            ports.store, ports.clock, ports.hasher, ports.events, user_id, body,
            sessions=sessions, expected_version=expected_version, policy=ports.policy)))


async def patch_user(ports: WritePorts, user_id: str, body: Any,
                     expected_version: int | None) -> User:
    """See :func:`domain.identities.patch_user`."""
    return await ending_sessions_after(ports.logout, lambda sessions: atomically(
        ports.store, lambda: identities.patch_user(
            ports.store, ports.clock, ports.hasher, ports.events, user_id, body,
            sessions=sessions, expected_version=expected_version, policy=ports.policy)))


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

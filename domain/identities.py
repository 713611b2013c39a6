"""Use cases for SCIM identities: users and groups (create, get, list, replace, patch, delete).

Bodies arrive as decoded SCIM JSON and leave as entities; the HTTP layer only translates.

- Filters are parsed and validated against the resource's attributes here, so every store
  receives only filters it can translate (``InvalidFilter`` otherwise).
- Passwords are hashed through the ``PasswordHasher`` port and stored with the user; they
  never appear in an entity.
- Deactivating a user (``active`` from true to false) or deleting one ends every browser
  session of the user (:mod:`domain.user_sessions`: back-channel logouts included) and
  revokes every token whose subject is that user; sign-in checks ``active`` itself. So
  does setting or clearing the password (a PATCH ``remove`` of ``password``): whoever held
  the old one must not keep a session it opened. Deleting a user also withdraws its
  consents.
- A new password must satisfy the :class:`~domain.password_policy.PasswordPolicy`
  (``PasswordRejected``, an ``InvalidValue``).
- Ids in paths and every string of a body must be storable (:mod:`domain.text`).
- Writes take the ``expected_version`` of an ``If-Match``. A PATCH without one is a
  read-modify-write that is retried a few times when another writer got in between, so
  concurrent patches (Entra adding two members at once) do not lose each other's changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from domain.entities import EnterpriseUser, Group, Page, User
from domain.errors import PreconditionFailed
from domain.filter_parser import parse_filter
from domain.filters import ListQuery
from domain.password_policy import DEFAULT_PASSWORD_POLICY, PasswordPolicy, check_password_policy
from domain.scim.patch import PatchOperation, apply_patch, member_change, read_patch_request
from domain.scim.resources import group_from_json, group_to_json, user_from_json, user_to_json
from domain.scim.schema import GROUP, USER, ResourceSchema, validate_filter
from domain.scim.sorting import read_sort
from domain.text import require_storable
from domain.user_sessions import (
    PASSWORD_CHANGED,
    USER_DEACTIVATED,
    USER_DELETED,
    UserSessionEnder,
    end_sign_ins,
)
from ports.clock import Clock
from ports.events import Events
from ports.security import PasswordHasher
from ports.store import GroupStore, Store, TokenStore, UserStore

#: How many times a PATCH without ``If-Match`` is retried after losing a race.
PATCH_ATTEMPTS = 5
#: The most items one list page returns (``ServiceProviderConfig.filter.maxResults``).
MAX_RESULTS = 200

_T = TypeVar("_T")


def list_query(
    filter_text: str | None, start_index: int | None, count: int | None,
    resource: ResourceSchema, *, sort_by: str | None = None, sort_order: str | None = None,
) -> ListQuery:
    """A checked :class:`ListQuery`: ``startIndex`` below 1 is 1, ``count`` is clamped to
    ``0..MAX_RESULTS`` (RFC 7644 3.4.2.4), ``sortBy``/``sortOrder`` read by
    :func:`~domain.scim.sorting.read_sort`. Raises ``InvalidFilter``, ``InvalidValue``."""
    sort = read_sort(sort_by, sort_order, resource)
    expr = None
    if filter_text is not None and filter_text.strip():
        expr = parse_filter(filter_text)
        validate_filter(expr, resource)
    start = 1 if start_index is None or start_index < 1 else start_index
    size = MAX_RESULTS if count is None else min(max(count, 0), MAX_RESULTS)
    return ListQuery(filter=expr, start_index=start, count=size, sort=sort)


async def _revoke_if_deactivated(
    tokens: TokenStore, sessions: UserSessionEnder, events: Events, before: User, after: User,
    now: int,
) -> None:
    if before.active and not after.active:
        ended, revoked = await end_sign_ins(tokens, sessions, after.id,
                                            reason=USER_DEACTIVATED, now=now)
        events.emit("user_deactivated", user_id=after.id, tokens_revoked=revoked,
                    sessions_ended=ended)


async def _revoke_for_password(
    tokens: TokenStore, sessions: UserSessionEnder, events: Events, user_id: str,
    cleared: bool, now: int,
) -> None:
    ended, revoked = await end_sign_ins(tokens, sessions, user_id, reason=PASSWORD_CHANGED,
                                        now=now)
    events.emit("password_cleared" if cleared else "password_changed", user_id=user_id,
                tokens_revoked=revoked, sessions_ended=ended)


def _checked_id(value: str, what: str) -> str:
    # Every id this service makes is storable; one that is not names nothing, but on
    # PostgreSQL the lookup itself would fail, so it is refused here (400) on every backend.
    return require_storable(value, what)


async def _retrying(attempt: Callable[[], Awaitable[_T]], expected_version: int | None) -> _T:
    for remaining in range(PATCH_ATTEMPTS - 1, -1, -1):
        try:
            return await attempt()
        except PreconditionFailed:
            # With If-Match the caller asked for exactly that version: no retry.
            if expected_version is not None or remaining == 0:
                raise
    raise AssertionError("unreachable")


# Users


async def create_user(
    store: UserStore, clock: Clock, hasher: PasswordHasher, document: Any,
    policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY,
) -> User:
    """Create a user from a SCIM body. Raises ``InvalidValue`` (``PasswordRejected`` for a
    password the policy refuses), ``Conflict`` (userName)."""
    user, password = user_from_json(document)
    if password is not None:
        check_password_policy(password, policy)
    now = clock.now()
    password_hash = await hasher.hash(password) if password is not None else None
    return await store.create_user(
        msgspec.structs.replace(user, created=now, last_modified=now),
        password_hash=password_hash,
    )


async def get_user(store: UserStore, user_id: str) -> User:
    """The user. Raises ``NotFound``, ``InvalidValue`` (an id no store can hold)."""
    return await store.get_user(_checked_id(user_id, "the user id"))


async def list_users(
    store: UserStore, filter_text: str | None, start_index: int | None, count: int | None,
    *, sort_by: str | None = None, sort_order: str | None = None,
) -> Page[User]:
    """One page of users matching the SCIM filter, sorted as asked. Raises
    ``InvalidFilter``, ``InvalidValue`` (a bad sort)."""
    return await store.list_users(list_query(filter_text, start_index, count, USER,
                                             sort_by=sort_by, sort_order=sort_order))


async def replace_user(
    store: Store, clock: Clock, hasher: PasswordHasher, events: Events,
    user_id: str, document: Any, *, sessions: UserSessionEnder,
    expected_version: int | None = None, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY,
    written: Callable[[User, User], None] | None = None,
) -> User:
    """PUT: replace every writable attribute; a password in the body replaces the password
    (and ends the user's sessions and tokens, as ``active`` false does). A body without one
    keeps the password. ``written`` is told the user before and after, once done.

    Raises ``NotFound``, ``InvalidValue``, ``Conflict``, ``PreconditionFailed``.
    """
    user, password = user_from_json(document)
    if password is not None:
        check_password_policy(password, policy)
    before = await store.get_user(_checked_id(user_id, "the user id"))
    password_hash = await hasher.hash(password) if password is not None else None
    stored = await store.replace_user(
        msgspec.structs.replace(user, id=user_id, created=before.created,
                                last_modified=clock.now()),
        expected_version=expected_version,
    )
    if password_hash is not None:
        await store.set_password_hash(user_id, password_hash)
        await _revoke_for_password(store, sessions, events, user_id, False, clock.now())
    await _revoke_if_deactivated(store, sessions, events, before, stored, clock.now())
    if written is not None:
        written(before, stored)
    return stored


def _with_manager_display(
    enterprise: EnterpriseUser | None, before: EnterpriseUser | None
) -> EnterpriseUser | None:
    """``enterprise`` with the manager's derived displayName ``before`` had, for the same
    manager: a patch that changes nothing must compare equal to the user it started from."""
    if enterprise is None or enterprise.manager is None or before is None or (
        before.manager is None or before.manager.value != enterprise.manager.value
    ):
        return enterprise
    return msgspec.structs.replace(enterprise, manager=before.manager)


#: Stands for the stored password in a document being patched: users' SCIM JSON never
#: holds it, so this is how a patch is seen to set (a string), clear (gone) or keep it.
_KEPT_PASSWORD = object()


async def patch_user(
    store: Store, clock: Clock, hasher: PasswordHasher, events: Events,
    user_id: str, body: Any, *, sessions: UserSessionEnder,
    expected_version: int | None = None, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY,
    written: Callable[[User, User], None] | None = None,
) -> User:
    """PATCH (RFC 7644 3.5.2). A ``password`` set by the patch replaces the password; one
    removed (``remove`` of ``password``, or ``replace`` with null) clears it, so the user can
    no longer sign in with a password. Either ends the user's sessions and tokens, as
    ``active`` false does. ``written`` is told the user before and after the attempt that
    succeeded.

    Raises ``NotFound``, ``InvalidSyntax``, ``InvalidPath``, ``InvalidValue``
    (``PasswordRejected``), ``Mutability``, ``NoTarget``, ``Conflict``, ``PreconditionFailed``.
    """
    operations = read_patch_request(body)
    user_id = _checked_id(user_id, "the user id")
    hashed: dict[str, str] = {}

    async def attempt() -> User:
        before = await store.get_user(user_id)
        if expected_version is not None and before.version != expected_version:
            raise PreconditionFailed(f"user version is {before.version}")
        document = user_to_json(before, "")
        document["password"] = _KEPT_PASSWORD
        document = apply_patch(document, operations, USER)
        cleared = "password" not in document
        kept = document.get("password") is _KEPT_PASSWORD
        if kept or cleared:
            document.pop("password", None)
        user, password = user_from_json(document, absent_active=None)
        if password is not None and password not in hashed:
            check_password_policy(password, policy)
            hashed.clear()
            hashed[password] = await hasher.hash(password)
        candidate = msgspec.structs.replace(
            user, id=before.id, created=before.created, last_modified=before.last_modified,
            version=before.version, groups=before.groups,
            enterprise=_with_manager_display(user.enterprise, before.enterprise),
        )
        stored = before
        if candidate != before:
            stored = await store.replace_user(
                msgspec.structs.replace(candidate, last_modified=clock.now()),
                expected_version=before.version,
            )
        if password is not None or cleared:
            await store.set_password_hash(user_id, hashed[password] if password else None)
            await _revoke_for_password(store, sessions, events, user_id, cleared, clock.now())
        await _revoke_if_deactivated(store, sessions, events, before, stored, clock.now())
        if written is not None:
            written(before, stored)
        return stored

    return await _retrying(attempt, expected_version)


async def delete_user(
    store: Store, clock: Clock, events: Events, user_id: str,
    *, sessions: UserSessionEnder, expected_version: int | None = None,
) -> None:
    """Delete the user and its memberships, end its sessions, revoke its tokens and
    withdraw its consents. Raises ``NotFound``, ``PreconditionFailed``."""
    await store.delete_user(_checked_id(user_id, "the user id"),
                            expected_version=expected_version)
    now = clock.now()
    ended, revoked = await end_sign_ins(store, sessions, user_id, reason=USER_DELETED, now=now)
    withdrawn = 0
    # A user created later with the same id must be asked again, not inherit these.
    for consent in await store.list_consents(user_id):
        if await store.withdraw_consent(user_id, consent.client_id, now) is not None:
            withdrawn += 1
    events.emit("user_deleted", user_id=user_id, tokens_revoked=revoked, sessions_ended=ended,
                consents_withdrawn=withdrawn)


# Groups


async def create_group(store: GroupStore, clock: Clock, document: Any) -> Group:
    """Create a group from a SCIM body. Raises ``InvalidValue``, ``Conflict`` (displayName),
    ``InvalidReference`` (a member that is no user)."""
    group = group_from_json(document)
    now = clock.now()
    return await store.create_group(msgspec.structs.replace(group, created=now, last_modified=now))


async def get_group(store: GroupStore, group_id: str, *, members: bool = True) -> Group:
    """The group (without reading its members when ``members`` is false). Raises
    ``NotFound``, ``InvalidValue`` (an id no store can hold)."""
    return await store.get_group(_checked_id(group_id, "the group id"), members=members)


async def list_groups(
    store: GroupStore, filter_text: str | None, start_index: int | None, count: int | None,
    *, sort_by: str | None = None, sort_order: str | None = None, members: bool = True,
) -> Page[Group]:
    """One page of groups matching the SCIM filter, sorted as asked (members read only
    when ``members``). Raises ``InvalidFilter``, ``InvalidValue`` (a bad sort)."""
    return await store.list_groups(list_query(filter_text, start_index, count, GROUP,
                                              sort_by=sort_by, sort_order=sort_order),
                                   members=members)


async def replace_group(
    store: GroupStore, clock: Clock, group_id: str, document: Any,
    *, expected_version: int | None = None,
) -> Group:
    """PUT: replace the group and its whole member list. Raises ``NotFound``,
    ``InvalidValue``, ``Conflict``, ``InvalidReference``, ``PreconditionFailed``."""
    group = group_from_json(document)
    before = await store.get_group(_checked_id(group_id, "the group id"))
    return await store.replace_group(
        msgspec.structs.replace(group, id=group_id, created=before.created,
                                last_modified=clock.now()),
        expected_version=expected_version,
    )


def _same_group(a: Group, b: Group) -> bool:
    return (a.display_name, a.external_id, [m.value for m in a.members]) == (
        b.display_name, b.external_id, [m.value for m in b.members])


#: From this many members on, a group PATCH is computed off the event loop (see below).
LARGE_GROUP = 2000


def _patched_group(before: Group, operations: tuple[PatchOperation, ...]) -> Group:
    """``before`` with ``operations`` applied, read back like a PUT body. Pure; linear in
    the size of the group and of the operations."""
    return group_from_json(apply_patch(group_to_json(before, ""), operations, GROUP))


async def patch_group(
    store: GroupStore, clock: Clock, group_id: str, body: Any,
    *, expected_version: int | None = None, members: bool = True,
) -> Group:
    """PATCH a group (member adds and removes in Entra ID and Okta styles). Raises as
    :func:`patch_user`, plus ``InvalidReference``. The group is returned with its members
    only when ``members`` is true.

    A patch that only adds or only removes members (:func:`~domain.scim.patch.member_change`)
    goes to ``GroupStore.add_members``/``remove_members``: one atomic change whatever the
    size of the group (one statement on sql), with no read of the member list before it.

    The work is linear in the number of members. For a large group (Entra ID pushes groups
    of tens of thousands) it still takes a few hundred milliseconds of CPU, so it runs in a
    worker thread, where the interpreter hands the event loop its turn every few
    milliseconds instead of making every other request wait for the whole patch.
    """
    operations = read_patch_request(body)
    group_id = _checked_id(group_id, "the group id")
    change = member_change(operations)
    if change is not None:
        for user_id in change.user_ids:
            _checked_id(user_id, "members.value")
        apply = store.add_members if change.op == "add" else store.remove_members
        changed = await apply(group_id, change.user_ids, last_modified=clock.now(),
                              expected_version=expected_version)
        return await store.get_group(group_id) if members else changed

    async def attempt() -> Group:
        before = await store.get_group(group_id)
        if expected_version is not None and before.version != expected_version:
            raise PreconditionFailed(f"group version is {before.version}")
        if len(before.members) >= LARGE_GROUP:
            group = await asyncio.to_thread(_patched_group, before, operations)
        else:
            group = _patched_group(before, operations)
        if _same_group(group, before):
            return before if members else msgspec.structs.replace(before, members=())
        stored = await store.replace_group(
            msgspec.structs.replace(group, id=before.id, created=before.created,
                                    last_modified=clock.now()),
            expected_version=before.version,
        )
        return stored if members else msgspec.structs.replace(stored, members=())

    return await _retrying(attempt, expected_version)


async def delete_group(
    store: GroupStore, group_id: str, *, expected_version: int | None = None
) -> None:
    """Delete the group and its memberships. Raises ``NotFound``, ``PreconditionFailed``."""
    await store.delete_group(_checked_id(group_id, "the group id"),
                             expected_version=expected_version)

"""Ending every session of a user whose sign-in was withdrawn.

Deactivating or deleting a user, setting or clearing its password and resetting its MFA
end all of the user's browser sessions (:func:`domain.logout.end_user_sessions`: the
sessions leave the store, their grants are revoked per client policy and each client with
a ``backchannel_logout_uri`` is sent a logout token), so that no browser keeps single
sign-on on what was withdrawn. The use cases that do it (:mod:`domain.identities`,
:func:`domain.signin.set_password`, :func:`domain.mfa.reset_mfa`) are given a
:class:`UserSessionEnder`, a narrow callable, rather than the logout ports they do not
otherwise need.

A use case run as one unit of the store (a SCIM write on sql) ends the sessions inside the
unit, so a rolled-back write leaves them as they were; :func:`ending_sessions_after` holds
the logout tokens back until the unit is done, so no client is told of a logout that was
rolled back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from domain.logout import LogoutPorts, end_user_sessions
from domain.sessions import Session
from ports.logout import LogoutNotice, LogoutSender
from ports.store import TokenStore

#: The ``reason`` of the ``session_ended`` events, by cause.
USER_DEACTIVATED = "user_deactivated"
USER_DELETED = "user_deleted"
PASSWORD_CHANGED = "password_changed"
MFA_RESET = "mfa_reset"
#: An operator's revocation (``auth-service session revoke``, ``DELETE /admin/sessions``).
OPERATOR = "operator"

_T = TypeVar("_T")


class UserSessionEnder(Protocol):
    async def __call__(self, user_id: str, *, reason: str) -> int:
        """End every live session of the user (see the module docstring); return how
        many ended."""
        ...


async def end_sign_ins(
    tokens: TokenStore, sessions: UserSessionEnder, user_id: str, *, reason: str, now: int
) -> tuple[int, int]:
    """End every session of the user, then revoke every token of the user; return how
    many sessions ended and how many token records were revoked.

    Sessions go first, so that a code issued from one in between is still dropped by
    ``revoke_subject``. The tokens are revoked even when ending the sessions failed (that
    error is raised afterwards): a half-done withdrawal leaves the user with no token.
    """
    try:
        ended = await sessions(user_id, reason=reason)
    finally:
        revoked = await tokens.revoke_subject(user_id, now)
    return ended, revoked


def user_session_ender(ports: LogoutPorts) -> UserSessionEnder:
    """The :class:`UserSessionEnder` over ``ports``."""
    async def end(user_id: str, *, reason: str) -> int:
        return await end_user_sessions(ports, user_id, reason=reason)

    return end


class HeldNotices:
    """A :class:`~ports.logout.LogoutSender` that keeps the notices until
    :meth:`release` hands them to the real sender."""

    def __init__(self) -> None:
        self.notices: list[LogoutNotice] = []

    def send(self, notices: Sequence[LogoutNotice]) -> None:
        self.notices.extend(notices)

    def release(self, sender: LogoutSender) -> None:
        if self.notices:
            sender.send(tuple(self.notices))
            self.notices.clear()


async def ending_sessions_after(
    ports: LogoutPorts, work: Callable[[UserSessionEnder], Awaitable[_T]]
) -> _T:
    """Run ``work`` with a :class:`UserSessionEnder` whose logout tokens are sent only
    once ``work`` has returned; if it raises, none are."""
    held = HeldNotices()
    result = await work(user_session_ender(dataclasses.replace(ports, sender=held)))
    held.release(ports.sender)
    return result


def session_view(session: Session) -> dict[str, Any]:
    """A session as the admin API and the CLI show it: never its ``id_hash``, which is
    the key the browser's cookie opens (the ``sid`` names it instead)."""
    return {
        "sid": session.sid,
        "user_id": session.user_id,
        "auth_time": session.auth_time,
        "amr": list(session.amr),
        "acr": session.acr,
        "created_at": session.created_at,
        "idle_exp": session.idle_exp,
        "exp": session.exp,
        "clients": list(session.clients),
    }

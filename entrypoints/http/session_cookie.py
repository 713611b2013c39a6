"""The browser session's cookie: how every page finds the signed-in user.

The cookie holds the session id (``domain.sessions``): ``HttpOnly``, ``SameSite=Lax``,
host-only, ``Path=/``, and ``Secure`` with the ``__Host-`` prefix when the issuer is https
(browsers then refuse it unless it is all of those). It has no ``Max-Age``: it goes when
the browser is closed, and the server ends the session at its idle or absolute expiry
whatever the browser keeps.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import Cookie

from domain.sessions import Session, find_session
from entrypoints.http.sealed_cookie import is_secure
from entrypoints.http.services import Services


def session_cookie_name(services: Services) -> str:
    return "__Host-session" if is_secure(services) else "session"


def session_id_of(request: Request[Any, Any, Any], services: Services) -> str | None:
    """The session id the browser sent, if any (not checked: see :func:`current_session`)."""
    return request.cookies.get(session_cookie_name(services)) or None


async def current_session(
    request: Request[Any, Any, Any], services: Services
) -> Session | None:
    """The live session of the browser that sent ``request``, or None."""
    return await find_session(services.store, session_id_of(request, services),
                              services.clock.now())


def session_cookie(services: Services, session_id: str | None) -> Cookie:
    """The cookie that sets ``session_id``, or (None) removes the cookie."""
    return Cookie(
        key=session_cookie_name(services),
        value=session_id or "",
        max_age=None if session_id else 0,
        path="/",
        httponly=True,
        secure=is_secure(services),
        samesite="lax",
    )

"""Scope kinds: who may hold a scope, and the guards that check them.

- *User scopes* are delegated by a signed-in user to a client, through ``authorization_code``
  and ``refresh_token``: the identity scopes below and API scopes such as ``read``/``write``.
- *Service scopes* (:data:`SERVICE_SCOPES`) let a client manage the identity provider
  itself. They are granted only through ``client_credentials``, to the client acting for
  itself, so no user can hand them to a client by signing in.

A client may list scopes of both kinds; the grant decides which of them it can get. Every
guard says which kind of token it accepts: :func:`allows_service` for service endpoints
(SCIM, admin) refuses any token that carries a user ``sub``.
"""

from __future__ import annotations

from collections.abc import Iterable

from domain.entities import AccessToken

OPENID = "openid"
OFFLINE_ACCESS = "offline_access"
#: Releases the ``email`` and ``email_verified`` claims in the ID token and at userinfo.
EMAIL = "email"
#: Releases the ``groups`` claim (the user's group names) in the ID token and at userinfo.
GROUPS = "groups"
SCIM_READ = "scim:read"
SCIM_WRITE = "scim:write"
ADMIN = "admin"

#: Granted only through ``client_credentials``, to the client itself.
SERVICE_SCOPES = frozenset({SCIM_READ, SCIM_WRITE, ADMIN})
#: User scopes that describe the signed-in user: meaningless, and refused, without one.
IDENTITY_SCOPES = frozenset({OPENID, "profile", "email", OFFLINE_ACCESS, GROUPS, "mfa"})


def is_service_scope(scope: str) -> bool:
    return scope in SERVICE_SCOPES


def service_scopes_in(scopes: Iterable[str]) -> tuple[str, ...]:
    """The service scopes among ``scopes``, in their order."""
    return tuple(s for s in scopes if s in SERVICE_SCOPES)


def allows_service(token: AccessToken, scope: str) -> bool:
    """Whether a live ``token`` may act on a service endpoint that needs ``scope``.

    Only a client's own token (no user ``sub``) counts, whatever scope it carries: a
    service scope in a user's token (one issued before scope kinds existed, or by a bug)
    must never manage identities.
    """
    return token.sub is None and scope in token.scope.split()

"""The admin API's account operations (issue 17), over domain.account_admin:

- ``GET /admin/users/{user_id}/passkeys``: ``{"user_id", "passkeys": [...]}``, oldest
  first, each with ``credential_id``, ``name``, ``created_at``, ``last_used_at``,
  ``synced``, ``transports`` and ``sign_count`` (never the public key).
- ``DELETE /admin/users/{user_id}/passkeys/{credential_id}``: 204; the user's sessions
  and tokens are kept (see domain.account_admin); 404 ``not_found`` for a passkey this
  user does not hold, even one another user holds.
- ``POST /admin/users/{user_id}/mfa/reset``: every second factor removed, every session
  ended and token revoked; 200 with the counts.
- ``POST /admin/users/{user_id}/email/verify``: the user's current primary email marked
  verified; 200 ``{"user_id", "email", "email_verified": true, "already_verified"}``, 409
  ``conflict`` for a user without an email address.

Authorization and errors are the admin API's (entrypoints/http/admin.py): a bearer token
with the service scope ``admin`` on a client's own token (401 ``invalid_token`` without
one, 403 ``insufficient_scope`` for a user's token or one without ``admin``), errors as
``{"error", "error_description"}``, 404 ``not_found`` for no such user. A ``user_id`` no
user can have (a NUL, over 255 characters), or a ``credential_id`` that is not base64url
of a length a credential can have, is 400 ``invalid_request``. The POSTs take no body.
Every change is one security event naming the admin client as ``actor``.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.exceptions import HTTPException
from litestar.params import Parameter

from domain import account_admin
from domain.account_admin import passkey_view
from domain.errors import DomainError
from domain.text import is_storable
from domain.user_sessions import user_session_ender
from entrypoints.http.admin import (
    MAX_BODY_BYTES,
    NO_STORE,
    AdminError,
    _actor,
    _admin_error,
    _authorize,
    _domain_error,
    _http_error,
    _internal_error,
    _json,
    _refused,
)
from entrypoints.http.bearer import ServiceTokenRefused
from entrypoints.http.services import ServicesDependency

#: The longest user id accepted: no id this service makes comes close.
MAX_ID_LENGTH = 255

UserIdPath = Annotated[str, Parameter(description="the user's id")]
CredentialIdPath = Annotated[str, Parameter(
    description="the passkey's credential id (base64url, as listed)")]


def _user_id(value: str) -> str:
    if not value or len(value) > MAX_ID_LENGTH or not is_storable(value):
        raise AdminError(400, "invalid_request", "the user id in the path is not one a user "
                         "can have")
    return value


class AdminAccountsController(Controller):
    """``/admin/users/{user_id}``: passkeys, MFA reset, email verification."""

    path = "/admin/users/{user_id:str}"
    tags = ["admin"]
    guards = [_authorize]
    request_max_body_size = MAX_BODY_BYTES
    response_headers = NO_STORE
    exception_handlers = {
        AdminError: _admin_error,
        ServiceTokenRefused: _refused,
        DomainError: _domain_error,
        HTTPException: _http_error,
        Exception: _internal_error,
    }

    @get("/passkeys", operation_id="listUserPasskeys", summary="List a user's passkeys")
    async def list_passkeys(self, user_id: UserIdPath,
                            services: ServicesDependency) -> Response[bytes]:
        """The user's passkeys, oldest first (never their public keys)."""
        user_id = _user_id(user_id)
        passkeys = await account_admin.list_user_passkeys(services.store, user_id)
        return _json({"user_id": user_id, "passkeys": [passkey_view(p) for p in passkeys]})

    @delete("/passkeys/{credential_id:str}", operation_id="deleteUserPasskey",
            summary="Remove a user's passkey", status_code=204)
    async def delete_passkey(self, user_id: UserIdPath, credential_id: CredentialIdPath,
                             request: Request[Any, Any, Any],
                             services: ServicesDependency) -> None:
        """Remove the passkey; with the user's last second factor, its recovery codes go
        too. The user's sessions and tokens are kept (reset MFA to end them)."""
        await account_admin.remove_user_passkey(
            services.store, services.events, user_id=_user_id(user_id),
            credential_id=credential_id, actor=_actor(request))

    @post("/mfa/reset", operation_id="resetUserMfa",
          summary="Reset a user's MFA: remove every second factor, end its sign-ins",
          status_code=200)
    async def reset_mfa(self, user_id: UserIdPath, request: Request[Any, Any, Any],
                        services: ServicesDependency) -> Response[bytes]:
        """Remove the TOTP seed, the passkeys and the recovery codes; end every session of
        the user (back-channel logouts sent) and revoke every token of the user."""
        done = await account_admin.reset_user_mfa(
            services.store, services.events, user_id=_user_id(user_id), actor=_actor(request),
            sessions=user_session_ender(services.logout), now=services.clock.now())
        return _json({
            "user_id": done.user.id,
            "totp_removed": done.totp_removed,
            "passkeys_removed": done.passkeys_removed,
            "recovery_codes_removed": done.recovery_codes_removed,
            "sessions_ended": done.sessions_ended,
            "tokens_revoked": done.tokens_revoked,
        })

    @post("/email/verify", operation_id="verifyUserEmail",
          summary="Mark a user's primary email verified", status_code=200)
    async def verify_email(self, user_id: UserIdPath, request: Request[Any, Any, Any],
                           services: ServicesDependency) -> Response[bytes]:
        """Record the user's current primary email as verified, as a used verification
        link would; 409 when the user has no email address."""
        done = await account_admin.mark_email_verified(
            services.store, services.events, user_id=_user_id(user_id), actor=_actor(request))
        return _json({"user_id": done.user.id, "email": done.email, "email_verified": True,
                      "already_verified": done.already})

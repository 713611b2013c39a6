"""``POST /mfa/totp/register`` and ``/mfa/totp/verify``: the signed-in user enrols TOTP.

Both need the user's bearer access token. Registering returns a new seed and its
``otpauth://`` URI; the factor does not count for sign-in until ``verify`` confirms it
with a valid code. Neither endpoint changes any token: ``mfa_verified`` comes only from a
sign-in that passed the TOTP step.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, post

from domain.bearer import resolve_bearer
from domain.entities import AccessToken
from domain.mfa import FactorAlreadyActive, NoPendingFactor, confirm_totp, register_totp
from entrypoints.http.services import Services
from entrypoints.http.userinfo import bearer_error, bearer_token

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_encoder = msgspec.json.Encoder()
_json_body = msgspec.json.Decoder(dict[str, Any])


def _json(body: dict[str, Any], status_code: int = 200) -> Response[bytes]:
    return Response(_encoder.encode(body), status_code=status_code,
                    media_type="application/json", headers=_NO_STORE)


async def _user_token(
    request: Request[Any, Any, Any], services: Services
) -> AccessToken | Response[bytes]:
    token = await bearer_token(request)
    if isinstance(token, Response):
        return token
    if token is None:
        return bearer_error(401, None, "a bearer access token is required")
    record = await resolve_bearer(services.store, token, services.clock.now())
    if record is None:
        return bearer_error(401, "invalid_token", "the access token is invalid or expired")
    if record.sub is None:
        return bearer_error(403, "insufficient_scope", "the token has no user")
    return record


async def _code(request: Request[Any, Any, Any]) -> str | None:
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            value = _json_body.decode(await request.body()).get("code")
        except (msgspec.DecodeError, RecursionError):  # RecursionError: absurdly deep nesting
            return None
    else:
        value = (await request.form()).get("code")
    return value if isinstance(value, str) and value else None


class MfaController(Controller):
    """TOTP enrolment for the signed-in user."""

    path = "/mfa/totp"

    @post("/register", operation_id="registerTotp", status_code=200)
    async def register(self,
        request: Request[Any, Any, Any], services: Services
    ) -> Response[bytes]:
        """A new, inactive TOTP seed: ``{"secret", "otpauth_uri"}``."""
        record = await _user_token(request, services)
        if isinstance(record, Response):
            return record
        assert record.sub is not None
        try:
            enrolment = await register_totp(
                services.store, services.totp, user_id=record.sub,
                issuer=services.settings.issuer, mfa_verified=record.mfa_verified)
        except FactorAlreadyActive as exc:
            return _json({"error": "factor_already_active", "error_description": str(exc)}, 409)
        return _json({"secret": enrolment.secret, "otpauth_uri": enrolment.otpauth_uri,
                      "confirmed": False})

    @post("/verify", operation_id="verifyTotp", status_code=200)
    async def verify(self,
        request: Request[Any, Any, Any], services: Services
    ) -> Response[bytes]:
        """Confirm the registered seed with a code (form or JSON ``code``)."""
        record = await _user_token(request, services)
        if isinstance(record, Response):
            return record
        assert record.sub is not None
        code = await _code(request)
        if code is None:
            return _json({"error": "invalid_request", "error_description": "code is required"},
                         400)
        try:
            confirmed = await confirm_totp(services.store, services.totp, user_id=record.sub,
                                           code=code, now=services.clock.now())
        except NoPendingFactor as exc:
            return _json({"error": "no_pending_factor", "error_description": str(exc)}, 409)
        if not confirmed:
            return _json({"error": "invalid_code",
                          "error_description": "the code is incorrect or was already used"}, 400)
        return _json({"confirmed": True})

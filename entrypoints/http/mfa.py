"""``POST /mfa/totp/register`` and ``/mfa/totp/verify``: the signed-in user enrols TOTP.

Both need the user's bearer access token with the ``mfa`` scope from a recent sign-in
(``MFA_RECENT_AUTH_SECONDS``): 403 ``insufficient_scope`` without the scope, 401
``insufficient_user_authentication`` with ``max_age`` (RFC 9470) when the sign-in is older.
Registering returns a new seed, its ``otpauth://`` URI and a sealed ``enrollment``; nothing
is stored. When a factor is confirmed already, registering needs ``current_code``, a code of
it. ``verify`` takes the ``enrollment`` and a valid code, and only then stores the seed
(sealed) as the user's confirmed factor; a user without recovery codes gets a first set in
that response (``recovery_codes``, shown once). Neither endpoint changes any token:
``mfa_verified`` comes only from a sign-in that passed the TOTP step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType

from domain.bearer import resolve_bearer
from domain.entities import AccessToken
from domain.mfa import (
    MFA_SCOPE,
    FactorAlreadyActive,
    FactorUnreadable,
    InvalidCurrentCode,
    InvalidEnrollment,
    NotAllowed,
    SignInTooOld,
    TooManyCodes,
    authorize_factor_change,
    confirm_totp,
    register_totp,
)
from entrypoints.http.services import Services, ServicesDependency
from entrypoints.http.userinfo import REALM, bearer_error, bearer_token

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_encoder = msgspec.json.Encoder()
_json_body = msgspec.json.Decoder(dict[str, Any])


class TotpRegistration(msgspec.Struct, frozen=True):
    """A new, inactive seed. Hand ``enrollment`` back to verify with a code before
    ``expires_in`` seconds; until then any previous factor stays in force."""

    secret: str
    otpauth_uri: str
    enrollment: str
    expires_in: int
    confirmed: bool = False


class TotpConfirmation(msgspec.Struct, frozen=True, omit_defaults=True):
    """The enrolment's seed is now the user's confirmed factor. ``recovery_codes``: present
    only when this confirmation issued the user's first set of recovery codes (the user had
    none left): ten single-use codes that stand in for the second factor at sign-in. They
    are shown this once and stored only hashed: hand them to the user now."""

    confirmed: bool
    recovery_codes: Annotated[list[str] | None, msgspec.Meta(description=(
        "only when this confirmation issued the user's first set: ten single-use recovery "
        "codes (abcd-efgh-ijkl-mnop), each accepted once at sign-in in place of the second "
        "factor; shown this once, stored only hashed"))] = None


class MfaError(msgspec.Struct, frozen=True):
    """An error body: ``invalid_request``, ``invalid_enrollment``, ``invalid_code``,
    ``factor_already_active``, ``factor_unreadable``, ``too_many_attempts``, or a bearer
    error (``invalid_token``, ``insufficient_scope``, ``insufficient_user_authentication``)."""

    error: str
    error_description: str


_ERROR = ResponseSpec(data_container=MfaError, description="error", generate_examples=False)


def _string(description: str) -> Schema:
    return Schema(type=OpenAPIType.STRING, description=description)


_VERIFY_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["enrollment", "code"],
    properties={
        "enrollment": _string("the enrollment value returned by register"),
        "code": _string("the current 6-digit code from the authenticator app"),
    },
)


_REGISTER_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    properties={
        "current_code": _string("a code of the confirmed factor: required to replace it"),
    },
)


@dataclass
class _RegisterOperation(Operation):
    # The body is optional (no factor yet) and read by the handler, as for verify.
    def __post_init__(self) -> None:
        self.request_body = RequestBody(required=False, content={
            "application/json": OpenAPIMediaType(schema=_REGISTER_SCHEMA),
            "application/x-www-form-urlencoded": OpenAPIMediaType(schema=_REGISTER_SCHEMA),
        })


@dataclass
class _VerifyOperation(Operation):
    # The handler reads JSON or a form itself (curl's -d); the document still shows the fields.
    def __post_init__(self) -> None:
        self.request_body = RequestBody(required=True, content={
            "application/json": OpenAPIMediaType(schema=_VERIFY_SCHEMA),
            "application/x-www-form-urlencoded": OpenAPIMediaType(schema=_VERIFY_SCHEMA),
        })


def _json(body: msgspec.Struct, status_code: int = 200,
          headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(_encoder.encode(body), status_code=status_code,
                    media_type="application/json", headers={**_NO_STORE, **(headers or {})})


def _error(status_code: int, error: str, description: str,
           headers: dict[str, str] | None = None) -> Response[bytes]:
    return _json(MfaError(error=error, error_description=description), status_code, headers)


def _too_many(exc: TooManyCodes) -> Response[bytes]:
    return _error(429, "too_many_attempts",
                  f"too many wrong codes; retry after {exc.retry_after} seconds",
                  {"Retry-After": str(exc.retry_after)})


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
    try:
        authorize_factor_change(record, now=services.clock.now(),
                                recent_auth_seconds=services.settings.mfa_recent_auth_seconds)
    except NotAllowed as exc:
        return _challenge(403, "insufficient_scope", str(exc), f'scope="{MFA_SCOPE}"')
    except SignInTooOld as exc:
        return _challenge(401, "insufficient_user_authentication", str(exc),
                          f'max_age="{exc.max_age}"')
    return record


def _challenge(status_code: int, error: str, description: str, extra: str) -> Response[bytes]:
    """A bearer error whose challenge says what would do: the scope, or a fresher sign-in."""
    challenge = f'Bearer {REALM}, error="{error}", error_description="{description}", {extra}'
    return _error(status_code, error, description, {"WWW-Authenticate": challenge})


async def _fields(request: Request[Any, Any, Any]) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            return _json_body.decode(await request.body())
        except (msgspec.DecodeError, RecursionError):  # RecursionError: absurdly deep nesting
            return {}
    return dict(await request.form())


def _text(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    return value if isinstance(value, str) and value else None


class MfaController(Controller):
    """TOTP enrolment for the signed-in user."""

    path = "/mfa/totp"

    @post("/register", operation_id="registerTotp", status_code=200,
          operation_class=_RegisterOperation,
          responses={200: ResponseSpec(data_container=TotpRegistration,
                                       description="a new seed, not yet in force",
                                       generate_examples=False),
                     400: _ERROR, 401: _ERROR, 403: _ERROR, 409: _ERROR, 429: _ERROR})
    async def register(self,
        request: Request[Any, Any, Any], services: ServicesDependency
    ) -> Response[bytes]:
        """A new seed and its sealed ``enrollment``; the stored factor is not changed.

        Replacing a confirmed factor needs ``current_code`` (JSON or form), a code of it."""
        record = await _user_token(request, services)
        if isinstance(record, Response):
            return record
        current_code = _text(await _fields(request), "current_code")
        now = services.clock.now()
        try:
            enrolment = await register_totp(
                services.store, services.totp, services.signin_sealer, services.secret_sealer,
                caller=record, issuer=services.settings.issuer, current_code=current_code,
                recent_auth_seconds=services.settings.mfa_recent_auth_seconds, now=now)
        except FactorUnreadable as exc:
            return _error(409, "factor_unreadable", str(exc))
        except FactorAlreadyActive as exc:
            return _error(409, "factor_already_active", str(exc))
        except InvalidCurrentCode as exc:
            return _error(400, "invalid_code", str(exc))
        except TooManyCodes as exc:
            return _too_many(exc)
        return _json(TotpRegistration(
            secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri,
            enrollment=enrolment.enrollment, expires_in=enrolment.expires_at - now))

    @post("/verify", operation_id="verifyTotp", status_code=200,
          operation_class=_VerifyOperation,
          responses={200: ResponseSpec(data_container=TotpConfirmation,
                                       description="the factor is confirmed and in force (with the "
                                                   "user's first recovery codes when it "
                                                   "issued them)",
                                       generate_examples=False),
                     400: _ERROR, 401: _ERROR, 403: _ERROR, 409: _ERROR, 429: _ERROR})
    async def verify(self,
        request: Request[Any, Any, Any], services: ServicesDependency
    ) -> Response[bytes]:
        """Confirm a registration with ``enrollment`` and ``code`` (JSON or form).

        When the user had no recovery codes, the response carries a first set of ten
        (``recovery_codes``), shown only this once."""
        record = await _user_token(request, services)
        if isinstance(record, Response):
            return record
        fields = await _fields(request)
        enrollment, code = _text(fields, "enrollment"), _text(fields, "code")
        if enrollment is None or code is None:
            return _error(400, "invalid_request", "enrollment and code are required")
        try:
            confirmed = await confirm_totp(
                services.store, services.totp, services.signin_sealer, services.secret_sealer,
                services.events, caller=record, enrollment=enrollment, code=code,
                recent_auth_seconds=services.settings.mfa_recent_auth_seconds,
                now=services.clock.now())
        except InvalidEnrollment as exc:
            return _error(400, "invalid_enrollment", str(exc))
        except FactorUnreadable as exc:
            return _error(409, "factor_unreadable", str(exc))
        except FactorAlreadyActive as exc:
            return _error(409, "factor_already_active", str(exc))
        except TooManyCodes as exc:
            return _too_many(exc)
        if confirmed is None:
            return _error(400, "invalid_code", "the code is incorrect or was already used")
        return _json(TotpConfirmation(
            confirmed=True, recovery_codes=list(confirmed.recovery_codes) or None))

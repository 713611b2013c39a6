"""The WebAuthn ceremonies with py_webauthn, behind ``ports.passkeys.PasskeyCeremonies``.

The relying party id is the host of ``EXTERNAL_BASE_URL`` and the one origin accepted is
that URL's origin: a response made for another site (a phishing page) names another
origin in its client data and another relying party in its authenticator data, and fails
here.

Attestation is not asked for (``none``): a passkey proves possession of its key, which is
what signing in needs; which make of authenticator holds it is not checked. Algorithms:
EdDSA, ES256 and RS256, py_webauthn's defaults.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from domain.entities import Passkey
from ports.passkeys import (
    AssertionClaim,
    NewCredential,
    PasskeyRejected,
    UserVerification,
    VerifiedAssertion,
)

#: How long the browser offers its prompt (a hint; the transaction's own expiry decides).
TIMEOUT_MS = 120_000
_TRANSPORTS = {t.value: t for t in AuthenticatorTransport}


def _b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = [_TRANSPORTS[t] for t in passkey.transports if t in _TRANSPORTS]
    return PublicKeyCredentialDescriptor(id=_b64decode(passkey.credential_id),
                                         transports=transports or None)


class WebauthnCeremonies:
    """Registration and authentication for the relying party ``rp_id`` (named ``rp_name``
    in the browser's prompt) at ``origin``."""

    def __init__(self, *, rp_id: str, rp_name: str, origin: str) -> None:
        self.rp_id = rp_id
        self.rp_name = rp_name
        self.origin = origin

    def registration_options(
        self, *, user_handle: bytes, user_name: str, display_name: str, challenge: bytes,
        exclude: Sequence[Passkey],
    ) -> str:
        options = generate_registration_options(
            rp_id=self.rp_id, rp_name=self.rp_name, user_id=user_handle, user_name=user_name,
            user_display_name=display_name, challenge=challenge, timeout=TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.PREFERRED),
            exclude_credentials=[_descriptor(p) for p in exclude])
        return options_to_json(options)

    def verify_registration(self, response: str, *, challenge: bytes) -> NewCredential:
        try:
            verified = verify_registration_response(
                credential=response, expected_challenge=challenge,
                expected_rp_id=self.rp_id, expected_origin=self.origin)
            transports = _registration_transports(response)
        # The input is the browser's (anyone's): whatever it makes the parser or the
        # cryptography raise, it is a response that does not verify.
        except Exception as exc:
            raise PasskeyRejected(f"registration refused: {exc}") from exc
        return NewCredential(
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count, transports=transports,
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            user_verified=verified.user_verified)

    def authentication_options(
        self, *, challenge: bytes, allow: Sequence[Passkey],
        user_verification: UserVerification,
    ) -> str:
        options = generate_authentication_options(
            rp_id=self.rp_id, challenge=challenge, timeout=TIMEOUT_MS,
            allow_credentials=[_descriptor(p) for p in allow],
            user_verification=UserVerificationRequirement(user_verification))
        return options_to_json(options)

    def read_assertion(self, response: str) -> AssertionClaim:
        try:
            credential = parse_authentication_credential_json(response)
        except Exception as exc:
            raise PasskeyRejected(f"malformed sign-in response: {exc}") from exc
        # The id must name the raw id it comes with (verify_assertion checks it again).
        if bytes_to_base64url(credential.raw_id) != credential.id:
            raise PasskeyRejected("malformed sign-in response: id and rawId differ")
        return AssertionClaim(credential_id=credential.id,
                              user_handle=credential.response.user_handle)

    def verify_assertion(
        self, response: str, *, challenge: bytes, passkey: Passkey,
        require_user_verification: bool,
    ) -> VerifiedAssertion:
        try:
            verified = verify_authentication_response(
                credential=response, expected_challenge=challenge,
                expected_rp_id=self.rp_id, expected_origin=self.origin,
                credential_public_key=_b64decode(passkey.public_key),
                # 0 turns py_webauthn's own counter check off: the store compares and
                # records the counter in one atomic step (record_passkey_use), which a
                # check here, on a value read earlier, could not be.
                credential_current_sign_count=0,
                require_user_verification=require_user_verification)
        except Exception as exc:  # as in verify_registration: the input is anyone's
            raise PasskeyRejected(f"sign-in refused: {exc}") from exc
        if bytes_to_base64url(verified.credential_id) != passkey.credential_id:
            raise PasskeyRejected("sign-in refused: the response is for another credential")
        return VerifiedAssertion(
            sign_count=verified.new_sign_count, user_verified=verified.user_verified,
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE)


def _registration_transports(response: str) -> tuple[str, ...]:
    """The transports the browser listed (``response.transports``), known names only."""
    transports = parse_registration_credential_json(response).response.transports or []
    return tuple(dict.fromkeys(t.value for t in transports))

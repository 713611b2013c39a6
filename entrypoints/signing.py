"""Choosing the ID-token signing keys from the settings."""

from __future__ import annotations

import logging

from adapters.jose_signer import JoseSigner
from adapters.sealed_state import JoseSealer
from entrypoints.settings import ConfigError, Settings

log = logging.getLogger("auth_service.signing")


def load_signer(settings: Settings) -> JoseSigner:
    """Keys from ``SIGNING_KEY_FILE`` (comma-separated, current key first), or a generated one."""
    if settings.signing_key_files:
        try:
            return JoseSigner.from_pem_files(settings.signing_key_files)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(
                "SIGNING_KEY_FILE",
                "cannot read an RSA private key (PEM, at least 2048 bits) from every file",
            ) from exc
    log.warning(
        "SIGNING_KEY_FILE is not set: generated a signing key for this process; ID tokens will "
        "not verify after a restart or on another instance"
    )
    return JoseSigner.generated()


def load_signin_sealer(signer: JoseSigner) -> JoseSealer:
    """The sealer of sign-in transactions (and pending TOTP enrolments), keyed from the
    signing key.

    Instances that share ``SIGNING_KEY_FILE`` share this key, so a sign-in started on one
    continues on another. After a rotation, sign-ins in progress (a few minutes) start over.
    """
    return JoseSealer(signer.derive_secret("auth-service signin transaction v1"))

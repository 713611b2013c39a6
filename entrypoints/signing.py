"""Choosing the ID-token signing keys from the settings."""

from __future__ import annotations

import logging

from adapters.jose_signer import JoseSigner
from entrypoints.settings import ConfigError, Settings

log = logging.getLogger("auth_service.signing")


def load_signer(settings: Settings) -> JoseSigner:
    """Keys from ``SIGNING_KEY_FILE`` (comma-separated, current key first), or a generated one."""
    if settings.signing_key_files:
        try:
            return JoseSigner.from_pem_files(settings.signing_key_files)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError("SIGNING_KEY_FILE", "cannot read an RSA private key in PEM form") from exc
    log.warning(
        "SIGNING_KEY_FILE is not set: generated a signing key for this process; ID tokens will "
        "not verify after a restart or on another instance"
    )
    return JoseSigner.generated()

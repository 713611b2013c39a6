"""Choosing the keys from the settings: ID-token signing, sign-in sealing, seeds at rest."""

from __future__ import annotations

import logging

from adapters.jose_signer import JoseSigner
from adapters.sealed_state import JoseSealer
from adapters.secret_sealing import AesGcmSecretSealer
from entrypoints.settings import ConfigError, Settings

log = logging.getLogger("auth_service.signing")


def load_signer(settings: Settings) -> JoseSigner:
    """Keys from ``SIGNING_KEY_FILE`` (comma-separated PEM files, RSA, EC P-256 or Ed25519
    mixed; the first is the primary key, and the first of each type signs for its
    algorithm), or a generated RSA key."""
    if settings.signing_key_files:
        try:
            return JoseSigner.from_pem_files(settings.signing_key_files)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(
                "SIGNING_KEY_FILE",
                "cannot read a private key from every file (PEM: RSA of at least 2048 bits, "
                "EC P-256 or Ed25519)",
            ) from exc
    log.warning(
        "SIGNING_KEY_FILE is not set: generated a signing key for this process; ID tokens will "
        "not verify after a restart or on another instance"
    )
    return JoseSigner.generated()


def signing_algorithms(settings: Settings) -> tuple[str, ...]:
    """The algorithms the server signs with, for a command that checks client metadata
    without serving: what ``SIGNING_KEY_FILE`` holds, or RS256 (the generated key)."""
    if not settings.signing_key_files:
        return ("RS256",)
    return load_signer(settings).algorithms


def load_signin_sealer(signer: JoseSigner) -> JoseSealer:
    """The sealer of sign-in transactions (and pending TOTP enrolments), keyed from the
    signing key.

    Instances that share ``SIGNING_KEY_FILE`` share this key, so a sign-in started on one
    continues on another. After a rotation, sign-ins in progress (a few minutes) start over.
    """
    return JoseSealer(signer.derive_secret("auth-service signin transaction v1"))


def load_account_form_key(signer: JoseSigner) -> bytes:
    """The key of the ``/account`` forms' CSRF tokens (an HMAC of the session), derived
    from the signing key like the sign-in sealer's: every instance that shares
    ``SIGNING_KEY_FILE`` accepts the forms another one rendered. After a rotation, a page
    rendered before it must be reloaded."""
    return signer.derive_secret("auth-service account forms v1")


#: The HKDF label of the seed-sealing keys derived from signing keys (no SEALING_KEY_FILE).
DERIVED_SEALING_LABEL = "auth-service secrets at rest v1"


def load_secret_sealer(settings: Settings, signer: JoseSigner) -> AesGcmSecretSealer:
    """The sealer of secrets at rest (TOTP seeds): keys from ``SEALING_KEY_FILE``
    (comma-separated, current key first), or derived from the signing keys with a warning.

    Derived keys follow the signing keys (one per key, in the same order), so a signing-key
    rotation done as documented keeps seeds readable; but a lost or replaced signing key
    then loses every seed, and without ``SIGNING_KEY_FILE`` seeds do not survive a restart.
    """
    if settings.sealing_key_files:
        try:
            return AesGcmSecretSealer.from_key_files(settings.sealing_key_files)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(
                "SEALING_KEY_FILE",
                "every file must hold one base64-encoded 32-byte key "
                "(auth-service keys generate-sealing-key PATH)",
            ) from exc
    consequence = (
        "they are lost with the signing key" if settings.signing_key_files
        else "seeds stored now will not open after a restart or on another instance"
    )
    log.warning(
        "SEALING_KEY_FILE is not set: TOTP seeds are sealed with a key derived from the "
        "signing key; %s. Set SEALING_KEY_FILE (auth-service keys generate-sealing-key PATH)",
        consequence,
    )
    return AesGcmSecretSealer(signer.derive_secrets(DERIVED_SEALING_LABEL))

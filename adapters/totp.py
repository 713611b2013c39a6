"""TOTP with pyotp, behind ``ports.otp.Totp``: SHA-1, 6 digits, 30-second steps, ±1 step.

These are the parameters every authenticator app understands; the URI states them so an app
never has to guess.
"""

from __future__ import annotations

import hmac

import pyotp

DIGITS = 6
STEP_SECONDS = 30
#: Steps accepted either side of the current one, for clock drift and typing time.
TOLERANCE_STEPS = 1


class PyotpTotp:
    """RFC 6238 TOTP computed by pyotp."""

    step_seconds = STEP_SECONDS

    def new_secret(self) -> str:
        """A 160-bit base32 seed (32 characters), as RFC 4226 recommends."""
        return pyotp.random_base32(32)

    def provisioning_uri(self, secret: str, account_name: str, issuer: str) -> str:
        """The ``otpauth://`` URI for an authenticator app."""
        uri: str = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
            name=account_name, issuer_name=issuer
        )
        return uri

    def matching_step(self, secret: str, code: str, now: int) -> int | None:
        """The counter of the step (current ±1) whose code is ``code``, else None."""
        code = code.strip()
        if len(code) != DIGITS or not code.isdigit():
            return None
        try:
            totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
            current = now // STEP_SECONDS
            matched: int | None = None
            # Every candidate is computed and compared, so the time taken does not say which
            # step matched.
            for counter in range(current - TOLERANCE_STEPS, current + TOLERANCE_STEPS + 1):
                expected: str = totp.generate_otp(counter)
                if hmac.compare_digest(expected.encode(), code.encode()) and matched is None:
                    matched = counter
            return matched
        except (ValueError, TypeError):  # a corrupt seed never matches
            return None

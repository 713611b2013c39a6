"""The one-time-password port: TOTP (RFC 6238) seeds, enrolment URIs and code checks.

The domain decides what a matched code means (replay protection, confirming a factor);
this port only does the arithmetic, so that no OTP library leaks into the domain.
"""

from __future__ import annotations

from typing import Protocol


class Totp(Protocol):
    @property
    def step_seconds(self) -> int:
        """The length of one time step (30 seconds for authenticator apps)."""
        ...

    def new_secret(self) -> str:
        """A fresh random base32 seed (at least 160 bits)."""
        ...

    def provisioning_uri(self, secret: str, account_name: str, issuer: str) -> str:
        """The ``otpauth://totp/...`` URI an authenticator app reads (usually as a QR code)."""
        ...

    def matching_step(self, secret: str, code: str, now: int) -> int | None:
        """The time-step counter whose code equals ``code``, looking one step either side of
        ``now``; None when none matches or ``code`` is malformed. Comparisons are constant-time.

        Returning the counter (not a bool) lets the caller mark exactly that code as used.
        """
        ...

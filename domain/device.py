"""The device authorization grant (RFC 8628): what the store keeps between the device, the
user's browser and the device's polls.

A device asks for a *device code* (a secret it keeps, stored here only as its SHA-256,
``device_code_hash``) and a short *user code* the user types on another screen (stored as
the SHA-256 of its normalized form, ``user_code_hash``, so that a copy of the store shows
neither). The user signs in on the verification page and approves or denies; the device
polls the token endpoint with the device code meanwhile.

The record goes through ``pending`` to ``approved`` or ``denied`` once; an approved record
is handed to exactly one poll (the tokens are issued once, whatever the number of
concurrent pollers, on any instance), and so is a denial. A poll earlier than ``interval``
seconds after the previous one is ``slow_down`` and lengthens the interval by 5 seconds
(section 3.5).
"""

from __future__ import annotations

import hashlib
from typing import Literal

import msgspec

#: Letters with no look-alikes (no vowels either, so no words): RFC 8628 section 6.1.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
#: Added to the interval by each ``slow_down`` (RFC 8628 section 3.5).
SLOW_DOWN_SECONDS = 5

DeviceStatus = Literal["pending", "approved", "denied"]


def normalize_user_code(text: str) -> str:
    """The user code as compared: upper case, without the dashes and spaces people type."""
    return "".join(c for c in text.upper() if c not in "- \t")


def hash_user_code(text: str) -> str:
    """The key a user code is stored under (of its normalized form)."""
    return hashlib.sha256(normalize_user_code(text).encode("utf-8", "surrogatepass")).hexdigest()


def display_user_code(code: str) -> str:
    """``BCDFGHJK`` as shown to people: ``BCDF-GHJK``."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


class DeviceAuthorization(msgspec.Struct, frozen=True, kw_only=True):
    """One device authorization request and what became of it.

    ``scope`` and ``resources`` are what the device asked for (space-separated, and the
    RFC 8707 resources); once approved, ``user_id``, ``auth_time``, ``amr``, ``acr`` and
    ``sid`` say who approved it and how they signed in. ``last_poll`` is the time of the
    last poll (0: never), ``interval`` the seconds a poll must wait after it.
    """

    device_code_hash: str
    user_code_hash: str
    client_id: str
    scope: str
    exp: int
    interval: int
    created_at: int
    resources: tuple[str, ...] = ()
    status: DeviceStatus = "pending"
    last_poll: int = 0
    user_id: str | None = None
    auth_time: int | None = None
    amr: tuple[str, ...] = ()
    acr: str | None = None
    sid: str | None = None

    def live(self, now: int) -> bool:
        return self.exp > now


class DeviceDecision(msgspec.Struct, frozen=True, kw_only=True):
    """The user's answer on the verification page: ``approved`` with who signed in, or
    ``denied`` (the sign-in fields may then be left out)."""

    status: Literal["approved", "denied"]
    user_id: str | None = None
    auth_time: int | None = None
    amr: tuple[str, ...] = ()
    acr: str | None = None
    sid: str | None = None


class PollPending(msgspec.Struct, frozen=True):
    """Not decided yet: ``authorization_pending``."""


class PollSlowDown(msgspec.Struct, frozen=True):
    """Polled too early: ``slow_down``; ``interval`` is the new interval."""

    interval: int


class PollApproved(msgspec.Struct, frozen=True):
    """Approved: the tokens may be issued, by this poll only (the record is gone)."""

    authorization: DeviceAuthorization


class PollDenied(msgspec.Struct, frozen=True):
    """Denied by the user: ``access_denied`` (the record is gone)."""


class PollExpired(msgspec.Struct, frozen=True):
    """No live record for this device code (never issued, expired, or already answered):
    ``expired_token`` or ``invalid_grant``, the caller's choice."""


DevicePoll = PollPending | PollSlowDown | PollApproved | PollDenied | PollExpired

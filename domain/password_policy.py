"""The password policy: how long a password must and may be.

Checked wherever a password is set (SCIM create, replace and patch; ``auth-service user
set-password``), never at sign-in: a stored password that predates a stricter policy
still signs in. Length counts code points, as NIST SP 800-63B section 5.1.1.2 asks; no
composition rules (they make passwords weaker, not stronger).
"""

from __future__ import annotations

import msgspec

from domain.errors import InvalidValue
from domain.text import require_storable

#: Longest password accepted: argon2 hashes anything, but hashing megabytes is a cheap DoS.
MAX_PASSWORD_LENGTH = 1024
DEFAULT_MIN_PASSWORD_LENGTH = 8


class PasswordPolicy(msgspec.Struct, frozen=True):
    """``min_length`` to ``max_length`` characters (``PASSWORD_MIN_LENGTH`` sets the first)."""

    min_length: int = DEFAULT_MIN_PASSWORD_LENGTH
    max_length: int = MAX_PASSWORD_LENGTH


DEFAULT_PASSWORD_POLICY = PasswordPolicy()


class PasswordRejected(InvalidValue):
    """A new password breaks the policy (SCIM ``invalidValue``); the message says how."""


def check_password_policy(password: str, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY) -> str:
    """``password`` when the policy allows it, else :class:`PasswordRejected`."""
    if len(password) < policy.min_length:
        raise PasswordRejected(
            f"the password is too short: it needs at least {policy.min_length} characters")
    if len(password) > policy.max_length:
        raise PasswordRejected(
            f"the password is too long: it may have at most {policy.max_length} characters")
    require_storable(password, "the password")
    return password

"""Email verification: ``email_verified`` is true only for an address the user proved.

The user's email is the primary one of their SCIM ``emails`` (else the first). The
credentials part keeps the one address the user proved by a verification link
(``Credentials.verified_email``, lower-cased); the email is verified while the two agree,
so changing the address (over SCIM or on ``/account``) un-verifies it at once, with no
write needed.
"""

from __future__ import annotations

from domain.entities import Credentials, User


def primary_email(user: User) -> str | None:
    """The user's email address: the primary one, else the first; None without any."""
    if not user.emails:
        return None
    return next((e for e in user.emails if e.primary), user.emails[0]).value


def email_verified(user: User, credentials: Credentials) -> bool:
    """Whether the user's email address is the one they proved."""
    address = primary_email(user)
    return (address is not None and credentials.verified_email is not None
            and address.lower() == credentials.verified_email)

"""Email verification: ``email_verified`` is true only for an address the user proved.

The user's email is the primary one of their SCIM ``emails`` (else the first). The
credentials part keeps the one address the user proved by a verification link
(``Credentials.verified_email``, lower-cased); the email is verified while the two agree,
so changing the address (over SCIM or on ``/account``) un-verifies it at once, with no
write needed.

A link goes out whenever the primary email is created or changed (:func:`email_written`,
run once a user write is done: a SCIM POST, PUT, PATCH, Bulk operation, or the change on
``/account``), and when the user asks again (:func:`resend_verification_link`, throttled
per user, as are changes the user makes: otherwise anyone signed in could mail any address
at will). A link is a random secret (``ev_...``) mailed once and stored only as its
SHA-256 in the ``account_tokens`` part, kind ``email_verification``, with the address it
was sent to; a new link revokes the user's earlier ones. Using it
(:func:`verify_email`) spends it and records the address only if it is still the user's
primary email. Without a mailer (no ``SMTP_URL``) nothing is sent and nothing can be
verified by mail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from domain.entities import AccountToken, Credentials, Email, User
from domain.errors import DomainError, InvalidValue, NotFound
from domain.ratelimit import RateLimit, check_rate, rate_key
from domain.text import UNSTORABLE, duration_text
from domain.tokens import hash_token
from ports.clock import Clock
from ports.events import Events
from ports.mail import Mailer
from ports.security import TokenGenerator
from ports.store import CredentialStore, Store

#: The kind of the links in ``account_tokens``, and the template of their message.
KIND: Final = "email_verification"
#: The prefix of a link's secret: a leaked one is recognisable in logs and scanners.
TOKEN_PREFIX = "ev_"
#: Longer values are not ours (a generated one is the prefix and 43 characters).
MAX_TOKEN_LENGTH = 128
#: RFC 5321 4.5.3.1: at most 254 characters in a usable address, 64 before the ``@``.
MAX_ADDRESS_LENGTH = 254
MAX_LOCAL_PART_LENGTH = 64
#: Links a user may have sent by their own hand (a change on ``/account``, a resend):
#: enough for a typo and a lost message, too few to mail-bomb anyone.
USER_SENDS = RateLimit(limit=3, window_seconds=3600)
_RATE_RULE = "email-verification"
_TOKEN = re.compile(r"ev_[A-Za-z0-9_\-]{16,125}")
# Deliberately plain (the mail server is the judge of deliverability): a dot-atom local
# part (RFC 5322 3.2.3, no quoted strings) and a dotted domain of letters, digits and
# hyphens; non-ASCII letters allowed in both (RFC 6531).
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+"
                         r"(\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+)*")
_DOMAIN_LABEL = re.compile(r"(?!-)[A-Za-z0-9\-\u0080-\U0010ffff]{1,63}(?<!-)")


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


async def email_claims(store: CredentialStore, user: User) -> dict[str, Any]:
    """The ``email`` and ``email_verified`` claims (OIDC Core 5.1) of ``user``, for the ID
    token and userinfo; empty for a user without an email. Reads the credentials only
    then; a user deleted meanwhile has nothing verified."""
    address = primary_email(user)
    if address is None:
        return {}
    try:
        credentials = await store.get_credentials(user.id)
    except NotFound:
        return {"email": address, "email_verified": False}
    return {"email": address, "email_verified": email_verified(user, credentials)}


class InvalidAddress(InvalidValue):
    """Not an email address this service accepts."""


def checked_address(text: str) -> str:
    """``text`` (trimmed) when it reads as an email address: ``local@domain.tld``, within
    RFC 5321's lengths, no spaces, quotes or control characters. Raises
    :class:`InvalidAddress`."""
    address = text.strip()
    local, at, domain = address.rpartition("@")
    labels = domain.split(".")
    if (not at or len(address) > MAX_ADDRESS_LENGTH or len(local) > MAX_LOCAL_PART_LENGTH
            or UNSTORABLE.search(address) or not address.isprintable()
            or not _LOCAL_PART.fullmatch(local)
            or len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels)):
        raise InvalidAddress("not an email address")
    return address


@dataclass(frozen=True, slots=True)
class VerificationPorts:
    """What the verification use cases need, assembled once per request."""

    store: Store
    clock: Clock
    tokens: TokenGenerator
    events: Events
    #: None: no mail server, no verification by mail.
    mailer: Mailer | None
    #: The absolute URL of the page a link opens; the secret goes in its ``token``.
    link: str
    #: ``EMAIL_VERIFICATION_SECONDS``: how long a link works.
    lifetime: int
    user_sends: RateLimit = USER_SENDS


async def send_verification_link(ports: VerificationPorts, user: User, *, reason: str) -> bool:
    """Mail a new link for the user's primary email, revoking their earlier links; False
    (nothing done) without a mailer or an email. ``reason`` is for the event."""
    address = primary_email(user)
    if ports.mailer is None or address is None:
        return False
    now = ports.clock.now()
    await ports.store.revoke_account_tokens(user.id, KIND, now)
    secret = ports.tokens.new(TOKEN_PREFIX)
    await ports.store.save_account_token(AccountToken(
        token_hash=hash_token(secret), kind=KIND, user_id=user.id, email=address.lower(),
        created_at=now, exp=now + ports.lifetime), now)
    ports.mailer.send(KIND, to=address, user_id=user.id, values={
        "name": user.display_name or user.user_name,
        "link": f"{ports.link}?token={secret}",
        "expires": duration_text(ports.lifetime),
    })
    ports.events.emit("email_verification_sent", user_id=user.id, reason=reason)
    return True


async def email_written(
    ports: VerificationPorts, before: User | None, after: User, *, reason: str
) -> bool:
    """After a user write (``before`` None: the user was created): mail a link when the
    primary email is new or changed (case aside: addresses are compared lower-cased, as
    they are verified). Returns whether a link went out.

    An address the user proved already (changed back to it) needs no new link; a removed
    one leaves nothing to verify. Either way the earlier links are revoked. A deactivated
    user gets no mail (they can ask for a link once active again).
    """
    address = primary_email(after)
    previous = primary_email(before) if before is not None else None
    if address is not None and previous is not None and address.lower() == previous.lower():
        return False
    if address is None or not after.active:
        if previous is not None:
            await ports.store.revoke_account_tokens(after.id, KIND, ports.clock.now())
        return False
    if before is not None:
        credentials = await ports.store.get_credentials(after.id)
        if email_verified(after, credentials):
            await ports.store.revoke_account_tokens(after.id, KIND, ports.clock.now())
            return False
    return await send_verification_link(ports, after, reason=reason)


async def email_written_quietly(
    ports: VerificationPorts, before: User | None, after: User, *, reason: str
) -> bool:
    """:func:`email_written` for a write that has succeeded already (SCIM): a failure here
    (the store, a broken mailer) is an event, never the write's failure: the provisioning
    client would retry a write that was done."""
    try:
        return await email_written(ports, before, after, reason=reason)
    except Exception as exc:  # the write is done: whatever this is must not undo its answer
        ports.events.emit("email_verification_failed", user_id=after.id, reason=reason,
                          error="store_unavailable" if isinstance(exc, DomainError)
                          else "mailer")
        return False


class TooManySends(Exception):
    """The user had as many links sent as :data:`USER_SENDS` allows; ``retry_after``
    seconds until they may ask again."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many verification emails")
        self.retry_after = retry_after


async def count_user_send(ports: VerificationPorts, user_id: str) -> None:
    """Count one link the user asked for (a change or a resend); raises
    :class:`TooManySends` over the limit (then nothing counts against the next window)."""
    key = rate_key(_RATE_RULE, user_id)
    verdict = await check_rate(ports.store, key, ports.user_sends, ports.clock.now())
    if not verdict.allowed:
        # Refused attempts are given back: hammering the button does not push the window.
        await ports.store.hit(key, ports.user_sends.window_seconds, ports.clock.now(), -1)
        raise TooManySends(verdict.retry_after)


ResendOutcome = Literal["sent", "verified", "no_email", "unavailable"]


async def resend_verification_link(ports: VerificationPorts, user: User) -> ResendOutcome:
    """The user asks for a new link (``/account``): ``sent``, or why not (``verified``
    already, ``no_email``, ``unavailable``: no mailer). Raises :class:`TooManySends`."""
    if ports.mailer is None:
        return "unavailable"
    if primary_email(user) is None:
        return "no_email"
    if email_verified(user, await ports.store.get_credentials(user.id)):
        return "verified"
    await count_user_send(ports, user.id)
    await send_verification_link(ports, user, reason="resend")
    return "sent"


async def change_email(ports: VerificationPorts, user: User, address: str) -> User:
    """The user sets their own primary email (``/account``; the caller checked a recent
    sign-in): the primary entry's value is replaced (its type kept), or a primary entry is
    added; a link goes to the new address. Counts as a send the user asked for when there
    is a mailer (:class:`TooManySends`, the address unchanged). Returns the stored user.

    Raises :class:`InvalidAddress`, ``PreconditionFailed`` (a concurrent write),
    ``NotFound``.
    """
    address = checked_address(address)
    current = primary_email(user)
    if current == address:
        return user
    # Only a new address gets a link (a change of case is the same mailbox).
    if ports.mailer is not None and (current is None or current.lower() != address.lower()):
        await count_user_send(ports, user.id)
    if user.emails:
        index = next((i for i, e in enumerate(user.emails) if e.primary), 0)
        emails = tuple(msgspec.structs.replace(e, value=address, primary=True)
                       if i == index else e for i, e in enumerate(user.emails))
    else:
        emails = (Email(value=address, primary=True),)
    stored = await ports.store.replace_user(
        msgspec.structs.replace(user, emails=emails, last_modified=ports.clock.now()),
        expected_version=user.version)
    ports.events.emit("email_changed", user_id=user.id, source="account")
    await email_written(ports, user, stored, reason="account")
    return stored


class LinkRefused(Exception):
    """A verification link that verifies nothing: ``invalid`` (unknown, used, expired,
    replaced by a newer one, or its user gone or deactivated) or ``changed`` (the user's
    email is no longer the address it was sent to)."""

    def __init__(self, reason: Literal["invalid", "changed"]) -> None:
        super().__init__(f"verification link refused: {reason}")
        self.reason = reason


async def verify_email(ports: VerificationPorts, secret: str) -> User:
    """Spend the link's secret and record its address as proved, if it is still the
    user's primary email; returns the user. Raises :class:`LinkRefused`.

    Single use on every instance (``take_account_token``): a second use, even concurrent,
    is refused.
    """
    if len(secret) > MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(secret):
        raise LinkRefused("invalid")
    now = ports.clock.now()
    token = await ports.store.take_account_token(KIND, hash_token(secret), now)
    if token is None:
        raise LinkRefused("invalid")
    try:
        user = await ports.store.get_user(token.user_id)
    except NotFound:
        raise LinkRefused("invalid") from None
    if not user.active:
        raise LinkRefused("invalid")
    address = primary_email(user)
    if address is None or address.lower() != token.email:
        ports.events.emit("email_verification_refused", user_id=user.id, reason="changed")
        raise LinkRefused("changed")
    await ports.store.set_verified_email(user.id, token.email)
    ports.events.emit("email_verified", user_id=user.id)
    return user

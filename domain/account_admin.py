"""What an administrator does to a user's account (issue 17): list and remove the user's
passkeys, reset every second factor, mark the user's email verified.

The admin API (``/admin/users/{id}/...``) and the CLI (``auth-service user ...``) share
these use cases, so both behave the same on every backend and log the same security
events, each naming the ``actor`` (the admin client's id, or ``cli``):

- ``admin_passkey_removed``: one passkey gone. When it was the user's last second factor
  (no confirmed TOTP seed and no other passkey), the user's recovery codes go with it
  (``recovery_codes_removed``): a code stands in for a factor the user no longer has, and
  the next enrolment must issue a fresh set the user has actually seen. The user's
  sessions and tokens are kept, as when another provider's credential is removed: an
  administrator who suspects the passkey was stolen ends them too (``DELETE
  /admin/sessions/{sid}``, ``auth-service session revoke``) or resets MFA, which does.
- ``admin_mfa_reset``: :func:`domain.mfa.reset_mfa` (TOTP seed, passkeys and recovery
  codes removed; every session ended, every token revoked), with the counts.
- ``admin_email_verified``: the user's current primary email recorded as proved, as a
  used verification link would; ``email_verified`` is true in ID tokens and userinfo
  while that address stays the user's primary one.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import msgspec

from domain.email_verification import email_verified, primary_email
from domain.entities import Passkey, User
from domain.errors import Conflict, InvalidValue, NotFound
from domain.mfa import reset_mfa
from domain.recovery import drop_codes_without_factor
from domain.user_sessions import UserSessionEnder
from ports.events import Events
from ports.store import CredentialStore, TokenStore, UserStore

#: WebAuthn credential ids are at most 1023 bytes: 1364 characters of base64url.
MAX_CREDENTIAL_ID_LENGTH = 1364
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class AccountAdminStore(UserStore, CredentialStore, TokenStore, Protocol):
    """What the account administration use cases need from the store."""


def passkey_view(passkey: Passkey) -> dict[str, Any]:
    """A passkey as the admin API and the CLI show it. The public key is left out: it is
    no secret, but it is of no use to an administrator and is the one long field."""
    return {
        "credential_id": passkey.credential_id,
        "name": passkey.name,
        "created_at": passkey.created_at,
        "last_used_at": passkey.last_used_at,
        "synced": passkey.synced,
        "transports": list(passkey.transports),
        "sign_count": passkey.sign_count,
    }


async def list_user_passkeys(store: AccountAdminStore, user_id: str) -> list[Passkey]:
    """The passkeys of the user ``user_id``, oldest first. Raises ``NotFound`` for no such
    user (an empty list is a user without passkeys)."""
    await store.get_user(user_id)
    return await store.list_passkeys(user_id)


class PasskeyRemoval(msgspec.Struct, frozen=True):
    """What :func:`remove_user_passkey` did: the passkey removed, how many passkeys the
    user has left, and how many recovery codes went with the last second factor."""

    passkey: Passkey
    passkeys_left: int
    recovery_codes_removed: int = 0


async def remove_user_passkey(
    store: AccountAdminStore, events: Events, *, user_id: str, credential_id: str,
    actor: str | None,
) -> PasskeyRemoval:
    """Remove the passkey ``credential_id`` of the user ``user_id`` (see the module
    docstring). Raises ``NotFound`` for no such user, and for a passkey this user does not
    hold, including one another user holds: a path naming one user never reaches
    another's credentials. Raises ``InvalidValue`` for a ``credential_id`` that is not
    base64url of a length a credential id can have."""
    if len(credential_id) > MAX_CREDENTIAL_ID_LENGTH or not _BASE64URL.fullmatch(
            credential_id):
        raise InvalidValue("the credential id is not one a passkey can have (base64url, "
                           "as listed)")
    await store.get_user(user_id)
    passkey = await store.find_passkey(credential_id)
    if passkey is None or passkey.user_id != user_id:
        raise NotFound("the user has no passkey with this credential id")
    if not await store.remove_passkey(user_id, credential_id):
        raise NotFound("the user has no passkey with this credential id")  # removed meanwhile
    left = len(await store.list_passkeys(user_id))
    codes = await drop_codes_without_factor(store, user_id)
    events.emit("admin_passkey_removed", actor=actor, user_id=user_id,
                credential_id=credential_id, passkey_name=passkey.name, passkeys_left=left,
                recovery_codes_removed=codes)
    return PasskeyRemoval(passkey=passkey, passkeys_left=left, recovery_codes_removed=codes)


class MfaResetDone(msgspec.Struct, frozen=True):
    """What :func:`reset_user_mfa` did, counted."""

    user: User
    totp_removed: bool
    passkeys_removed: int
    recovery_codes_removed: int
    sessions_ended: int
    tokens_revoked: int


async def reset_user_mfa(
    store: AccountAdminStore, events: Events, *, user_id: str, actor: str | None,
    sessions: UserSessionEnder, now: int,
) -> MfaResetDone:
    """:func:`domain.mfa.reset_mfa` for the user ``user_id``, with what it removed counted
    and one ``admin_mfa_reset`` event. Raises ``NotFound`` for no such user."""
    user = await store.get_user(user_id)
    credentials = await store.get_credentials(user_id)
    totp = credentials.totp_secret is not None
    codes = await store.count_recovery_codes(user_id)
    done = await reset_mfa(store, user_name=user.user_name, now=now, sessions=sessions)
    result = MfaResetDone(
        user=done.user, totp_removed=totp, passkeys_removed=done.passkeys_removed,
        recovery_codes_removed=codes, sessions_ended=done.sessions_ended,
        tokens_revoked=done.revoked)
    events.emit("admin_mfa_reset", actor=actor, user_id=done.user.id,
                totp_removed=result.totp_removed, passkeys_removed=result.passkeys_removed,
                recovery_codes_removed=codes, sessions_ended=result.sessions_ended,
                tokens_revoked=result.tokens_revoked)
    return result


class EmailVerified(msgspec.Struct, frozen=True):
    """What :func:`mark_email_verified` did: the user, the address now verified, and
    whether it was verified already (nothing was written then)."""

    user: User
    email: str
    already: bool


async def mark_email_verified(
    store: AccountAdminStore, events: Events, *, user_id: str, actor: str | None,
) -> EmailVerified:
    """Record the user's current primary email as verified. Raises ``NotFound`` for no such
    user and ``Conflict`` for a user without an email address."""
    user = await store.get_user(user_id)
    address = primary_email(user)
    if address is None:
        raise Conflict("the user has no email address to verify")
    already = email_verified(user, await store.get_credentials(user_id))
    if not already:
        await store.set_verified_email(user_id, address.lower())
    events.emit("admin_email_verified", actor=actor, user_id=user_id, already=already)
    return EmailVerified(user=user, email=address, already=already)

"""Passkeys (WebAuthn Level 2): registering them, signing in with them, managing them.

A signed-in user registers passkeys from ``/account`` (after a recent sign-in); each is a
discoverable credential (resident key required), so a passkey alone signs in, with no user
name typed: the authenticator returns the user handle, which is the UTF-8 bytes of the
user id. A passkey also serves as the second factor after a password.

The ceremonies' checks (challenge, origin, relying party, flags, signature) are the
adapter's (``ports.passkeys``); the rules here are:

- **The challenge is single use.** 32 random bytes, kept by the caller in state bound to
  the sign-in (the sealed transaction) or to the registration; the first response that
  comes with it claims it in the store (``claim_once``, shared by every instance) before
  anything is verified, so a replayed response, or a second response to one page, is
  refused whatever it contains.
- **The passkey must be the user's.** A credential is found by its id; the user handle the
  authenticator returned must be the credential's owner; as a second factor, the owner
  must be the user who typed the password. Inactive users are refused.
- **The counter must grow.** The store accepts a use only when the authenticator's
  signature counter grew (or both it and the stored one are 0: an authenticator that keeps
  no counter, as most synced passkeys), atomically (``record_passkey_use``). A counter that
  went back or stood still means a cloned authenticator (or a replay): the sign-in fails and
  a security event ``passkey_sign_count_regressed`` says so.
- **User verification** (PIN, biometrics) is required for a sign-in with a passkey alone,
  which then counts as two factors (``amr`` ``hwk``/``swk`` and ``mfa``,
  :func:`domain.sessions.passkey_amr`); it is preferred only, for a registration and as a
  second factor after a password.

Refusals are values (:class:`PasskeyRefused` with a reason), never exceptions: a bad
response is the browser's (or an attacker's) input, and each one is logged.
"""

from __future__ import annotations

import base64
import secrets
from typing import Literal, Protocol

import msgspec

from domain.entities import Passkey, User
from domain.errors import Conflict, NotFound
from domain.recovery import drop_codes_without_factor
from domain.sessions import AMR_HWK, AMR_SWK
from domain.text import is_storable
from ports.events import Events
from ports.passkeys import PasskeyCeremonies, PasskeyRejected
from ports.store import CredentialStore, EphemeralStore, UserStore

#: Bytes of randomness in a challenge (WebAuthn asks for at least 16).
CHALLENGE_BYTES = 32
#: WebAuthn's limit on a user handle.
MAX_USER_HANDLE = 64
#: The longest name a passkey may have (characters).
MAX_NAME = 64
#: The name of a passkey whose user gave none.
DEFAULT_NAME = "Passkey"
#: How much of a credential id a log line shows (ids are not secrets, but long).
_ID_SHOWN = 16

RefusalReason = Literal[
    "malformed",  # not a WebAuthn response at all
    "replayed",  # its challenge was used already
    "not_verified",  # a check failed: challenge, origin, relying party, flags, signature
    "unknown_credential",  # no such passkey (removed, or never registered here)
    "other_user",  # the passkey is not the user's
    "inactive",  # the user is deactivated
    "sign_count",  # the counter went back: a cloned authenticator
    "duplicate",  # registering a passkey that is registered already
    "unavailable",  # the user cannot have passkeys (an id too long for a user handle)
]


class PasskeyRefused(msgspec.Struct, frozen=True):
    """A ceremony failed; ``reason`` says why (for the page's message and the log)."""

    reason: RefusalReason


class PasskeyAccepted(msgspec.Struct, frozen=True):
    """A sign-in response verified: the user, and the passkey (with its new counter)."""

    user_id: str
    passkey: Passkey

    @property
    def method(self) -> str:
        """The passkey's RFC 8176 method: ``swk`` for a synced passkey, ``hwk`` for one
        bound to its device."""
        return AMR_SWK if self.passkey.synced else AMR_HWK


class PasskeyStore(UserStore, CredentialStore, EphemeralStore, Protocol):
    pass


def new_challenge() -> bytes:
    return secrets.token_bytes(CHALLENGE_BYTES)


def encode_challenge(challenge: bytes) -> str:
    """The base64url text a challenge is kept as (in a sealed cookie)."""
    return base64.urlsafe_b64encode(challenge).rstrip(b"=").decode("ascii")


def decode_challenge(value: str) -> bytes | None:
    """The challenge kept as ``value``, or None when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return None
    return raw if len(raw) == CHALLENGE_BYTES else None


def user_handle(user_id: str) -> bytes:
    """The WebAuthn user handle of a user: the bytes of the user id."""
    return user_id.encode("utf-8", "surrogatepass")


def passkey_name(value: str | None) -> str | None:
    """The name a user typed for a passkey, trimmed, or None when it is not acceptable
    (empty, too long, control characters, or what no store can keep)."""
    if value is None:
        return None
    name = " ".join(value.split())
    if not name or len(name) > MAX_NAME or not is_storable(name):
        return None
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
        return None
    return name


def _shown(credential_id: str) -> str:
    return credential_id[:_ID_SHOWN]


async def _claim(store: EphemeralStore, challenge: bytes, exp: int, now: int) -> bool:
    return await store.claim_once(f"passkey:challenge:{encode_challenge(challenge)}",
                                  max(exp, now + 1), now)


async def registration_options(
    store: CredentialStore, ceremonies: PasskeyCeremonies, *, user: User, challenge: bytes,
) -> str | PasskeyRefused:
    """The options for ``navigator.credentials.create`` for ``user`` (excluding the passkeys
    the user has), or ``unavailable`` when the user's id cannot be a user handle."""
    handle = user_handle(user.id)
    if len(handle) > MAX_USER_HANDLE:
        return PasskeyRefused("unavailable")
    return ceremonies.registration_options(
        user_handle=handle, user_name=user.user_name,
        display_name=user.display_name or user.user_name, challenge=challenge,
        exclude=await store.list_passkeys(user.id))


async def register_passkey(
    store: PasskeyStore, ceremonies: PasskeyCeremonies, events: Events, *, user: User,
    response: str, challenge: bytes, challenge_exp: int, name: str, now: int,
) -> Passkey | PasskeyRefused:
    """Finish a registration: claim the challenge (single use), verify the response, keep
    the passkey under ``name``. The caller checked that the user signed in recently."""
    if not await _claim(store, challenge, challenge_exp, now):
        events.emit("passkey_refused", user_id=user.id, reason="replayed",
                    ceremony="registration")
        return PasskeyRefused("replayed")
    try:
        new = ceremonies.verify_registration(response, challenge=challenge)
    except PasskeyRejected as exc:
        events.emit("passkey_refused", user_id=user.id, reason="not_verified",
                    ceremony="registration", detail=str(exc)[:200])
        return PasskeyRefused("not_verified")
    passkey = Passkey(credential_id=new.credential_id, user_id=user.id,
                      public_key=new.public_key, sign_count=new.sign_count,
                      transports=new.transports, name=name, synced=new.backup_eligible,
                      created_at=now)
    try:
        await store.add_passkey(passkey)
    except Conflict:
        events.emit("passkey_refused", user_id=user.id, reason="duplicate",
                    ceremony="registration", credential=_shown(passkey.credential_id))
        return PasskeyRefused("duplicate")
    events.emit("passkey_registered", user_id=user.id,
                credential=_shown(passkey.credential_id), synced=passkey.synced)
    return passkey


def authentication_options(
    ceremonies: PasskeyCeremonies, *, challenge: bytes, passkeys: list[Passkey] | None = None,
) -> str:
    """The options for ``navigator.credentials.get``: without ``passkeys``, for a sign-in
    with a passkey alone (any of this site's passkeys, user verification required); with
    them, for the second factor of the user they belong to."""
    if passkeys is None:
        return ceremonies.authentication_options(challenge=challenge, allow=(),
                                                 user_verification="required")
    return ceremonies.authentication_options(challenge=challenge, allow=passkeys,
                                             user_verification="preferred")


async def authenticate_with_passkey(
    store: PasskeyStore, ceremonies: PasskeyCeremonies, events: Events, *, response: str,
    challenge: bytes, challenge_exp: int, user_id: str | None, client_ip: str, now: int,
) -> PasskeyAccepted | PasskeyRefused:
    """Check a sign-in response made for ``challenge``.

    ``user_id`` None: a sign-in with a passkey alone (the user is the passkey's; user
    verification required). Otherwise the second factor of ``user_id``, who proved the
    password: the passkey must be theirs. Claims the challenge first (``challenge_exp``:
    until when it could be used), so each challenge is answered at most once."""
    step = "passkey" if user_id is None else "second_factor"

    def refused(reason: RefusalReason, **fields: str | int | None) -> PasskeyRefused:
        events.emit("signin_failed", reason=f"passkey_{reason}", step=step,
                    client_ip=client_ip, **fields)
        return PasskeyRefused(reason)

    if not await _claim(store, challenge, challenge_exp, now):
        return refused("replayed", user_id=user_id)
    try:
        claim = ceremonies.read_assertion(response)
    except PasskeyRejected:
        return refused("malformed", user_id=user_id)
    passkey = await store.find_passkey(claim.credential_id)
    if passkey is None:
        return refused("unknown_credential", user_id=user_id,
                       credential=_shown(claim.credential_id))
    owner = passkey.user_id
    if (user_id is not None and owner != user_id) or (
            claim.user_handle is not None and claim.user_handle != user_handle(owner)):
        return refused("other_user", user_id=user_id, credential=_shown(claim.credential_id))
    if user_id is None and claim.user_handle is None:
        # A discoverable credential always returns its user handle; one that does not was
        # not made by our registration.
        return refused("malformed", credential=_shown(claim.credential_id))
    try:
        user = await store.get_user(owner)
    except NotFound:
        return refused("unknown_credential", credential=_shown(claim.credential_id))
    if not user.active:
        return refused("inactive", user_id=owner)
    try:
        verified = ceremonies.verify_assertion(
            response, challenge=challenge, passkey=passkey,
            require_user_verification=user_id is None)
    except PasskeyRejected as exc:
        return refused("not_verified", user_id=owner, credential=_shown(passkey.credential_id),
                       detail=str(exc)[:200])
    if not await store.record_passkey_use(passkey.credential_id, verified.sign_count, now):
        # Logged on its own: a counter that goes back is the sign of a cloned key, which an
        # operator must look into (the user's passkey may be in someone else's hands).
        events.emit("passkey_sign_count_regressed", user_id=owner,
                    credential=_shown(passkey.credential_id), stored=passkey.sign_count,
                    received=verified.sign_count, client_ip=client_ip)
        return refused("sign_count", user_id=owner, credential=_shown(passkey.credential_id))
    used = msgspec.structs.replace(passkey, sign_count=verified.sign_count, last_used_at=now)
    accepted = PasskeyAccepted(user_id=owner, passkey=used)
    events.emit("signin_succeeded", user_id=owner,
                amr=accepted.method if user_id is None else f"pwd {accepted.method}")
    return accepted


async def rename_passkey(
    store: CredentialStore, events: Events, *, user_id: str, credential_id: str, name: str,
) -> bool:
    """Rename one of the user's passkeys; False when the user has no such passkey."""
    renamed = await store.rename_passkey(user_id, credential_id, name)
    if renamed:
        events.emit("passkey_renamed", user_id=user_id, credential=_shown(credential_id))
    return renamed


RemoveOutcome = Literal["removed", "missing", "last_way_in"]


async def remove_passkey(
    store: CredentialStore, events: Events, *, user_id: str, credential_id: str,
) -> RemoveOutcome:
    """Forget one of the user's passkeys: ``removed``; ``missing`` when the user has no
    such passkey; ``last_way_in`` (nothing removed) when it is the only passkey of a user
    without a password, who could then not sign in at all."""
    passkeys = await store.list_passkeys(user_id)
    if not any(p.credential_id == credential_id for p in passkeys):
        return "missing"
    if len(passkeys) == 1:
        try:
            credentials = await store.get_credentials(user_id)
        except NotFound:
            return "missing"
        if credentials.password_hash is None:
            return "last_way_in"
    if not await store.remove_passkey(user_id, credential_id):
        return "missing"
    codes = await drop_codes_without_factor(store, user_id)
    events.emit("passkey_removed", user_id=user_id, credential=_shown(credential_id),
                recovery_codes_removed=codes)
    return "removed"

"""Recovery codes: ten single-use codes that stand in for the second factor.

A user gets a set when they first enrol a second factor (a confirmed TOTP seed or a first
passkey) and may regenerate it whenever they are signed in recently; regenerating replaces
the whole set, so the old codes stop working at once. The codes are shown once and stored
only as SHA-256 hashes (``CredentialStore.replace_recovery_codes``): each has 80 random
bits, far past what an offline search of a stolen hash could find, so a slow hash would buy
nothing and a hash lookup keeps a use atomic (``use_recovery_code``: of concurrent uses of
one code on any instance, one wins).

A code is 16 characters of the RFC 4648 base32 alphabet (lower case, no ``0``, ``1``,
``8`` or ``9`` to confuse), shown in four groups (``abcd-efgh-ijkl-mnop``). What is typed
is compared after lower-casing and dropping spaces and dashes, so it may be copied in any
grouping. Every use is a security event (``recovery_code_used`` with how many are left),
and so is every new set (``recovery_codes_generated``).

A recovery code proves the second factor only, after the password: it is not a way to sign
in without a password. Sign-in with one counts as ``amr`` ``otp`` (RFC 8176 has no value
of its own for it; it is a one-time password).
"""

from __future__ import annotations

import hashlib
import secrets

from ports.events import Events
from ports.store import CredentialStore

#: How many codes a set holds.
RECOVERY_CODE_COUNT = 10
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_LENGTH = 16
_GROUP = 4


def _normalized(code: str) -> str:
    return "".join(c for c in code.lower() if c not in " -\t")


def recovery_code_hash(code: str) -> str:
    """The SHA-256 hex a code is stored as (after the normalisation of what is typed)."""
    return hashlib.sha256(_normalized(code).encode("utf-8", "surrogatepass")).hexdigest()


def new_recovery_code() -> str:
    """One fresh code, grouped for reading (``abcd-efgh-ijkl-mnop``)."""
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
    return "-".join(raw[i:i + _GROUP] for i in range(0, _LENGTH, _GROUP))


def looks_like_recovery_code(code: str) -> bool:
    """Whether ``code`` could be a recovery code (so a TOTP code is never hashed)."""
    normalized = _normalized(code)
    return len(normalized) == _LENGTH and all(c in _ALPHABET for c in normalized)


async def issue_recovery_codes(
    store: CredentialStore, events: Events, user_id: str, *, reason: str
) -> tuple[str, ...]:
    """A new set of codes for the user, replacing any earlier set: the codes themselves,
    to show once. ``reason`` says why for the log (``enrolment``, ``regenerated``,
    ``admin``). Raises ``NotFound`` for no user."""
    codes = tuple(new_recovery_code() for _ in range(RECOVERY_CODE_COUNT))
    await store.replace_recovery_codes(user_id, [recovery_code_hash(c) for c in codes])
    events.emit("recovery_codes_generated", user_id=user_id, count=len(codes), reason=reason)
    return codes


async def ensure_recovery_codes(
    store: CredentialStore, events: Events, user_id: str
) -> tuple[str, ...]:
    """At a factor's enrolment: a first set when the user has no codes left, else nothing
    (an existing set stays valid; the user regenerates it on purpose)."""
    if await store.count_recovery_codes(user_id) > 0:
        return ()
    return await issue_recovery_codes(store, events, user_id, reason="enrolment")


async def spend_recovery_code(
    store: CredentialStore, events: Events, user_id: str, code: str, *, client_ip: str
) -> bool:
    """Spend ``code`` of the user: True once per code (it is then gone), False for anything
    else. Logs each use with the number left."""
    if not looks_like_recovery_code(code):
        return False
    if not await store.use_recovery_code(user_id, recovery_code_hash(code)):
        return False
    remaining = await store.count_recovery_codes(user_id)
    events.emit("recovery_code_used", user_id=user_id, remaining=remaining,
                client_ip=client_ip)
    return True


async def drop_codes_without_factor(store: CredentialStore, user_id: str) -> int:
    """After a second factor was removed: when the user has none left (no confirmed TOTP
    seed, no passkey), forget their recovery codes, which stood in for a factor the user no
    longer has (the next enrolment issues a new set). How many codes went."""
    credentials = await store.get_credentials(user_id)
    if (credentials.totp_confirmed and credentials.totp_secret is not None) or \
            await store.list_passkeys(user_id):
        return 0
    codes = await store.count_recovery_codes(user_id)
    if codes:
        await store.replace_recovery_codes(user_id, [])
    return codes


"""Browser sessions: what single sign-on remembers between authorization requests.

After a sign-in the browser holds an opaque, random *session id* in a cookie; the store
keeps the session under the SHA-256 of that id (``id_hash``), so a copy of the store opens
no session. A session also has a public ``sid`` (OpenID Connect Front-/Back-Channel Logout):
it goes into ID tokens and logout tokens and names the session in the admin API, and it
cannot be turned back into the cookie.

A session records how the user signed in (``auth_time``, ``amr``, ``acr``) and every client
that received a code in it, with the grant of that code (:class:`SessionGrant`), so that a
logout can tell each client and revoke what was issued in the session. It ends at the
first of two expiries: ``idle_exp`` (no authorization for ``idle_seconds``; every code
issued in it pushes it back) and ``exp`` (``max_seconds`` after the sign-in; never
extended, not even by signing in again within it, which makes a new sign-in time only).

The use cases here only read and write sessions; ending one (logout, deprovisioning) is
:mod:`domain.logout`'s, as it also revokes grants and tells the clients.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import msgspec

from ports.security import TokenGenerator

#: The cookie value's prefix (tells a session id apart from any other token in logs).
SESSION_ID_PREFIX = "ses_"
SID_PREFIX = "sid_"

#: RFC 8176 authentication method references.
AMR_PASSWORD = "pwd"
AMR_OTP = "otp"
#: Proof of possession of a hardware-secured key (a device-bound passkey), or of a
#: software-secured one (a synced passkey, which may be copied between devices).
AMR_HWK = "hwk"
AMR_SWK = "swk"
#: "Multiple-factor authentication": set whenever two factors were proved.
AMR_MFA = "mfa"

#: The authentication context classes this server can satisfy (discovery
#: ``acr_values_supported``): a password alone, or a password and a second factor.
ACR_PASSWORD = "pwd"
ACR_MFA = "mfa"
ACR_VALUES: tuple[str, ...] = (ACR_PASSWORD, ACR_MFA)


def acr_of(amr: tuple[str, ...]) -> str:
    """The ``acr`` a sign-in with these methods achieved."""
    return ACR_MFA if AMR_MFA in amr else ACR_PASSWORD


def amr_of(*, second_factor: str | None) -> tuple[str, ...]:
    """The ``amr`` of a password sign-in, with the second factor's method if one was
    proved (``"otp"`` for TOTP or a recovery code, ``"hwk"``/``"swk"`` for a passkey)."""
    if second_factor is None:
        return (AMR_PASSWORD,)
    return (AMR_PASSWORD, second_factor, AMR_MFA)


def passkey_amr(*, synced: bool) -> tuple[str, ...]:
    """The ``amr`` of a sign-in with a passkey alone. The browser verified the user (PIN or
    biometrics: user verification required) on top of the key: two factors, so ``mfa``."""
    return (AMR_SWK if synced else AMR_HWK, AMR_MFA)


class SessionPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """``SESSION_IDLE_SECONDS`` and ``SESSION_MAX_SECONDS``."""

    idle_seconds: int = 8 * 3600
    max_seconds: int = 7 * 86400


DEFAULT_SESSION_POLICY = SessionPolicy()


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """A signed-in browser (see the module docstring).

    ``clients``: the ids of the clients that received a code in the session, in the order
    of their first one. ``mfa_verified`` is derived from ``amr``.
    """

    id_hash: str
    sid: str
    user_id: str
    auth_time: int
    amr: tuple[str, ...]
    acr: str
    created_at: int
    idle_exp: int
    exp: int
    clients: tuple[str, ...] = ()

    @property
    def mfa_verified(self) -> bool:
        return AMR_MFA in self.amr

    def live(self, now: int) -> bool:
        return self.idle_exp > now and self.exp > now


class SessionGrant(msgspec.Struct, frozen=True):
    """A grant issued in a session: the client and the ``grant_id`` of its tokens."""

    client_id: str
    grant_id: str


class SessionRecord(msgspec.Struct, frozen=True):
    """A session with every grant issued in it: what ending a session returns, and what
    ``store copy`` moves."""

    session: Session
    grants: tuple[SessionGrant, ...] = ()


def hash_session_id(session_id: str) -> str:
    """The key a session is stored under: lowercase hex SHA-256 of the cookie value."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


class SessionReader(Protocol):
    async def get_session(self, id_hash: str, now: int) -> Session | None: ...


async def find_session(store: SessionReader, session_id: str | None, now: int) -> Session | None:
    """The live session a cookie names, or None (no cookie, an id we never issued, an
    expired or ended session). A value that is not shaped like our ids costs no lookup."""
    if not session_id or not session_id.startswith(SESSION_ID_PREFIX) or len(session_id) > 128:
        return None
    return await store.get_session(hash_session_id(session_id), now)


class SessionWriter(Protocol):
    async def create_session(self, session: Session, now: int) -> None: ...


def new_session_id(generator: TokenGenerator) -> tuple[str, str]:
    """A fresh cookie value and its ``id_hash``: for a new session, and for an old one
    re-keyed when its user signs in again (a cookie copied before then opens nothing)."""
    session_id = generator.new(SESSION_ID_PREFIX)
    return session_id, hash_session_id(session_id)


async def open_session(
    store: SessionWriter,
    generator: TokenGenerator,
    *,
    user_id: str,
    auth_time: int,
    amr: tuple[str, ...],
    now: int,
    policy: SessionPolicy = DEFAULT_SESSION_POLICY,
) -> tuple[str, Session]:
    """Start a session for a user who has just signed in; return the cookie value (shown
    only to the browser, never stored) and the session."""
    session_id, id_hash = new_session_id(generator)
    session = Session(
        id_hash=id_hash,
        sid=generator.new(SID_PREFIX),
        user_id=user_id,
        auth_time=auth_time,
        amr=amr,
        acr=acr_of(amr),
        created_at=now,
        idle_exp=min(now + policy.idle_seconds, auth_time + policy.max_seconds),
        exp=auth_time + policy.max_seconds,
    )
    await store.create_session(session, now)
    return session_id, session


class SessionRekeyer(Protocol):
    async def reauthenticate_session(
        self, id_hash: str, new_id_hash: str, *, auth_time: int, amr: tuple[str, ...],
        acr: str, idle_exp: int, now: int,
    ) -> Session | None: ...


async def reauthenticate(
    store: SessionRekeyer,
    generator: TokenGenerator,
    session: Session,
    *,
    auth_time: int,
    amr: tuple[str, ...],
    now: int,
    policy: SessionPolicy = DEFAULT_SESSION_POLICY,
) -> tuple[str, Session] | None:
    """The session's user signed in again (``prompt=login``, ``max_age``, a step-up):
    record how, under a new session id, and return the new cookie value and the session
    (same ``sid``, clients and grants). The old cookie value stops naming a session: a copy
    of it taken before (when only the password was known, say) gains nothing the user
    proves now. None when the session ended meanwhile, or another re-authentication of it
    won the race."""
    session_id, id_hash = new_session_id(generator)
    renewed = await store.reauthenticate_session(
        session.id_hash, id_hash, auth_time=auth_time, amr=amr, acr=acr_of(amr),
        idle_exp=idle_expiry(session, now, policy), now=now)
    return None if renewed is None else (session_id, renewed)


def idle_expiry(session: Session, now: int, policy: SessionPolicy) -> int:
    """When the session would go idle if used at ``now`` (never past its ``exp``)."""
    return min(now + policy.idle_seconds, session.exp)


def merge_sessions(held: Session, incoming: Session) -> Session:
    """The session an import leaves when the target already holds it (see
    :meth:`ports.store.SessionTransfer.import_sessions`)."""
    newer = incoming if incoming.auth_time > held.auth_time else held
    clients = held.clients + tuple(c for c in incoming.clients if c not in held.clients)
    return msgspec.structs.replace(
        held, auth_time=newer.auth_time, amr=newer.amr, acr=newer.acr, clients=clients,
        exp=min(held.exp, incoming.exp), idle_exp=min(held.idle_exp, incoming.idle_exp))

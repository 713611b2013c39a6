"""Ending browser sessions: logout, deprovisioning, an operator's revocation.

Whatever ends a session goes through :func:`end_sessions`, so every way out does the same
three things, in this order:

1. the session is removed from the store (:class:`~ports.store.SessionStore`; the store
   hands each ended session to one caller only, so the rest happens once);
2. the grants issued in it are revoked for every client whose policy says so
   (``revoke_tokens_on_logout``, on by default), refresh tokens included;
3. every client of the session with a ``backchannel_logout_uri`` is sent a signed logout
   token (OpenID Connect Back-Channel Logout 1.0 section 2.4), in the background.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from domain.client_directory import ClientDirectory
from domain.clients import Client
from domain.errors import StoreUnavailable
from domain.oauth import session_ended_key
from domain.sessions import SessionRecord
from ports.clock import Clock
from ports.events import Events
from ports.logout import LogoutNotice, LogoutSender
from ports.security import IdTokenSigner, TokenGenerator
from ports.store import EphemeralStore, SessionStore, TokenStore

#: The ``events`` claim of a logout token (Back-Channel Logout 1.0 section 2.4).
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: How long a logout token is valid: long enough for retries, short enough to be useless
#: to anyone who finds one later.
LOGOUT_TOKEN_SECONDS = 120


class LogoutStore(SessionStore, TokenStore, EphemeralStore, Protocol):
    """What ending sessions needs from the store."""


@dataclass(frozen=True, slots=True)
class LogoutPorts:
    store: LogoutStore
    clients: ClientDirectory
    signer: IdTokenSigner
    sender: LogoutSender
    events: Events
    clock: Clock
    token_generator: TokenGenerator
    issuer: str
    #: ``AUTH_CODE_EXPIRY_SECONDS``: how long a code issued in an ended session could still
    #: be presented, so how long its grant is remembered as ended.
    code_seconds: int = 600


def logout_token_claims(
    issuer: str, client: Client, record: SessionRecord, jti: str, now: int
) -> dict[str, object]:
    """The claims of the logout token for ``client`` (no ``nonce``: section 2.4 forbids
    it)."""
    return {
        "iss": issuer,
        "aud": client.client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_SECONDS,
        "jti": jti,
        "sub": record.session.user_id,
        "sid": record.session.sid,
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }


async def end_sessions(
    ports: LogoutPorts, records: Iterable[SessionRecord], *, reason: str
) -> int:
    """Revoke and notify for sessions the store has just ended (see the module
    docstring); return how many. ``reason`` names the cause in the security event
    (``logout``, ``user_deactivated``, ``password_changed``, ...).

    The sessions are already gone, so a store failure must not stop the rest: a client
    that cannot be looked up counts as deleted (its grants are revoked: fail closed), a
    grant whose revocation fails does not keep the other grants or the logout tokens
    from going out (event ``session_revocation_failed``), and the first such failure is
    raised at the end, once everything else was done.
    """
    now = ports.clock.now()
    notices: list[LogoutNotice] = []
    failure: StoreUnavailable | None = None
    count = 0
    for record in records:
        count += 1
        session = record.session
        known: dict[str, Client | None] = {}
        for client_id in dict.fromkeys((*session.clients, *(g.client_id for g in record.grants))):
            try:
                known[client_id] = await ports.clients.find(client_id)
            except StoreUnavailable:
                known[client_id] = None
        for grant in record.grants:
            client = known.get(grant.client_id)
            # A client deleted since is no reason to keep its tokens.
            if client is not None and not client.revoke_tokens_on_logout:
                continue
            try:
                # A code of this grant may still be on its way to the client: marked ended,
                # its exchange revokes what it issues (domain.oauth.session_ended_key).
                await ports.store.claim_once(session_ended_key(grant.grant_id),
                                             now + ports.code_seconds, now)
                await ports.store.revoke_grant(grant.grant_id, now)
            except StoreUnavailable as exc:
                failure = failure or exc
                ports.events.emit("session_revocation_failed", sid=session.sid,
                                  user_id=session.user_id, client_id=grant.client_id)
        for client in known.values():
            if client is None or client.backchannel_logout_uri is None:
                continue
            claims = logout_token_claims(ports.issuer, client, record,
                                         ports.token_generator.new("lt_"), now)
            notices.append(LogoutNotice(
                client_id=client.client_id, uri=client.backchannel_logout_uri,
                logout_token=ports.signer.sign(claims, typ="logout+jwt"), sid=session.sid,
                user_id=session.user_id))
        ports.events.emit("session_ended", reason=reason, sid=session.sid,
                          user_id=session.user_id, clients=len(known))
    if notices:
        ports.sender.send(notices)
    if failure is not None:
        raise failure
    return count


async def end_session(ports: LogoutPorts, id_hash: str, *, reason: str) -> SessionRecord | None:
    """End the session with this ``id_hash`` (a logout from its browser)."""
    record = await ports.store.end_session(id_hash, ports.clock.now())
    if record is not None:
        await end_sessions(ports, (record,), reason=reason)
    return record


async def end_session_by_sid(ports: LogoutPorts, sid: str, *, reason: str) -> bool:
    """End the session with this public ``sid`` (the admin API, ``/account``)."""
    record = await ports.store.end_session_by_sid(sid, ports.clock.now())
    if record is not None:
        await end_sessions(ports, (record,), reason=reason)
    return record is not None


async def end_user_sessions(ports: LogoutPorts, user_id: str, *, reason: str) -> int:
    """End every session of the user (deprovisioning, a password change, an MFA reset,
    ``auth-service session revoke --user``); return how many ended."""
    records = await ports.store.end_user_sessions(user_id, ports.clock.now())
    return await end_sessions(ports, records, reason=reason)

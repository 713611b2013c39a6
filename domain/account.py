"""The signed-in user's own account: their sessions and consents, and taking them back.

What ``/account`` does, as use cases over ports only:

- :func:`end_own_session` signs out one of the user's sessions (another browser, a lost
  device). A ``sid`` is public (it is in ID tokens), so it is ended only when it names a
  session of this very user; otherwise nothing happens.
- :func:`withdraw_consent` deletes a consent and revokes every grant issued under it, so
  the client's refresh tokens (and access tokens) for the user stop working at once, long
  after the session that issued them ended. A code issued just before the withdrawal, or
  a refresh token the store did not record under the consent, is stopped by the code
  exchange and the refresh, which read the consent again (:mod:`domain.oauth`).
"""

from __future__ import annotations

from typing import Protocol

from domain.consent import ConsentRecord
from domain.logout import LogoutPorts, end_session_by_sid
from ports.events import Events
from ports.store import ConsentStore, TokenStore


async def end_own_session(ports: LogoutPorts, user_id: str, sid: str, *, reason: str) -> bool:
    """End the live session ``sid`` if it is one of ``user_id``'s (revocation and
    back-channel logout as for any logout, :mod:`domain.logout`); False, and nothing
    ended, when the user has no such live session (already ended, or another user's)."""
    # A sid never changes owner, so the session read here is the one ended below.
    sessions = await ports.store.list_sessions(user_id, ports.clock.now())
    if not any(session.sid == sid for session in sessions):
        return False
    return await end_session_by_sid(ports, sid, reason=reason)


class WithdrawalStore(ConsentStore, TokenStore, Protocol):
    """What withdrawing a consent needs from the store."""


async def withdraw_consent(
    store: WithdrawalStore, events: Events, *, user_id: str, client_id: str, now: int
) -> ConsentRecord | None:
    """Delete the user's consent for the client and revoke every live grant issued under
    it (event ``consent_withdrawn``); None when there was no consent. Of concurrent
    withdrawals one gets the record, so the grants are revoked once."""
    record = await store.withdraw_consent(user_id, client_id, now)
    if record is None:
        return None
    revoked = 0
    for grant in record.grants:
        revoked += await store.revoke_grant(grant.grant_id, now)
    events.emit("consent_withdrawn", user_id=user_id, client_id=client_id,
                grants=len(record.grants), tokens_revoked=revoked)
    return record

"""A code issued in a session that ends before the code is exchanged (a logout, a
deprovisioning) gets no tokens: the logout marks the session's grants ended, and the
exchange, which claims the same mark, revokes what it issued and refuses."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from domain.client_directory import ClientDirectory
from domain.clients import ClientRegistry
from domain.logout import LogoutPorts, end_session
from domain.oauth import (
    OAuthError,
    create_authorization_code,
    exchange_authorization_code,
    pkce_s256,
)
from domain.sessions import Session, SessionGrant, open_session
from domain.tokens import hash_token
from ports.logout import LogoutNotice
from ports.security import SecretsTokenGenerator
from tests.unit.oauth_doubles import CONFIDENTIAL, ISSUER, REDIRECT, T0, VERIFIER, World


class _Sender:
    def send(self, notices: Sequence[LogoutNotice]) -> None:
        pass


def _logout(world: World) -> LogoutPorts:
    return LogoutPorts(
        store=world.store, clients=ClientDirectory(ClientRegistry([CONFIDENTIAL]), world.store),
        signer=world.signer, sender=_Sender(), events=world.events, clock=world.clock,
        token_generator=SecretsTokenGenerator(), issuer=ISSUER, code_seconds=600)


async def _session_code(world: World, grant_id: str) -> tuple[Session, str]:
    await world.ensure_user("user-1")
    await world.store.grant_consent("user-1", CONFIDENTIAL.client_id, ("openid", "read"), T0)
    _, session = await open_session(world.store, SecretsTokenGenerator(), user_id="user-1",
                                    auth_time=T0, amr=("pwd",), now=T0)
    await world.store.add_session_grant(
        session.id_hash, SessionGrant(CONFIDENTIAL.client_id, grant_id), T0 + 600, T0)
    code = await create_authorization_code(
        world.ports, client=CONFIDENTIAL, redirect_uri=REDIRECT, scope="openid read",
        user_id="user-1", nonce=None, code_challenge=pkce_s256(VERIFIER),
        code_challenge_method="S256", auth_time=T0, mfa_verified=False, sid=session.sid,
        acr="pwd", amr=("pwd",), grant_id=grant_id)
    return session, code


async def test_a_code_whose_session_ended_before_the_exchange_gets_no_tokens() -> None:
    world = World()
    session, code = await _session_code(world, "gr_ended")
    assert await end_session(_logout(world), session.id_hash, reason="logout") is not None
    with pytest.raises(OAuthError) as raised:
        await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER)
    assert raised.value.error == "invalid_grant"
    assert raised.value.event == "grant_refused_session_ended"
    # What the exchange saved before it found the session ended is revoked.
    saved = (await world.store.export_access_tokens(None, 10, T0)).records
    assert [t.grant_id for t in saved] == ["gr_ended"] and not saved[0].is_active(T0)


async def test_a_code_exchanged_before_the_logout_is_revoked_by_it() -> None:
    world = World()
    session, code = await _session_code(world, "gr_live")
    issued = await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT,
                                               VERIFIER)
    token = await world.store.get_access_token(hash_token(issued.access_token), T0)
    assert token is not None and token.is_active(T0)
    await end_session(_logout(world), session.id_hash, reason="logout")
    token = await world.store.get_access_token(hash_token(issued.access_token), T0)
    assert token is not None and not token.is_active(T0)

"""``domain.sso.next_step``: what an authorization request needs, given the session."""

from __future__ import annotations

import msgspec
import pytest

from adapters.memory.store import MemoryStore
from domain.authorization_request import AuthorizationRequest
from domain.entities import User
from domain.sessions import Session, amr_of
from domain.sso import AskConsent, Authorized, SignIn, StepUp, Unmet, next_step
from tests.unit.oauth_doubles import PUBLIC, REDIRECT

NOW = 1_700_000_000
FIRST_PARTY = msgspec.structs.replace(PUBLIC, first_party=True)
REQUEST = AuthorizationRequest(client_id=PUBLIC.client_id, redirect_uri=REDIRECT,
                               scope="openid profile")


async def _world(*, totp: bool = False) -> tuple[MemoryStore, Session]:
    store = MemoryStore()
    user = await store.create_user(User(id="u1", user_name="alice"))
    if totp:
        await store.set_totp(user.id, "sealed-seed", confirmed=True)
    session = Session(id_hash="h", sid="sid_1", user_id=user.id, auth_time=NOW - 100,
                      amr=amr_of(second_factor=None), acr="pwd", created_at=NOW - 100,
                      idle_exp=NOW + 1000, exp=NOW + 9000)
    return store, session


def _request(**fields: object) -> AuthorizationRequest:
    return msgspec.structs.replace(REQUEST, **fields)


async def test_no_session_signs_in_or_with_prompt_none_is_login_required() -> None:
    store, _ = await _world()
    assert await next_step(store, REQUEST, FIRST_PARTY, None, NOW) == SignIn("no_session")
    silent = await next_step(store, _request(prompt=("none",)), FIRST_PARTY, None, NOW)
    assert isinstance(silent, Unmet) and silent.error == "login_required"


async def test_a_live_session_of_a_first_party_client_is_authorized() -> None:
    store, session = await _world()
    assert await next_step(store, REQUEST, FIRST_PARTY, session, NOW) == Authorized()


@pytest.mark.parametrize(("fields", "reason"), [
    ({"prompt": ("login",)}, "prompt"), ({"prompt": ("select_account",)}, "prompt"),
    ({"max_age": 99}, "max_age"), ({"max_age": 0}, "max_age"),
    ({"hint_sub": "someone-else"}, "id_token_hint"),
])
async def test_what_makes_a_session_sign_in_again(fields: dict[str, object], reason: str) -> None:
    store, session = await _world()
    request = _request(**fields)
    assert await next_step(store, request, FIRST_PARTY, session, NOW) == SignIn(reason)
    # Right after that sign-in, the request is answered.
    assert await next_step(store, request, FIRST_PARTY, session, NOW,
                           signed_in_now=True) == Authorized()


async def test_max_age_not_yet_reached_and_the_right_hint_are_fine() -> None:
    store, session = await _world()
    request = _request(max_age=100, hint_sub="u1")
    assert await next_step(store, request, FIRST_PARTY, session, NOW) == Authorized()


async def test_step_up_only_when_the_user_has_a_factor() -> None:
    store, session = await _world(totp=True)
    wants = _request(acr_values=("mfa",))
    assert await next_step(store, wants, FIRST_PARTY, session, NOW) == StepUp(("totp",))
    silent = await next_step(store, _request(acr_values=("mfa",), prompt=("none",)),
                             FIRST_PARTY, session, NOW)
    assert isinstance(silent, Unmet) and silent.error == "interaction_required"
    requiring = msgspec.structs.replace(FIRST_PARTY, require_mfa=True)
    assert await next_step(store, REQUEST, requiring, session, NOW) == StepUp(("totp",))
    stepped = msgspec.structs.replace(session, amr=amr_of(second_factor="otp"), acr="mfa")
    assert await next_step(store, wants, FIRST_PARTY, stepped, NOW) == Authorized()
    plain, session = await _world()
    # No factor: acr_values is voluntary, the code says what was done.
    assert await next_step(plain, wants, FIRST_PARTY, session, NOW) == Authorized()


async def test_consent_is_asked_for_the_scopes_not_granted_yet() -> None:
    store, session = await _world()
    assert await next_step(store, REQUEST, PUBLIC, session, NOW) == AskConsent(
        ("openid", "profile"))
    await store.grant_consent("u1", PUBLIC.client_id, ("openid",), NOW)
    assert await next_step(store, REQUEST, PUBLIC, session, NOW) == AskConsent(("profile",))
    silent = await next_step(store, _request(prompt=("none",)), PUBLIC, session, NOW)
    assert isinstance(silent, Unmet) and silent.error == "consent_required"
    await store.grant_consent("u1", PUBLIC.client_id, ("profile",), NOW)
    assert await next_step(store, REQUEST, PUBLIC, session, NOW) == Authorized()
    assert await next_step(store, _request(prompt=("consent",)), PUBLIC, session,
                           NOW) == AskConsent(("openid", "profile"))


async def test_a_deactivated_users_session_counts_as_none() -> None:
    store, session = await _world()
    user = await store.get_user("u1")
    await store.replace_user(msgspec.structs.replace(user, active=False))
    assert await next_step(store, REQUEST, FIRST_PARTY, session, NOW) == SignIn("no_session")

"""domain/passkeys.py over the memory store, the py_webauthn adapter and a software
authenticator: the rules the use cases add to the ceremonies (single-use challenges under
concurrency, the owner, the counter, names, the last way in)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from adapters.memory.store import MemoryStore
from adapters.webauthn_ceremonies import WebauthnCeremonies
from domain.entities import Passkey, User
from domain.passkeys import (
    CHALLENGE_BYTES,
    PasskeyAccepted,
    PasskeyRefused,
    authenticate_with_passkey,
    authentication_options,
    decode_challenge,
    encode_challenge,
    new_challenge,
    passkey_name,
    register_passkey,
    registration_options,
    remove_passkey,
    user_handle,
)
from tests.doubles import RecordingEvents
from tests.e2e.passkey_authenticator import SoftwareAuthenticator

NOW = 1_700_000_000
CEREMONIES = WebauthnCeremonies(rp_id="auth.test", rp_name="auth.test",
                                origin="http://auth.test")


async def _user_with_passkey(
    store: MemoryStore, authenticator: SoftwareAuthenticator, name: str = "alice",
    password_hash: str | None = "hash",
) -> tuple[User, Passkey]:
    user = await store.create_user(User(user_name=name), password_hash=password_hash)
    challenge = new_challenge()
    options = await registration_options(store, CEREMONIES, user=user, challenge=challenge)
    assert isinstance(options, str)
    passkey = await register_passkey(
        store, CEREMONIES, RecordingEvents(), user=user, response=authenticator.create(options),
        challenge=challenge, challenge_exp=NOW + 300, name="Laptop", now=NOW)
    assert isinstance(passkey, Passkey)
    return user, passkey


async def _sign_in(store: MemoryStore, events: RecordingEvents, response: str,
                   challenge: bytes, user_id: str | None = None
                   ) -> PasskeyAccepted | PasskeyRefused:
    return await authenticate_with_passkey(
        store, CEREMONIES, events, response=response, challenge=challenge,
        challenge_exp=NOW + 600, user_id=user_id, client_ip="192.0.2.1", now=NOW + 10)


@pytest.mark.parametrize("typed, kept", [
    ("Laptop", "Laptop"), ("  Work \t laptop  ", "Work laptop"), ("é" * 64, "é" * 64),
    ("", None), ("   ", None), ("x" * 65, None), ("a\x00b", None), ("a\x7fb", None),
    ("\ud800", None), (None, None),
])
def test_passkey_names_are_trimmed_and_bounded(typed: str | None, kept: str | None) -> None:
    assert passkey_name(typed) == kept


def test_a_challenge_round_trips_and_nothing_else_passes_for_one() -> None:
    challenge = new_challenge()
    assert len(challenge) == CHALLENGE_BYTES and challenge != new_challenge()
    assert decode_challenge(encode_challenge(challenge)) == challenge
    for bad in ("", "abc", encode_challenge(b"x" * 16), "!" * 43):
        assert decode_challenge(bad) is None


async def test_a_user_id_too_long_for_a_user_handle_gets_no_passkey() -> None:
    store = MemoryStore()
    user = await store.create_user(User(id="u" * 65, user_name="long"))
    assert await registration_options(store, CEREMONIES, user=user,
                                      challenge=new_challenge()) == PasskeyRefused("unavailable")
    short = await store.create_user(User(id="u" * 64, user_name="short"))
    assert isinstance(await registration_options(store, CEREMONIES, user=short,
                                                 challenge=new_challenge()), str)


async def test_of_concurrent_uses_of_one_challenge_exactly_one_signs_in() -> None:
    store = MemoryStore()
    authenticator = SoftwareAuthenticator(counter=False)
    user, _ = await _user_with_passkey(store, authenticator)
    challenge = new_challenge()
    response = authenticator.get(authentication_options(CEREMONIES, challenge=challenge))
    events = RecordingEvents()
    outcomes = await asyncio.gather(*(_sign_in(store, events, response, challenge)
                                      for _ in range(8)))
    accepted = [o for o in outcomes if isinstance(o, PasskeyAccepted)]
    assert len(accepted) == 1 and accepted[0].user_id == user.id
    assert outcomes.count(PasskeyRefused("replayed")) == 7


async def test_a_counterless_passkey_signs_in_again_and_a_counter_must_grow() -> None:
    store = MemoryStore()
    counterless = SoftwareAuthenticator(counter=False)
    await _user_with_passkey(store, counterless)
    for _ in range(3):  # 0 and 0, every time
        challenge = new_challenge()
        response = counterless.get(authentication_options(CEREMONIES, challenge=challenge))
        assert isinstance(await _sign_in(store, RecordingEvents(), response, challenge),
                          PasskeyAccepted)
    counting = SoftwareAuthenticator()
    await _user_with_passkey(store, counting, "bob")
    challenge = new_challenge()
    options = authentication_options(CEREMONIES, challenge=challenge)
    first = await _sign_in(store, RecordingEvents(), counting.get(options, sign_count=7),
                           challenge)
    assert isinstance(first, PasskeyAccepted) and first.passkey.sign_count == 7
    events = RecordingEvents()
    challenge = new_challenge()
    options = authentication_options(CEREMONIES, challenge=challenge)
    # The counter stood still: a copy of the key used in between, or a replay.
    still = await _sign_in(store, events, counting.get(options, sign_count=7), challenge)
    assert still == PasskeyRefused("sign_count")
    assert events.named("passkey_sign_count_regressed")[0]["received"] == 7


async def test_the_second_factor_must_be_the_users_own_passkey() -> None:
    store = MemoryStore()
    alices, bobs = SoftwareAuthenticator(), SoftwareAuthenticator()
    alice, alices_key = await _user_with_passkey(store, alices, "alice")
    await _user_with_passkey(store, bobs, "bob")
    challenge = new_challenge()
    options = authentication_options(CEREMONIES, challenge=challenge, passkeys=[alices_key])
    refused = await _sign_in(store, RecordingEvents(),
                             bobs.get(options, credential=bobs.credentials[0]), challenge,
                             user_id=alice.id)
    assert refused == PasskeyRefused("other_user")
    challenge = new_challenge()
    options = authentication_options(CEREMONIES, challenge=challenge, passkeys=[alices_key])
    # No user verification is needed for a second factor (the password was the first).
    accepted = await _sign_in(store, RecordingEvents(),
                              alices.get(options, user_verified=False, omit_user_handle=True),
                              challenge, user_id=alice.id)
    assert isinstance(accepted, PasskeyAccepted) and accepted.method == "hwk"


async def test_a_sign_in_alone_needs_the_user_handle_and_user_verification() -> None:
    store = MemoryStore()
    authenticator = SoftwareAuthenticator(synced=True)
    user, _ = await _user_with_passkey(store, authenticator)
    assert user_handle(user.id) == user.id.encode()
    for knobs, reason in (({"omit_user_handle": True}, "malformed"),
                          ({"user_verified": False}, "not_verified"),
                          ({"user_handle": b"someone-else"}, "other_user")):
        challenge = new_challenge()
        response = authenticator.get(authentication_options(CEREMONIES, challenge=challenge),
                                     **knobs)
        assert await _sign_in(store, RecordingEvents(), response, challenge) == \
            PasskeyRefused(reason)
    challenge = new_challenge()
    response = authenticator.get(authentication_options(CEREMONIES, challenge=challenge))
    accepted = await _sign_in(store, RecordingEvents(), response, challenge)
    assert isinstance(accepted, PasskeyAccepted) and accepted.method == "swk"


async def test_a_response_made_for_another_challenge_is_refused() -> None:
    store = MemoryStore()
    authenticator = SoftwareAuthenticator()
    await _user_with_passkey(store, authenticator)
    response = authenticator.get(authentication_options(CEREMONIES, challenge=new_challenge()))
    assert await _sign_in(store, RecordingEvents(), response, new_challenge()) == \
        PasskeyRefused("not_verified")


async def test_the_only_passkey_of_a_user_without_a_password_cannot_be_removed() -> None:
    store = MemoryStore()
    first, second = SoftwareAuthenticator(), SoftwareAuthenticator()
    user, key = await _user_with_passkey(store, first, password_hash=None)
    events = RecordingEvents()
    assert await remove_passkey(store, events, user_id=user.id,
                                credential_id=key.credential_id) == "last_way_in"
    challenge = new_challenge()
    options = await registration_options(store, CEREMONIES, user=user, challenge=challenge)
    assert isinstance(options, str)
    await register_passkey(store, CEREMONIES, events, user=user,
                           response=second.create(options), challenge=challenge,
                           challenge_exp=NOW + 300, name="Phone", now=NOW + 1)
    assert await remove_passkey(store, events, user_id=user.id,
                                credential_id=key.credential_id) == "removed"
    assert await remove_passkey(store, events, user_id=user.id,
                                credential_id=key.credential_id) == "missing"
    assert [p.name for p in await store.list_passkeys(user.id)] == ["Phone"]


def test_a_counter_that_went_back_is_logged_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    from entrypoints.metrics import Metrics
    from entrypoints.telemetry import TelemetryEvents

    events = TelemetryEvents(Metrics("memory"))
    with caplog.at_level(logging.INFO, logger="auth_service.events"):
        events.emit("passkey_sign_count_regressed", user_id="u-1", stored=5, received=3)
        events.emit("passkey_registered", user_id="u-1")
    levels = {r.getMessage(): r.levelno for r in caplog.records}
    assert levels == {"passkey_sign_count_regressed": logging.WARNING,
                      "passkey_registered": logging.INFO}

"""domain.device_grant over the memory store: starting a device authorization, the user
code's lookup and its throttle, the user's decision, and the device's polls (RFC 8628)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from adapters.jose_signer import JoseSigner
from adapters.memory.store import MemoryStore
from domain.client_directory import ClientDirectory
from domain.clients import AUTH_NONE, GRANT_DEVICE_CODE, Client, ClientRegistry
from domain.device import USER_CODE_ALPHABET, hash_user_code
from domain.device_grant import (
    DeviceAuthorizationResponse,
    DevicePolicy,
    DevicePorts,
    GuessesThrottled,
    MfaRequired,
    PendingRequest,
    UnknownUserCode,
    approve_device_authorization,
    deny_device_authorization,
    look_up_user_code,
    new_user_code,
    read_resources,
    redeem_device_code,
    start_device_authorization,
)
from domain.entities import Email, User
from domain.oauth import OAuthError, OAuthPorts, TokenPolicy
from domain.sessions import Session, SessionPolicy, amr_of, open_session
from domain.tokens import hash_token
from ports.security import SecretsTokenGenerator
from tests.doubles import FakeClock, RecordingEvents

ISSUER = "https://auth.example.test"
SIGNER = JoseSigner.generated()
DEVICE_GRANTS = frozenset({GRANT_DEVICE_CODE, "refresh_token"})
SCOPES = frozenset({"openid", "profile", "offline_access", "read", "groups", "scim:read"})

TV = Client(client_id="tv", name="Living-room TV", grant_types=DEVICE_GRANTS, scopes=SCOPES,
            auth_methods=frozenset({AUTH_NONE}))
CONSOLE = Client(client_id="console", name="Console", grant_types=DEVICE_GRANTS,
                 scopes=SCOPES, auth_methods=frozenset({AUTH_NONE}))
TRUSTED = Client(client_id="trusted", name="Trusted", grant_types=DEVICE_GRANTS,
                 scopes=SCOPES | {"email"}, auth_methods=frozenset({AUTH_NONE}),
                 first_party=True)
STRICT = Client(client_id="strict", name="Strict", grant_types=DEVICE_GRANTS, scopes=SCOPES,
                auth_methods=frozenset({AUTH_NONE}), require_mfa=True)
WEB = Client(client_id="web", name="Web", grant_types=frozenset({"authorization_code"}),
             redirect_uris=("https://web.example/cb",), scopes=SCOPES,
             auth_methods=frozenset({AUTH_NONE}))


class World:
    def __init__(self, **policy: Any) -> None:
        self.store = MemoryStore()
        self.clock = FakeClock()
        self.events = RecordingEvents()
        self.draws: Iterator[str] | None = None
        oauth = OAuthPorts(store=self.store, clock=self.clock,
                           token_generator=SecretsTokenGenerator(), events=self.events,
                           signer=SIGNER, policy=TokenPolicy(issuer=ISSUER))
        self.ports = DevicePorts(
            oauth=oauth, store=self.store,
            clients=ClientDirectory(ClientRegistry([TV, CONSOLE, TRUSTED, STRICT, WEB]),
                                    self.store),
            sessions=SessionPolicy(), draw_user_code=self._draw,
            policy=DevicePolicy(verification_uri=f"{ISSUER}/device", **policy))

    def _draw(self) -> str:
        return next(self.draws) if self.draws is not None else new_user_code()

    async def start(self, client: Client = TV, scope: str | None = "openid offline_access read",
                    resources: tuple[str, ...] = ()) -> DeviceAuthorizationResponse:
        return await start_device_authorization(self.ports, client, scope=scope,
                                                resources=resources)

    async def session(self, user_name: str = "alice", *, mfa: bool = False) -> Session:
        user = await self.store.find_user_by_name(user_name)
        if user is None:
            user = await self.store.create_user(User(user_name=user_name))
        _, session = await open_session(
            self.store, SecretsTokenGenerator(), user_id=user.id,
            auth_time=self.clock.now() - 30, amr=amr_of(second_factor="otp" if mfa else None),
            now=self.clock.now())
        return session

    async def approve(self, started: DeviceAuthorizationResponse, session: Session) -> Any:
        return await approve_device_authorization(self.ports,
                                                  hash_user_code(started.user_code), session)

    async def redeem(self, started: DeviceAuthorizationResponse, client: Client = TV
                     ) -> dict[str, Any]:
        response = await redeem_device_code(self.ports, client, started.device_code)
        result: dict[str, Any] = msgspec.to_builtins(response)
        return result

    async def refused(self, started: DeviceAuthorizationResponse, client: Client = TV) -> str:
        with pytest.raises(OAuthError) as caught:
            await redeem_device_code(self.ports, client, started.device_code)
        return caught.value.error

    async def active(self, access_token: str) -> bool:
        token = await self.store.get_access_token(hash_token(access_token), self.clock.now())
        return token is not None and token.is_active(self.clock.now())


# Starting


async def test_a_device_authorization_has_the_rfc_8628_fields_and_stores_only_hashes() -> None:
    w = World()
    started = await w.start(resources=("https://api.example.test/",))

    assert started.device_code.startswith("dc_")
    assert re.fullmatch(f"[{USER_CODE_ALPHABET}]{{4}}-[{USER_CODE_ALPHABET}]{{4}}",
                        started.user_code)
    assert started.verification_uri == f"{ISSUER}/device"
    assert started.verification_uri_complete == f"{ISSUER}/device?user_code={started.user_code}"
    assert (started.expires_in, started.interval) == (600, 5)
    [record] = (await w.store.export_device_authorizations(None, 10, w.clock.now())).records
    assert record.device_code_hash == hash_token(started.device_code)
    assert record.user_code_hash == hash_user_code(started.user_code)
    assert (record.client_id, record.scope, record.resources) == (
        "tv", "openid offline_access read", ("https://api.example.test/",))
    assert record.exp == w.clock.now() + 600 and record.status == "pending"
    assert started.device_code not in repr(record) and started.user_code not in repr(record)


async def test_a_taken_user_code_is_drawn_again() -> None:
    w = World()
    w.draws = iter(["BCDFGHJK", "BCDFGHJK", "BCDFGHJK", "LMNPQRST"])
    first = await w.start()
    second = await w.start()
    assert (first.user_code, second.user_code) == ("BCDF-GHJK", "LMNP-QRST")


async def test_no_free_user_code_is_temporarily_unavailable() -> None:
    w = World()
    w.draws = iter(["BCDFGHJK"] * 20)
    await w.start()
    with pytest.raises(OAuthError) as caught:
        await w.start()
    assert caught.value.error == "temporarily_unavailable"


@pytest.mark.parametrize(("client", "scope", "error"), [
    (WEB, "openid", "unauthorized_client"),
    (TV, None, "invalid_scope"),
    (TV, "openid email", "invalid_scope"),  # not the client's
    (TV, "read scim:read", "invalid_scope"),  # a service scope: never from a user
    (TV, "read\x7f", "invalid_scope"),
])
async def test_refused_device_authorizations(client: Client, scope: str | None,
                                             error: str) -> None:
    w = World()
    with pytest.raises(OAuthError) as caught:
        await w.start(client, scope)
    assert caught.value.error == error
    assert not (await w.store.export_device_authorizations(None, 10, w.clock.now())).records


@pytest.mark.parametrize("resource", [
    "/relative", "api.example.test", "https://api.example.test/#frag", "https://a b/",
    "https://api.example.test/" + "x" * 2048, "1https://x/", "https://[::1/",
])
def test_a_resource_must_be_an_absolute_uri_without_fragment(resource: str) -> None:
    with pytest.raises(OAuthError) as caught:
        read_resources([resource])
    assert caught.value.error == "invalid_target"


def test_resources_keep_their_order_without_duplicates() -> None:
    assert read_resources(["https://b/", "urn:example:api", "https://b/"]) == (
        "https://b/", "urn:example:api")
    with pytest.raises(OAuthError):
        read_resources([f"https://r{i}/" for i in range(11)])


# The verification page's use cases


async def test_a_user_code_is_found_typed_in_lower_case_with_dashes_and_spaces() -> None:
    w = World()
    started = await w.start()
    typed = " " + started.user_code.lower().replace("-", " - ") + " "
    found = await look_up_user_code(w.ports, typed, client_ip="192.0.2.1")
    assert isinstance(found, PendingRequest)
    assert found.client.client_id == "tv" and found.authorization.scope == (
        "openid offline_access read")


async def test_wrong_expired_and_decided_codes_look_the_same() -> None:
    w = World()
    decided = await w.start()
    await w.approve(decided, await w.session())
    expired = await w.start()
    w.clock.advance(601)
    outcomes = [await look_up_user_code(w.ports, code, client_ip="192.0.2.1")
                for code in ("BCDF-GHJK", expired.user_code, decided.user_code, "AEIOU", "")]
    assert all(isinstance(outcome, UnknownUserCode) for outcome in outcomes)


async def test_wrong_codes_are_throttled_per_address_and_a_right_one_costs_nothing() -> None:
    w = World(failures_per_address=3)
    started = await w.start()
    for _ in range(2):
        await look_up_user_code(w.ports, "BCDF-GHJK", client_ip="192.0.2.1")
    # Right codes give their count back: any number of them leave one wrong guess.
    for _ in range(5):
        assert isinstance(await look_up_user_code(w.ports, started.user_code,
                                                  client_ip="192.0.2.1"), PendingRequest)
    assert isinstance(await look_up_user_code(w.ports, "BCDF-GHJL", client_ip="192.0.2.1"),
                      UnknownUserCode)
    refused = await look_up_user_code(w.ports, started.user_code, client_ip="192.0.2.1")
    assert isinstance(refused, GuessesThrottled) and 0 < refused.retry_after <= 900
    # Another address is not refused by these failures.
    assert isinstance(await look_up_user_code(w.ports, started.user_code,
                                              client_ip="192.0.2.2"), PendingRequest)
    assert w.events.named("device_user_code_throttled")[0]["scope"] == "address"
    w.clock.advance(900)
    fresh = await w.start()
    assert isinstance(await look_up_user_code(w.ports, fresh.user_code,
                                              client_ip="192.0.2.1"), PendingRequest)


async def test_wrong_codes_from_every_address_share_a_global_limit() -> None:
    w = World(failures_per_address=0, failures=4)
    started = await w.start()
    for i in range(4):
        await look_up_user_code(w.ports, "BCDF-GHJK", client_ip=f"198.51.100.{i}")
    refused = await look_up_user_code(w.ports, started.user_code, client_ip="203.0.113.9")
    assert isinstance(refused, GuessesThrottled)
    assert w.events.named("device_user_code_throttled")[0]["scope"] == "all"


async def test_text_that_cannot_be_a_user_code_is_not_looked_up_nor_counted() -> None:
    w = World(failures_per_address=1)
    started = await w.start()
    for text in ("A" * 8, "x" * 40, "BCDF-GHJ", "BCDF-GHJKL"):
        assert isinstance(await look_up_user_code(w.ports, text, client_ip="192.0.2.1"),
                          UnknownUserCode)
    assert isinstance(await look_up_user_code(w.ports, started.user_code,
                                              client_ip="192.0.2.1"), PendingRequest)


async def test_approval_records_the_session_and_the_consent() -> None:
    w = World()
    started = await w.start()
    session = await w.session(mfa=True)
    decided = await w.approve(started, session)
    assert (decided.status, decided.user_id, decided.auth_time, decided.amr, decided.acr,
            decided.sid) == ("approved", session.user_id, session.auth_time, session.amr,
                             session.acr, session.sid)
    consent = await w.store.get_consent(session.user_id, "tv")
    assert consent is not None and consent.scopes == ("offline_access", "openid", "read")
    # Once only.
    assert isinstance(await w.approve(started, session), UnknownUserCode)


async def test_a_first_party_client_gets_no_consent_record() -> None:
    w = World()
    started = await w.start(TRUSTED)
    session = await w.session()
    assert (await w.approve(started, session)).status == "approved"
    assert await w.store.get_consent(session.user_id, "trusted") is None
    assert (await w.redeem(started, TRUSTED))["access_token"]


async def test_a_client_requiring_mfa_needs_a_session_with_a_second_factor() -> None:
    w = World()
    started = await w.start(STRICT)
    refused = await w.approve(started, await w.session())
    assert isinstance(refused, MfaRequired) and refused.client.client_id == "strict"
    assert await w.refused(started, STRICT) == "authorization_pending"
    w.clock.advance(5)
    assert (await w.approve(started, await w.session(mfa=True))).status == "approved"
    assert (await w.redeem(started, STRICT))["access_token"]


# Polling


async def test_the_polls_of_rfc_8628_section_3_5() -> None:
    w = World()
    started = await w.start()
    assert await w.refused(started) == "authorization_pending"
    w.clock.advance(2)
    assert await w.refused(started) == "slow_down"  # the interval is now 10 seconds
    w.clock.advance(6)
    assert await w.refused(started) == "slow_down"  # 6 < 10: 15 seconds now
    w.clock.advance(15)
    assert await w.refused(started) == "authorization_pending"
    session = await w.session(mfa=True)
    await w.approve(started, session)
    w.clock.advance(15)

    body = await w.redeem(started)

    assert body["token_type"] == "Bearer" and body["scope"] == "openid offline_access read"
    assert body["refresh_token"].startswith("rt_") and await w.active(body["access_token"])
    claims = jwt.decode(body["id_token"], KeySet.import_key_set(SIGNER.jwks())).claims
    assert (claims["iss"], claims["sub"], claims["aud"]) == (ISSUER, session.user_id, "tv")
    assert (claims["sid"], claims["auth_time"], claims["acr"], claims["amr"]) == (
        session.sid, session.auth_time, "mfa", ["pwd", "otp", "mfa"])
    assert "nonce" not in claims
    token = await w.store.get_access_token(hash_token(body["access_token"]), w.clock.now())
    assert token is not None and token.sub == session.user_id and token.mfa_verified
    assert token.auth_time == session.auth_time
    # Taken once: the code is spent.
    w.clock.advance(5)
    assert await w.refused(started) == "invalid_grant"
    assert w.events.named("token_issued") == [{"grant_type": GRANT_DEVICE_CODE,
                                               "client_id": "tv"}]


async def test_the_id_token_says_whether_the_email_is_verified() -> None:
    w = World()
    alice = await w.store.create_user(User(user_name="alice", emails=(
        Email(value="Alice@Example.test", primary=True),)))
    session = await w.session()

    async def email_claims() -> tuple[Any, Any]:
        started = await w.start(TRUSTED, scope="openid email")
        await w.approve(started, session)
        w.clock.advance(5)
        body = await w.redeem(started, TRUSTED)
        claims = jwt.decode(body["id_token"], KeySet.import_key_set(SIGNER.jwks())).claims
        return claims.get("email"), claims.get("email_verified")

    assert await email_claims() == ("Alice@Example.test", False)
    await w.store.set_verified_email(alice.id, "alice@example.test")
    assert await email_claims() == ("Alice@Example.test", True)


async def test_the_grant_is_recorded_in_the_live_session_and_the_consent() -> None:
    w = World()
    started = await w.start()
    session = await w.session()
    await w.approve(started, session)
    body = await w.redeem(started)
    token = await w.store.get_access_token(hash_token(body["access_token"]), w.clock.now())
    assert token is not None and token.grant_id is not None

    ended = await w.store.end_session(session.id_hash, w.clock.now())
    assert ended is not None and [(g.client_id, g.grant_id) for g in ended.grants] == [
        ("tv", token.grant_id)]
    withdrawn = await w.store.withdraw_consent(session.user_id, "tv", w.clock.now())
    assert withdrawn is not None
    assert [g.grant_id for g in withdrawn.grants] == [token.grant_id]
    assert withdrawn.grants[0].exp == session.auth_time + TokenPolicy(
        issuer=ISSUER).refresh_max_lifetime_seconds


async def test_a_session_ended_after_the_approval_leaves_the_grant_out_of_sessions() -> None:
    w = World()
    started = await w.start()
    session = await w.session()
    await w.approve(started, session)
    await w.store.end_session(session.id_hash, w.clock.now())
    body = await w.redeem(started)
    assert await w.active(body["access_token"])


async def test_without_openid_or_offline_access_only_an_access_token() -> None:
    w = World()
    started = await w.start(scope="read")
    await w.approve(started, await w.session())
    body = await w.redeem(started)
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}


async def test_a_denial_is_access_denied_once() -> None:
    w = World()
    started = await w.start()
    denied = await deny_device_authorization(w.ports, hash_user_code(started.user_code),
                                             await w.session())
    assert not isinstance(denied, UnknownUserCode) and denied.status == "denied"
    assert await w.refused(started) == "access_denied"
    w.clock.advance(5)
    assert await w.refused(started) == "invalid_grant"


async def test_an_expired_device_code_is_expired_token() -> None:
    w = World()
    started = await w.start()
    w.clock.advance(600)
    assert await w.refused(started) == "expired_token"
    # Approving it is no longer possible either.
    assert isinstance(await w.approve(started, await w.session()), UnknownUserCode)


async def test_another_clients_device_code_is_invalid_grant_and_leaves_it_alone() -> None:
    w = World()
    started = await w.start()
    await w.approve(started, await w.session())
    for _ in range(3):
        assert await w.refused(started, CONSOLE) == "invalid_grant"
    # The stranger's polls neither took the tokens nor slowed the device down.
    assert (await w.redeem(started))["access_token"]


@pytest.mark.parametrize("edit", [
    lambda code: code + "x",
    lambda code: code.rsplit(".", 2)[0] + ".9999999999." + code.rsplit(".", 1)[1],
    lambda code: "dc_" + "A" * 600,
    lambda code: code.replace("dc_", "ac_", 1),
])
async def test_an_edited_device_code_is_invalid_grant(edit: Any) -> None:
    w = World()
    started = await w.start()
    await w.approve(started, await w.session())
    with pytest.raises(OAuthError) as caught:
        await redeem_device_code(w.ports, TV, edit(started.device_code))
    assert caught.value.error == "invalid_grant"
    assert (await w.redeem(started))["access_token"]


async def test_a_client_without_the_grant_is_unauthorized() -> None:
    w = World()
    started = await w.start()
    assert await w.refused(started, WEB) == "unauthorized_client"


async def test_a_user_deactivated_after_the_approval_gets_nothing() -> None:
    w = World()
    started = await w.start()
    session = await w.session()
    await w.approve(started, session)
    user = await w.store.get_user(session.user_id)
    await w.store.replace_user(msgspec.structs.replace(user, active=False))
    assert await w.refused(started) == "invalid_grant"
    assert "grant_refused_inactive_user" in w.events.names()


async def test_a_consent_withdrawn_after_the_approval_revokes_the_grant() -> None:
    w = World()
    started = await w.start()
    session = await w.session()
    await w.approve(started, session)
    await w.store.withdraw_consent(session.user_id, "tv", w.clock.now())
    assert await w.refused(started) == "access_denied"
    assert "device_grant_refused_no_consent" in w.events.names()
    # What was saved before the refusal is revoked, the refresh token with it.
    now = w.clock.now()
    tokens = (await w.store.export_access_tokens(None, 10, now)).records
    assert tokens and not any(token.active for token in tokens)
    assert not (await w.store.export_refresh_tokens(None, 10, now)).records


async def test_a_scope_taken_from_the_client_since_the_approval_is_refused() -> None:
    w = World()
    started = await w.start()
    await w.approve(started, await w.session())
    narrowed = msgspec.structs.replace(TV, scopes=frozenset({"openid", "offline_access"}))
    assert await w.refused(started, narrowed) == "invalid_grant"

"""Use cases: create_authorization_code and exchange_authorization_code (RFC 6749 4.1, RFC 7636)."""

from __future__ import annotations

import base64
import hashlib

import msgspec
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from domain.oauth import (
    OAuthError,
    create_authorization_code,
    exchange_authorization_code,
    pkce_s256,
)
from domain.tokens import hash_token
from tests.unit.oauth_doubles import (
    CONFIDENTIAL,
    ISSUER,
    LEGACY,
    OTHER,
    PUBLIC,
    REDIRECT,
    SERVICE,
    T0,
    VERIFIER,
    World,
)


def _keys(world: World) -> KeySet:
    return KeySet.import_key_set(world.signer.jwks())  # type: ignore[arg-type]


def test_pkce_s256_matches_rfc7636_appendix_b() -> None:
    assert (
        pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


async def test_exchange_issues_access_refresh_and_id_token() -> None:
    world = World()
    code = await world.code(mfa_verified=True)
    response = await exchange_authorization_code(
        world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER
    )
    assert response.scope == "openid offline_access read"
    assert response.refresh_token is not None and response.refresh_token.startswith("rt_")
    access = await world.store.get_access_token(hash_token(response.access_token), T0)
    assert access is not None and access.sub == "user-1" and access.mfa_verified
    assert access.auth_time == T0 - 5
    refresh = await world.store.get_refresh_token(hash_token(response.refresh_token), T0)
    assert refresh is not None and refresh.grant_id == access.grant_id
    assert "token_issued" in world.events.names()

    assert response.id_token is not None
    token = jwt.decode(response.id_token, _keys(world))
    claims = token.claims
    assert claims["iss"] == ISSUER and claims["sub"] == "user-1" and claims["aud"] == "app"
    assert claims["iat"] == T0 and claims["exp"] > T0 and claims["auth_time"] == T0 - 5
    assert claims["nonce"] == "n-1"
    # A code from no session: amr and acr follow mfa_verified (RFC 8176 "mfa" with "otp").
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == "mfa"
    assert "sid" not in claims
    digest = hashlib.sha256(response.access_token.encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def test_id_token_without_mfa_and_nonce() -> None:
    world = World()
    code = await world.code(nonce=None)
    response = await exchange_authorization_code(
        world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER
    )
    assert response.id_token is not None
    claims = jwt.decode(response.id_token, _keys(world)).claims
    assert claims["amr"] == ["pwd"] and claims["acr"] == "pwd"
    assert "nonce" not in claims


async def test_a_code_from_a_session_carries_its_sid_acr_amr_and_grant_into_the_tokens() -> None:
    world = World()
    await world.ensure_user("user-1")
    await world.store.grant_consent("user-1", CONFIDENTIAL.client_id, ("openid", "read"), T0)
    code = await create_authorization_code(
        world.ports, client=CONFIDENTIAL, redirect_uri=REDIRECT, scope="openid read",
        user_id="user-1", nonce=None, code_challenge=pkce_s256(VERIFIER),
        code_challenge_method="S256", auth_time=T0 - 60, mfa_verified=True,
        sid="sid_abc", acr="mfa", amr=("pwd", "otp", "mfa"), grant_id="gr_given")
    response = await exchange_authorization_code(
        world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER)
    assert response.id_token is not None
    claims = jwt.decode(response.id_token, _keys(world)).claims
    assert (claims["sid"], claims["acr"], claims["amr"]) == (
        "sid_abc", "mfa", ["pwd", "otp", "mfa"])
    assert claims["auth_time"] == T0 - 60
    access = await world.store.get_access_token(hash_token(response.access_token), T0)
    assert access is not None and access.grant_id == "gr_given"


async def test_no_id_token_without_openid_and_no_refresh_without_offline_access() -> None:
    world = World()
    code = await world.code(scope="read")
    response = await exchange_authorization_code(
        world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER
    )
    assert response.id_token is None and response.refresh_token is None


async def test_replay_is_refused_and_revokes_every_token_of_the_code() -> None:
    world = World()
    code = await world.code()
    first = await exchange_authorization_code(
        world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER
    )
    with pytest.raises(OAuthError) as caught:
        await exchange_authorization_code(
        world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER
    )
    assert caught.value.error == "invalid_grant"
    assert caught.value.event == "authorization_code_replayed"
    assert "authorization_code_replayed" in world.events.names()
    access = await world.store.get_access_token(hash_token(first.access_token), T0)
    assert access is not None and not access.is_active(T0)
    assert first.refresh_token is not None
    assert await world.store.get_refresh_token(hash_token(first.refresh_token), T0) is None


async def test_a_replay_between_take_and_save_still_revokes_the_new_tokens() -> None:
    """The replay's revocation runs before the redeeming request has saved its tokens."""
    from adapters.memory import MemoryStore
    from domain.entities import AccessToken, RefreshToken

    replays: list[OAuthError] = []
    saved: list[AccessToken] = []

    class ReplayDuringSave(MemoryStore):
        async def save_tokens(
            self, access: AccessToken, refresh: RefreshToken | None, now: int
        ) -> None:
            if not replays:
                # The code is taken already: a replay finds only its tombstone and revokes
                # a grant that has no tokens yet.
                with pytest.raises(OAuthError) as caught:
                    await exchange_authorization_code(
                        world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER
                    )
                replays.append(caught.value)
            saved.append(access)
            await super().save_tokens(access, refresh, now)

    world = World(store=ReplayDuringSave())
    code = await world.code()
    with pytest.raises(OAuthError) as caught:
        await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER)
    assert caught.value.error == "invalid_grant"
    assert [r.event for r in replays] == ["authorization_code_replayed"]
    [access] = saved
    record = await world.store.get_access_token(access.token_hash, T0)
    assert record is not None and not record.active
    assert (await world.store.counts(T0)).refresh_tokens == 0


async def test_replay_also_revokes_tokens_rotated_from_the_code() -> None:
    from domain.oauth import refresh

    world = World()
    code = await world.code()
    first = await exchange_authorization_code(
        world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER
    )
    assert first.refresh_token is not None
    rotated = await refresh(world.ports, CONFIDENTIAL, first.refresh_token, None)
    with pytest.raises(OAuthError):
        await exchange_authorization_code(
        world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER
    )
    access = await world.store.get_access_token(hash_token(rotated.access_token), T0)
    assert access is not None and not access.active


async def test_expired_code_is_invalid_grant() -> None:
    world = World()
    code = await world.code()
    world.clock.advance(600)
    with pytest.raises(OAuthError) as caught:
        await exchange_authorization_code(
        world.ports, CONFIDENTIAL, code, REDIRECT, VERIFIER
    )
    assert caught.value.error == "invalid_grant"


async def test_code_of_another_client_is_refused() -> None:
    world = World()
    code = await world.code()
    with pytest.raises(OAuthError) as caught:
        await exchange_authorization_code(world.ports, OTHER, code, REDIRECT, VERIFIER)
    assert caught.value.error == "invalid_grant"


@pytest.mark.parametrize(
    "redirect_uri", [None, REDIRECT + "/", REDIRECT.upper(), REDIRECT + "?x=1"]
)
async def test_redirect_uri_must_match_exactly(redirect_uri: str | None) -> None:
    world = World()
    code = await world.code()
    with pytest.raises(OAuthError) as caught:
        await exchange_authorization_code(world.ports, CONFIDENTIAL, code, redirect_uri, VERIFIER)
    assert caught.value.error == "invalid_grant"


@pytest.mark.parametrize("verifier", [None, "w" * 43, "short", VERIFIER + "x"])
async def test_wrong_or_missing_verifier_is_refused(verifier: str | None) -> None:
    world = World()
    code = await world.code()
    with pytest.raises(OAuthError) as caught:
        await exchange_authorization_code(world.ports, CONFIDENTIAL, code, REDIRECT, verifier)
    assert caught.value.error == "invalid_grant"


async def test_verifier_without_stored_challenge_is_refused() -> None:
    world = World()
    code = await world.code(LEGACY, verifier=None)
    with pytest.raises(OAuthError) as caught:
        await exchange_authorization_code(world.ports, LEGACY, code, REDIRECT, VERIFIER)
    assert caught.value.error == "invalid_grant"


async def test_confidential_client_that_opted_out_may_skip_pkce() -> None:
    world = World()
    code = await world.code(LEGACY, verifier=None)
    response = await exchange_authorization_code(world.ports, LEGACY, code, REDIRECT, None)
    assert response.access_token.startswith("tk_")


async def test_confidential_client_needs_pkce_by_default() -> None:
    world = World()
    with pytest.raises(OAuthError) as caught:
        await world.code(CONFIDENTIAL, verifier=None)
    assert caught.value.error == "invalid_request"


async def test_code_without_challenge_is_refused_once_the_client_needs_pkce() -> None:
    # The code was issued while the client had opted out; the opt-out was withdrawn since.
    world = World()
    code = await world.code(LEGACY, verifier=None)
    strict = msgspec.structs.replace(LEGACY, require_pkce=True)
    with pytest.raises(OAuthError) as caught:
        await exchange_authorization_code(world.ports, strict, code, REDIRECT, None)
    assert caught.value.error == "invalid_grant"


async def test_public_client_with_pkce() -> None:
    world = World()
    code = await world.code(PUBLIC)
    response = await exchange_authorization_code(world.ports, PUBLIC, code, REDIRECT, VERIFIER)
    assert response.refresh_token is not None


async def test_malformed_code_is_invalid_grant_without_store_access() -> None:
    with pytest.raises(OAuthError) as caught:
        await exchange_authorization_code(World().ports, CONFIDENTIAL, "nope", REDIRECT, VERIFIER)
    assert caught.value.error == "invalid_grant"


async def test_client_without_the_grant_cannot_exchange() -> None:
    world = World()
    code = await world.code()
    with pytest.raises(OAuthError) as caught:
        await exchange_authorization_code(world.ports, SERVICE, code, REDIRECT, VERIFIER)
    assert caught.value.error == "unauthorized_client"


# create_authorization_code


async def _create(world: World, **overrides: object) -> str:
    args: dict[str, object] = dict(
        client=CONFIDENTIAL, redirect_uri=REDIRECT, scope="openid", user_id="u",
        nonce=None, code_challenge=pkce_s256(VERIFIER), code_challenge_method="S256",
        auth_time=T0, mfa_verified=False,
    )
    args.update(overrides)
    return await create_authorization_code(world.ports, **args)  # type: ignore[arg-type]


async def test_code_value_is_prefixed_and_stored_as_a_hash() -> None:
    world = World()
    code = await _create(world)
    assert code.startswith("ac_") and len(code) >= 46
    taken = await world.store.take_code(hash_token(code), T0, remember_until=T0 + 60)
    assert taken is not None and getattr(taken, "exp", None) == T0 + 600


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": "too-short", "code_challenge_method": "S256"}, "invalid_request"),
        ({"code_challenge": None, "code_challenge_method": "S256"}, "invalid_request"),
        ({"client": PUBLIC, "code_challenge": None, "code_challenge_method": None},
         "invalid_request"),
        ({"redirect_uri": REDIRECT + "x"}, "invalid_request"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
        ({"client": SERVICE}, "unauthorized_client"),
    ],
)
async def test_create_refuses(overrides: dict[str, object], error: str) -> None:
    with pytest.raises(OAuthError) as caught:
        await _create(World(), **overrides)
    assert caught.value.error == error

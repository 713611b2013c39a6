"""Client authentication with a signed JWT (RFC 7523): the rules of
domain.client_assertion, over the memory store, joserfc and a fake clock."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from adapters.jose_assertions import JoseAssertionCodec
from adapters.memory.store import MemoryStore
from adapters.secret_sealing import AesGcmSecretSealer
from domain.client_assertion import (
    ASSERTION_TYPE,
    AssertionPolicy,
    AssertionPorts,
    ClientAssertionRefused,
    authenticate_with_assertion,
    seal_client_secret,
)
from domain.client_directory import ClientDirectory
from domain.client_keys import ClientKeys
from domain.clients import (
    AUTH_BASIC,
    AUTH_PRIVATE_KEY_JWT,
    AUTH_SECRET_JWT,
    Client,
    ClientRegistry,
    ClientSecret,
)
from domain.outbound import OutboundPolicy
from ports.outbound import OutboundFailed
from tests.doubles import T0, FakeClock

ISSUER = "https://auth.example"
TOKEN_ENDPOINT = f"{ISSUER}/oauth/token"
SHARED = "shared-secret-0123456789abcdefghijklmnop"
RSA = RSAKey.generate_key(2048, private=True, parameters={"kid": "rsa-1"})
EC = ECKey.generate_key("P-256", private=True, parameters={"kid": "ec-1"})
OKP = OKPKey.generate_key("Ed25519", private=True, parameters={"kid": "ed-1"})
SEALER = AesGcmSecretSealer([os.urandom(32)])


def _jwks(*keys: Any) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


class FakeFetcher:
    """A ``JsonFetcher`` serving documents the test sets; counts the fetches."""

    def __init__(self) -> None:
        self.documents: dict[str, Any] = {}
        self.fetches = 0

    async def fetch_json(self, url: str) -> Any:
        self.fetches += 1
        if url not in self.documents:
            raise OutboundFailed("the server answered 404")
        return self.documents[url]


JWKS_URI = "https://client.example/jwks.json"


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.store = MemoryStore()
        self.fetcher = FakeFetcher()
        self.fetcher.documents[JWKS_URI] = _jwks(RSA)
        codec = JoseAssertionCodec()
        secret_jwt = Client(
            client_id="hmac", name="hmac", auth_methods=frozenset({AUTH_SECRET_JWT}),
            secrets=(seal_client_secret("hmac", SHARED, SEALER, now=T0),))
        registry = ClientRegistry([
            Client(client_id="keys", name="keys", auth_methods=frozenset({AUTH_PRIVATE_KEY_JWT}),
                   jwks=_jwks(RSA, EC, OKP)),
            Client(client_id="remote", name="remote", jwks_uri=JWKS_URI,
                   auth_methods=frozenset({AUTH_PRIVATE_KEY_JWT})),
            Client(client_id="basic", name="basic", secrets=(ClientSecret.of(SHARED),),
                   auth_methods=frozenset({AUTH_BASIC})),
            secret_jwt,
        ])
        self.keys = ClientKeys(codec, self.fetcher, OutboundPolicy())
        self.ports = AssertionPorts(
            clients=ClientDirectory(registry, self.store), store=self.store, codec=codec,
            keys=self.keys, sealer=SEALER,
            policy=AssertionPolicy(issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT))

    def claims(self, client_id: str, **overrides: Any) -> dict[str, Any]:
        now = self.clock.now()
        claims = {"iss": client_id, "sub": client_id, "aud": TOKEN_ENDPOINT,
                  "exp": now + 60, "iat": now, "jti": str(uuid.uuid4())}
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    async def authenticate(self, assertion: str, *, client_id: str | None = None,
                           endpoint: str = TOKEN_ENDPOINT) -> Client:
        return await authenticate_with_assertion(
            self.ports, assertion_type=ASSERTION_TYPE, assertion=assertion,
            client_id=client_id, endpoint=endpoint, now=self.clock.now())


def sign(claims: dict[str, Any], key: Any, alg: str, kid: str | None = "default") -> str:
    header = {"alg": alg}
    if kid == "default":
        kid = key.kid if not isinstance(key, OctKey) else None
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(header, claims, key, algorithms=[alg])


@pytest.fixture
def world() -> World:
    return World()


@pytest.mark.parametrize(("key", "alg"), [(RSA, "RS256"), (EC, "ES256"), (OKP, "EdDSA"),
                                          (OKP, "Ed25519")])
async def test_private_key_jwt_with_each_algorithm(world: World, key: Any, alg: str) -> None:
    client = await world.authenticate(sign(world.claims("keys"), key, alg))
    assert client.client_id == "keys"


async def test_a_key_without_kid_is_found_by_its_type(world: World) -> None:
    client = await world.authenticate(sign(world.claims("keys"), EC, "ES256", kid=None))
    assert client.client_id == "keys"


async def test_the_jti_is_single_use(world: World) -> None:
    assertion = sign(world.claims("keys"), RSA, "RS256")
    await world.authenticate(assertion)
    with pytest.raises(ClientAssertionRefused, match="already used"):
        await world.authenticate(assertion)
    world.clock.advance(20)  # still within exp: a replay is refused, not forgotten
    with pytest.raises(ClientAssertionRefused, match="already used"):
        await world.authenticate(assertion)


async def test_the_jti_is_required(world: World) -> None:
    with pytest.raises(ClientAssertionRefused, match="needs a jti"):
        await world.authenticate(sign(world.claims("keys", jti=None), RSA, "RS256"))


@pytest.mark.parametrize("aud", [ISSUER, TOKEN_ENDPOINT, [ISSUER, TOKEN_ENDPOINT]])
async def test_the_issuer_or_the_token_endpoint_is_the_audience(
    world: World, aud: Any
) -> None:
    await world.authenticate(sign(world.claims("keys", aud=aud), RSA, "RS256"))


async def test_the_endpoint_called_is_an_audience_too(world: World) -> None:
    introspect = f"{ISSUER}/oauth/introspect"
    assertion = sign(world.claims("keys", aud=introspect), RSA, "RS256")
    with pytest.raises(ClientAssertionRefused, match="has aud"):
        await world.authenticate(assertion)  # at the token endpoint
    await world.authenticate(assertion, endpoint=introspect)


@pytest.mark.parametrize("aud", ["https://other.example/oauth/token", [TOKEN_ENDPOINT, "x"],
                                 [], None, 7])
async def test_a_wrong_audience_is_refused(world: World, aud: Any) -> None:
    with pytest.raises(ClientAssertionRefused, match=r"has aud .* must be the issuer"):
        await world.authenticate(sign(world.claims("keys", aud=aud), RSA, "RS256"))


async def test_time_claims(world: World) -> None:
    now = world.clock.now()
    cases = [
        ({"exp": None}, "needs exp"),
        ({"exp": "soon"}, "needs exp"),
        ({"exp": now - 31}, "has expired"),
        ({"exp": now + 3600}, "lives too long"),
        ({"iat": now + 120}, "iat in the future"),
        ({"nbf": now + 120}, "nbf in the future"),
        ({"iat": "x"}, "iat that is not a NumericDate"),
    ]
    for overrides, message in cases:
        with pytest.raises(ClientAssertionRefused, match=message):
            await world.authenticate(sign(world.claims("keys", **overrides), RSA, "RS256"))
    # Within the leeway: a client clock a little ahead or behind is fine.
    await world.authenticate(sign(world.claims("keys", iat=now + 20, exp=now - 20), RSA, "RS256"))
    await world.authenticate(sign(world.claims("keys", exp=now + 330), RSA, "RS256"))


async def test_an_assertion_expires_by_the_clock(world: World) -> None:
    assertion = sign(world.claims("keys"), RSA, "RS256")
    world.clock.advance(60 + 30)
    with pytest.raises(ClientAssertionRefused, match="has expired"):
        await world.authenticate(assertion)


async def test_iss_and_sub_are_the_client_id(world: World) -> None:
    with pytest.raises(ClientAssertionRefused, match="iss and sub"):
        await world.authenticate(sign(world.claims("keys", sub="other"), RSA, "RS256"))
    with pytest.raises(ClientAssertionRefused, match="client_id differs"):
        await world.authenticate(sign(world.claims("keys"), RSA, "RS256"), client_id="basic")
    with pytest.raises(ClientAssertionRefused, match="client authentication failed") as caught:
        await world.authenticate(sign(world.claims("nobody"), RSA, "RS256"))
    assert caught.value.client_id == "nobody"  # the failure counts against the id named


async def test_alg_none_is_refused(world: World) -> None:
    import base64
    import json

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    unsigned = f"{part({'alg': 'none'})}.{part(world.claims('keys'))}."
    with pytest.raises(ClientAssertionRefused, match="alg 'none' is not accepted"):
        await world.authenticate(unsigned)


async def test_an_hmac_keyed_with_the_public_key_is_refused(world: World) -> None:
    # Algorithm confusion: the public key (known to everyone) used as an HMAC secret.
    public_pem = RSA.as_pem(private=False)
    forged = jwt.encode({"alg": "HS256", "kid": "rsa-1"}, world.claims("keys"),
                        OctKey.import_key(public_pem.decode().replace("-", "")),
                        algorithms=["HS256"])
    with pytest.raises(ClientAssertionRefused,
                       match=r"signed with 'HS256' \(client_secret_jwt\), but this client "
                             "authenticates with private_key_jwt"):
        await world.authenticate(forged)


async def test_another_keys_signature_is_refused(world: World) -> None:
    stranger = RSAKey.generate_key(2048, private=True, parameters={"kid": "rsa-1"})
    with pytest.raises(ClientAssertionRefused, match="signature does not verify"):
        await world.authenticate(sign(world.claims("keys"), stranger, "RS256"))
    with pytest.raises(ClientAssertionRefused, match="no key of the client can verify ES256"):
        await world.authenticate(sign(world.claims("keys"), EC, "ES256", kid="rsa-1"))


async def test_an_unknown_kid_is_refused(world: World) -> None:
    with pytest.raises(ClientAssertionRefused, match="no key of the client has kid 'nope'"):
        await world.authenticate(sign(world.claims("keys"), RSA, "RS256", kid="nope"))


async def test_the_method_must_be_the_clients(world: World) -> None:
    with pytest.raises(ClientAssertionRefused,
                       match="authenticates with client_secret_basic"):
        await world.authenticate(sign(world.claims("basic"), OctKey.import_key(SHARED), "HS256"))
    with pytest.raises(ClientAssertionRefused, match="authenticates with client_secret_jwt"):
        await world.authenticate(sign(world.claims("hmac"), RSA, "RS256"))


async def test_the_assertion_type_and_value_are_required(world: World) -> None:
    with pytest.raises(ClientAssertionRefused, match="client_assertion_type must be"):
        await authenticate_with_assertion(world.ports, assertion_type="jwt", assertion="x",
                                          client_id=None, endpoint=TOKEN_ENDPOINT, now=T0)
    with pytest.raises(ClientAssertionRefused, match="client_assertion is required"):
        await authenticate_with_assertion(world.ports, assertion_type=ASSERTION_TYPE,
                                          assertion=None, client_id="keys",
                                          endpoint=TOKEN_ENDPOINT, now=T0)
    with pytest.raises(ClientAssertionRefused, match="malformed"):
        await world.authenticate("not.a.jwt")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
async def test_client_secret_jwt(world: World, alg: str) -> None:
    client = await world.authenticate(sign(world.claims("hmac"), OctKey.import_key(SHARED), alg))
    assert client.client_id == "hmac"
    wrong = OctKey.import_key("x" * 40)
    with pytest.raises(ClientAssertionRefused, match="signature does not verify"):
        await world.authenticate(sign(world.claims("hmac"), wrong, alg))


def test_a_client_secret_jwt_secret_is_kept_sealed_never_in_clear() -> None:
    held = seal_client_secret("hmac", SHARED, SEALER, now=T0, expires_at=T0 + 10)
    assert held.sealed is not None and SHARED not in held.sealed
    assert SHARED not in repr(held)
    assert (held.created_at, held.expires_at) == (T0, T0 + 10)
    assert SEALER.open(held.sealed, "client_secret_jwt:hmac").plaintext == SHARED


async def test_client_secret_jwt_needs_a_live_sealed_secret(world: World) -> None:
    now = world.clock.now()
    cases = {
        "expired": (seal_client_secret("h2", SHARED, SEALER, now=now, expires_at=now - 1),),
        "not sealed": (ClientSecret.of(SHARED),),
        # Sealed for another client: does not open for this one.
        "moved": (seal_client_secret("hmac", SHARED, SEALER, now=now),),
    }
    for name, secrets in cases.items():
        await world.store.create_client(Client(
            client_id="h2", name=name, secrets=secrets, auth_methods=frozenset({AUTH_SECRET_JWT})))
        with pytest.raises(ClientAssertionRefused, match="no usable secret"):
            await world.authenticate(sign(world.claims("h2"), OctKey.import_key(SHARED), "HS256"))
        await world.store.delete_client("h2")


async def test_a_stored_client_authenticates_too(world: World) -> None:
    await world.store.create_client(Client(
        client_id="stored", name="stored", jwks=_jwks(EC),
        auth_methods=frozenset({AUTH_PRIVATE_KEY_JWT})))
    client = await world.authenticate(sign(world.claims("stored"), EC, "ES256"))
    assert client.client_id == "stored"


# jwks_uri: fetched, cached, refreshed on an unknown kid at most once per interval


async def test_jwks_uri_is_fetched_once_and_cached(world: World) -> None:
    for _ in range(3):
        await world.authenticate(sign(world.claims("remote"), RSA, "RS256"))
    assert world.fetcher.fetches == 1
    world.clock.advance(world.keys.max_age)
    await world.authenticate(sign(world.claims("remote"), RSA, "RS256"))
    assert world.fetcher.fetches == 2


async def test_an_unknown_kid_refreshes_the_jwks_uri_at_most_once_per_interval(
    world: World,
) -> None:
    await world.authenticate(sign(world.claims("remote"), RSA, "RS256"))
    world.clock.advance(world.keys.refresh_interval)
    rotated = RSAKey.generate_key(2048, private=True, parameters={"kid": "rsa-2"})
    world.fetcher.documents[JWKS_URI] = _jwks(rotated)
    await world.authenticate(sign(world.claims("remote"), rotated, "RS256"))
    assert world.fetcher.fetches == 2
    # Made-up kids right after: no fetch each time, a clear refusal instead.
    for kid in ("a", "b", "c"):
        with pytest.raises(ClientAssertionRefused, match=f"no key of the client has kid '{kid}'"):
            await world.authenticate(sign(world.claims("remote"), rotated, "RS256", kid=kid))
    assert world.fetcher.fetches == 2  # the rotation's fetch was just now
    world.clock.advance(world.keys.refresh_interval)
    with pytest.raises(ClientAssertionRefused, match="kid 'd'"):
        await world.authenticate(sign(world.claims("remote"), rotated, "RS256", kid="d"))
    assert world.fetcher.fetches == 3


async def test_a_failing_jwks_uri_keeps_the_cached_keys(world: World) -> None:
    await world.authenticate(sign(world.claims("remote"), RSA, "RS256"))
    del world.fetcher.documents[JWKS_URI]
    world.clock.advance(world.keys.max_age)
    await world.authenticate(sign(world.claims("remote"), RSA, "RS256"))
    assert world.fetcher.fetches == 2


async def test_an_unreachable_or_forbidden_jwks_uri_is_a_clear_refusal(world: World) -> None:
    del world.fetcher.documents[JWKS_URI]
    with pytest.raises(ClientAssertionRefused, match="could not be fetched: the server answered"):
        await world.authenticate(sign(world.claims("remote"), RSA, "RS256"))
    await world.store.create_client(Client(
        client_id="plain", name="plain", jwks_uri="http://client.example/jwks.json",
        auth_methods=frozenset({AUTH_PRIVATE_KEY_JWT})))
    with pytest.raises(ClientAssertionRefused, match="jwks_uri is not allowed: it must use https"):
        await world.authenticate(sign(world.claims("plain"), RSA, "RS256"))


async def test_concurrent_requests_share_one_fetch(world: World) -> None:
    import asyncio

    results = await asyncio.gather(*(
        world.authenticate(sign(world.claims("remote"), RSA, "RS256")) for _ in range(5)))
    assert len(results) == 5 and world.fetcher.fetches == 1


def test_a_jwk_set_gives_only_public_signature_keys() -> None:
    codec = JoseAssertionCodec()
    private = {"keys": [RSA.as_dict(private=True), {"kty": "oct", "k": "c2VjcmV0"},
                        {**EC.as_dict(private=False), "use": "enc"}]}
    keys = codec.public_keys(private)
    assert keys.has_kid("rsa-1") and not keys.has_kid("ec-1")
    assert all(not key.is_private for key in keys.keys)
    from ports.client_assertion import InvalidAssertion
    for bad in ({"keys": "x"}, {}, {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}):
        with pytest.raises(InvalidAssertion):
            codec.public_keys(bad)


async def test_a_rotation_without_kid_refreshes_after_a_failed_signature(world: World) -> None:
    await world.authenticate(sign(world.claims("remote"), RSA, "RS256", kid=None))
    rotated = RSAKey.generate_key(2048, private=True)
    world.fetcher.documents[JWKS_URI] = _jwks(rotated)
    with pytest.raises(ClientAssertionRefused, match="signature does not verify"):
        await world.authenticate(sign(world.claims("remote"), rotated, "RS256", kid=None))
    assert world.fetcher.fetches == 1  # within the refresh interval: no fetch
    world.clock.advance(world.keys.refresh_interval)
    await world.authenticate(sign(world.claims("remote"), rotated, "RS256", kid=None))
    assert world.fetcher.fetches == 2

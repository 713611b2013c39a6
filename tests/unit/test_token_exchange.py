"""Token exchange (RFC 8693) through the use case (domain.token_exchange), and its client
metadata (``token_exchange_audiences``)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from domain.client_metadata import (
    ClientMetadataError,
    MetadataSource,
    client_metadata,
    parse_client_metadata,
)
from domain.clients import GRANT_TOKEN_EXCHANGE, Client
from domain.oauth import (
    OAuthError,
    exchange_authorization_code,
    introspect,
    issue_client_credentials,
    revoke,
)
from domain.resources import ResourceServers
from domain.token_exchange import (
    TOKEN_TYPE_ACCESS_TOKEN,
    TOKEN_TYPE_JWT,
    ExchangeRequest,
    ExchangeResponse,
    exchange_token,
)
from domain.tokens import hash_token
from tests.unit.oauth_doubles import CONFIDENTIAL, OTHER, REDIRECT, VERIFIER, World

ORDERS = "https://orders.example.test"
REPORTS = "urn:example:reports"
BILLING = "https://billing.example.test"
SCOPES = frozenset({"openid", "offline_access", "read", "write", "reports"})
APP = msgspec.structs.replace(CONFIDENTIAL, scopes=SCOPES)
#: The API the user's app calls; it exchanges the user's token to call the others.
ORDERS_API = msgspec.structs.replace(
    OTHER, client_id="orders-api", resource_uri=ORDERS, resource_scopes=frozenset({"read"}),
    grant_types=frozenset({"client_credentials", GRANT_TOKEN_EXCHANGE}),
    scopes=frozenset({"read"}), token_exchange_audiences=(REPORTS, BILLING))
REPORTS_API = msgspec.structs.replace(
    OTHER, client_id="reports-api", resource_uri=REPORTS,
    resource_scopes=frozenset({"reports", "read"}), access_token_format="jwt",
    grant_types=frozenset({"client_credentials", GRANT_TOKEN_EXCHANGE}),
    token_exchange_audiences=(BILLING,))
BILLING_API = msgspec.structs.replace(
    OTHER, client_id="billing-api", resource_uri=BILLING, resource_scopes=frozenset({"read"}))
#: Holds the grant type but may exchange for nothing.
NO_AUDIENCES = msgspec.structs.replace(ORDERS_API, client_id="no-aud",
                                       resource_uri=None, token_exchange_audiences=())


def _world() -> World:
    return World(resources=ResourceServers((ORDERS_API, REPORTS_API, BILLING_API)))


async def _user_token(world: World, *resources: str,
                      scope: str = "openid offline_access read reports") -> str:
    # For the orders API (which exchanges it) and the reports API, as the app asked.
    code = await world.code(APP, scope=scope, resources=resources or (ORDERS, REPORTS))
    issued = await exchange_authorization_code(world.ports, APP, code, REDIRECT, VERIFIER)
    return issued.access_token


def _request(subject: str, **extra: Any) -> ExchangeRequest:
    fields: dict[str, Any] = {"subject_token": subject,
                              "subject_token_type": TOKEN_TYPE_ACCESS_TOKEN,
                              "resources": (REPORTS,)}
    fields.update(extra)
    return ExchangeRequest(**fields)


async def _refused(world: World, client: Client, request: ExchangeRequest) -> str:
    with pytest.raises(OAuthError) as caught:
        await exchange_token(world.ports, client, request)
    assert "token_exchanged" not in world.events.names()
    return caught.value.error


async def test_the_exchanged_token_is_for_the_target_with_the_actor_and_narrowed_scope() -> None:
    world = _world()
    subject = await _user_token(world)
    result = await exchange_token(world.ports, ORDERS_API, _request(subject, resources=(),
                                                                    audiences=("reports-api",)))
    assert isinstance(result, ExchangeResponse)
    assert result.issued_token_type == TOKEN_TYPE_ACCESS_TOKEN
    assert result.token_type == "Bearer"
    # Identity scopes stay with the user's app; reports defines read and reports.
    assert result.scope == "read reports"
    record = await world.store.get_access_token(hash_token(result.access_token),
                                                world.clock.now())
    subject_record = await world.store.get_access_token(hash_token(subject), world.clock.now())
    assert record.audience == (REPORTS,) and record.act == ("orders-api",)
    assert record.client_id == "orders-api" and record.sub == "user-1"
    assert record.grant_id == subject_record.grant_id
    seen = await introspect(world.ports, REPORTS_API, result.access_token, None)
    assert seen.active and seen.act == {"sub": "orders-api"} and seen.aud == REPORTS
    assert world.events.named("token_exchanged") == [{
        "client_id": "orders-api", "subject_client_id": "app", "actor": "orders-api",
        "audience": REPORTS}]


async def test_a_jwt_target_gets_a_jwt_with_the_act_claim() -> None:
    world = _world()
    result = await exchange_token(world.ports, ORDERS_API, _request(
        await _user_token(world), requested_token_type=TOKEN_TYPE_JWT, scope="reports"))
    keys = KeySet.import_key_set(world.signer.jwks())
    claims = jwt.decode(result.access_token, keys).claims
    assert claims["act"] == {"sub": "orders-api"} and claims["aud"] == REPORTS
    assert claims["scope"] == "reports" and claims["client_id"] == "orders-api"
    assert claims["sub"] == "user-1"


async def test_an_exchanged_token_exchanged_again_nests_the_act_claim() -> None:
    world = _world()
    first = await exchange_token(world.ports, ORDERS_API, _request(await _user_token(world)))
    second = await exchange_token(world.ports, REPORTS_API, _request(
        first.access_token, resources=(BILLING,)))
    seen = await introspect(world.ports, BILLING_API, second.access_token, None)
    assert seen.act == {"sub": "reports-api", "act": {"sub": "orders-api"}}
    assert seen.scope == "read" and seen.client_id == "reports-api"


async def test_the_actor_tokens_client_is_the_actor() -> None:
    world = _world()
    subject = await _user_token(world)
    batch = msgspec.structs.replace(OTHER, client_id="batch", scopes=frozenset({"read"}))
    actor = await issue_client_credentials(world.ports, batch, "read")
    result = await exchange_token(world.ports, ORDERS_API, _request(
        subject, actor_token=actor.access_token, actor_token_type=TOKEN_TYPE_ACCESS_TOKEN))
    seen = await introspect(world.ports, REPORTS_API, result.access_token, None)
    assert seen.act == {"sub": "batch"}


async def test_the_exchanged_token_never_outlives_the_subject_token() -> None:
    world = _world()
    subject = await _user_token(world)
    world.clock.advance(3000)  # the subject token has 600 s left; the new one would get 3600
    result = await exchange_token(world.ports, ORDERS_API, _request(subject))
    assert result.expires_in == 600


async def test_revoking_the_subjects_grant_revokes_the_exchanged_token() -> None:
    world = _world()
    code = await world.code(APP, scope="openid offline_access read", resources=(ORDERS,))
    issued = await exchange_authorization_code(world.ports, APP, code, REDIRECT, VERIFIER)
    result = await exchange_token(world.ports, ORDERS_API, _request(issued.access_token))
    assert (await introspect(world.ports, REPORTS_API, result.access_token, None)).active
    assert issued.refresh_token is not None
    assert await revoke(world.ports, APP, issued.refresh_token, None)
    assert not (await introspect(world.ports, REPORTS_API, result.access_token, None)).active


async def test_a_dpop_proof_binds_the_exchanged_token() -> None:
    world = _world()
    result = await exchange_token(world.ports, ORDERS_API, _request(await _user_token(world)),
                                  binding="jkt:0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
    assert result.token_type == "DPoP"
    seen = await introspect(world.ports, REPORTS_API, result.access_token, None)
    assert seen.cnf == {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}


@pytest.mark.parametrize("client", [APP, NO_AUDIENCES])
async def test_a_client_not_allowed_to_exchange_is_unauthorized_client(client: Client) -> None:
    world = _world()
    subject = await _user_token(world)
    assert await _refused(world, client, _request(subject)) == "unauthorized_client"


@pytest.mark.parametrize("target", [
    {"resources": (ORDERS,)},  # a resource server, but not one orders-api may exchange for
    {"audiences": ("billing-api", "orders-api")},
    {"audiences": ("nobody",)},
    {"resources": ("https://unknown.example.test",)},
])
async def test_a_target_the_client_may_not_reach_is_invalid_target(target: Any) -> None:
    world = _world()
    subject = await _user_token(world)
    request = _request(subject, **{"resources": (), **target})
    assert await _refused(world, ORDERS_API, request) == "invalid_target"


async def test_unusable_subject_tokens_are_invalid_request() -> None:
    world = _world()
    subject = await _user_token(world)
    own = await issue_client_credentials(world.ports, APP, "read")
    for_billing = await _user_token(world, BILLING)  # not meant for orders-api
    revoked = await _user_token(world)
    assert await revoke(world.ports, APP, revoked, None)
    cases = [
        _request("tk_unknown"),
        _request("not-a-token"),
        _request(revoked),
        _request(own.access_token),  # a client's own token: no user
        _request(for_billing),
        _request(subject, subject_token_type=TOKEN_TYPE_JWT),
        _request(subject, subject_token_type=None),
        _request(None),  # type: ignore[arg-type]
        _request(subject, resources=()),  # no target at all
        _request(subject, requested_token_type="urn:ietf:params:oauth:token-type:id_token"),
        _request(subject, requested_token_type=TOKEN_TYPE_JWT, resources=(BILLING,)),
        _request(subject, actor_token="tk_unknown", actor_token_type=TOKEN_TYPE_ACCESS_TOKEN),
        _request(subject, actor_token=subject),  # without actor_token_type
    ]
    for request in cases:
        assert await _refused(world, ORDERS_API, request) == "invalid_request", request
    world.clock.advance(3600)
    assert await _refused(world, ORDERS_API, _request(subject)) == "invalid_request"


@pytest.mark.parametrize("scope", ["read write", "openid", "offline_access read"])
async def test_a_scope_beyond_the_subject_tokens_is_invalid_scope(scope: str) -> None:
    world = _world()
    subject = await _user_token(world, scope="openid offline_access read")
    assert await _refused(world, ORDERS_API, _request(subject, scope=scope)) == "invalid_scope"


async def test_a_subject_with_no_scope_the_target_defines_is_invalid_scope() -> None:
    world = _world()
    subject = await _user_token(world, scope="openid offline_access write")
    assert await _refused(world, ORDERS_API, _request(subject)) == "invalid_scope"


# Client metadata


def _parse(source: MetadataSource, **doc: Any) -> Client:
    base: dict[str, Any] = {"client_id": "svc", "client_secret": "s" * 40,
                            "grant_types": ["client_credentials", GRANT_TOKEN_EXCHANGE],
                            "scope": "read"}
    return parse_client_metadata({**base, **doc}, source=source).client


@pytest.mark.parametrize("source", [MetadataSource.FILE, MetadataSource.ADMIN])
def test_the_operator_sets_token_exchange_audiences(source: MetadataSource) -> None:
    client = _parse(source, token_exchange_audiences=[REPORTS, BILLING])
    assert client.token_exchange_audiences == (REPORTS, BILLING)
    assert client.allows_grant(GRANT_TOKEN_EXCHANGE)
    assert client_metadata(client)["token_exchange_audiences"] == [REPORTS, BILLING]


def test_a_registration_cannot_set_token_exchange_audiences() -> None:
    client = parse_client_metadata({
        "redirect_uris": ["https://app.example.test/cb"],
        "token_exchange_audiences": [REPORTS]}, source=MetadataSource.REGISTRATION,
        client_id="dyn").client
    assert client.token_exchange_audiences == ()
    assert "token_exchange_audiences" not in client_metadata(client)


def test_a_registration_cannot_ask_for_the_token_exchange_grant() -> None:
    with pytest.raises(ClientMetadataError) as caught:
        parse_client_metadata({
            "redirect_uris": ["https://app.example.test/cb"],
            "grant_types": ["authorization_code", GRANT_TOKEN_EXCHANGE]},
            source=MetadataSource.REGISTRATION, client_id="dyn")
    assert caught.value.key == "grant_types"


@pytest.mark.parametrize(("doc", "key"), [
    ({"token_exchange_audiences": ["not a uri"]}, "token_exchange_audiences"),
    ({"token_exchange_audiences": REPORTS}, "token_exchange_audiences"),
    ({"token_exchange_audiences": [REPORTS], "grant_types": ["client_credentials"]},
     "token_exchange_audiences"),
    ({"client_secret": None, "token_endpoint_auth_method": "none",
      "grant_types": [GRANT_TOKEN_EXCHANGE]}, "grant_types"),
])
def test_bad_token_exchange_metadata_is_refused(doc: dict[str, Any], key: str) -> None:
    document = {"client_id": "svc", "client_secret": "s" * 40,
                "grant_types": ["client_credentials", GRANT_TOKEN_EXCHANGE], "scope": "read",
                **doc}
    document = {k: v for k, v in document.items() if v is not None}
    with pytest.raises(ClientMetadataError) as caught:
        parse_client_metadata(document, source=MetadataSource.ADMIN)
    assert caught.value.key == key

"""Resource servers and audiences (RFC 8707), introspection only for the audience (RFC 7662
section 4) and JWT access tokens (RFC 9068), through the use cases (domain.resources)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from adapters.memory.store import MemoryStore
from adapters.secret_sealing import AesGcmSecretSealer
from domain.client_admin import ClientPorts, create_client, update_client
from domain.client_metadata import (
    ClientDraft,
    ClientMetadataError,
    MetadataSource,
    client_metadata,
    parse_client_metadata,
)
from domain.clients import Client, ClientRegistry
from domain.errors import Conflict
from domain.oauth import (
    OAuthError,
    exchange_authorization_code,
    introspect,
    issue_client_credentials,
    refresh,
    revoke,
)
from domain.resources import Audience, ResourceServers, parse_resources, resource_uri_problem
from domain.tokens import hash_token, is_access_token
from ports.security import SecretsTokenGenerator
from tests.doubles import FakeClock, RecordingEvents
from tests.unit.oauth_doubles import CONFIDENTIAL, ISSUER, OTHER, REDIRECT, T0, VERIFIER, World

ORDERS = "https://orders.example.test"
REPORTS = "urn:example:reports"
SCOPES = frozenset({"openid", "offline_access", "read", "write", "orders:read", "reports"})
APP = msgspec.structs.replace(CONFIDENTIAL, scopes=SCOPES)
ORDERS_API = msgspec.structs.replace(
    OTHER, client_id="orders-api", resource_uri=ORDERS,
    resource_scopes=frozenset({"orders:read", "read"}))
REPORTS_API = msgspec.structs.replace(
    OTHER, client_id="reports-api", resource_uri=REPORTS, resource_scopes=frozenset({"reports"}),
    access_token_format="jwt")
GATEWAY = msgspec.structs.replace(OTHER, client_id="gateway", introspect_any_token=True)


def _world(default: str | None = None, *servers: Client) -> World:
    return World(resources=ResourceServers(servers or (ORDERS_API, REPORTS_API), default))


async def _code_tokens(world: World, *, resources: tuple[str, ...] = (),
                       token_resources: tuple[str, ...] = ()) -> Any:
    code = await world.code(APP, scope="openid offline_access read orders:read reports",
                            resources=resources)
    return await exchange_authorization_code(world.ports, APP, code, REDIRECT, VERIFIER,
                                             resources=token_resources)


# Audiences


async def test_a_token_is_for_the_resources_of_its_request_with_their_scopes_only() -> None:
    world = _world()
    issued = await issue_client_credentials(world.ports, APP, "read write orders:read",
                                            resources=(ORDERS,))
    # write is defined by no resource of the audience: the token does not carry it.
    assert issued.scope == "read orders:read"
    record = await world.store.get_access_token(hash_token(issued.access_token), T0)
    assert record is not None and record.audience == (ORDERS,)
    assert record.scope == "read orders:read"


async def test_identity_scopes_are_not_limited_by_the_audience() -> None:
    issued = await _code_tokens(_world(), resources=(ORDERS,))
    assert issued.scope == "openid offline_access read orders:read"
    assert issued.id_token is not None and issued.refresh_token is not None


async def test_without_resource_and_default_a_token_has_no_audience_and_every_scope() -> None:
    world = _world()
    issued = await issue_client_credentials(world.ports, APP, "read write")
    result = await introspect(world.ports, APP, issued.access_token, None)
    assert result.aud is None and result.scope == "read write"


async def test_default_resource_applies_without_resource() -> None:
    world = _world(ORDERS)
    issued = await issue_client_credentials(world.ports, APP, "read write")
    assert issued.scope == "read"
    result = await introspect(world.ports, ORDERS_API, issued.access_token, None)
    assert result.active and result.aud == ORDERS
    # A resource named in the request wins over the default.
    other = await issue_client_credentials(world.ports, APP, "reports", resources=(REPORTS,))
    assert (await introspect(world.ports, APP, other.access_token, None)).aud == REPORTS


@pytest.mark.parametrize("resource", [
    "https://unknown.example.test", "relative/path", "https://orders.example.test#frag",
    "", "https://" + "a" * 600,
])
async def test_an_unknown_or_malformed_resource_is_invalid_target(resource: str) -> None:
    world = _world()
    with pytest.raises(OAuthError) as caught:
        await issue_client_credentials(world.ports, APP, "read", resources=(resource or " ",))
    assert caught.value.error == "invalid_target"
    with pytest.raises(OAuthError) as at_code:
        await world.code(APP, resources=(resource or " ",))
    assert at_code.value.error == "invalid_target"


async def test_the_code_binds_the_grant_to_its_resources() -> None:
    world = _world()
    issued = await _code_tokens(world, resources=(ORDERS, REPORTS))
    record = await world.store.get_access_token(hash_token(issued.access_token), T0)
    assert record is not None and record.audience == (ORDERS, REPORTS)
    # Mixed formats: the token stays opaque, which both servers can introspect.
    assert issued.access_token.startswith("tk_")
    rotated = await world.store.get_refresh_token(hash_token(issued.refresh_token), T0)
    assert rotated is not None and rotated.resources == (ORDERS, REPORTS)


async def test_the_token_request_may_narrow_the_codes_resources_but_not_widen_them() -> None:
    world = _world()
    narrowed = await _code_tokens(world, resources=(ORDERS, REPORTS), token_resources=(ORDERS,))
    assert narrowed.scope == "openid offline_access read orders:read"
    with pytest.raises(OAuthError) as caught:
        await _code_tokens(world, resources=(ORDERS,), token_resources=(REPORTS,))
    assert caught.value.error == "invalid_target"


async def test_a_refresh_may_narrow_the_resource_and_the_grant_keeps_them_all() -> None:
    world = _world()
    issued = await _code_tokens(world, resources=(ORDERS, REPORTS))
    narrowed = await refresh(world.ports, APP, issued.refresh_token, None, resources=(REPORTS,))
    assert narrowed.scope == "openid offline_access reports"
    info = await introspect(world.ports, REPORTS_API, narrowed.access_token, None)
    assert info.active and info.aud == REPORTS
    assert narrowed.refresh_token is not None
    both = await refresh(world.ports, APP, narrowed.refresh_token, None)
    record = await world.store.get_access_token(hash_token(both.access_token), T0)
    assert record is not None and record.audience == (ORDERS, REPORTS)
    assert both.refresh_token is not None
    with pytest.raises(OAuthError) as caught:
        await refresh(world.ports, APP, both.refresh_token, None, resources=("https://unknown.test",))
    assert caught.value.error == "invalid_target"
    # The refused refresh did not burn the token.
    assert await refresh(world.ports, APP, both.refresh_token, None, resources=(ORDERS,))


async def test_an_unbound_grant_may_name_any_resource_at_each_request() -> None:
    world = _world()
    issued = await _code_tokens(world, token_resources=(REPORTS,))
    assert issued.scope == "openid offline_access reports"
    rotated = await refresh(world.ports, APP, issued.refresh_token, None, resources=(ORDERS,))
    assert rotated.scope == "openid offline_access read orders:read"


# Introspection only for the audience


async def test_only_the_tokens_client_and_its_audience_see_it() -> None:
    world = _world(None, ORDERS_API, REPORTS_API, msgspec.structs.replace(
        REPORTS_API, client_id="other-api", resource_uri="https://other.example.test"))
    issued = await issue_client_credentials(world.ports, APP, "read", resources=(ORDERS,))
    own = await introspect(world.ports, APP, issued.access_token, None)
    assert own.active and own.aud == ORDERS and own.client_id == APP.client_id
    assert (await introspect(world.ports, ORDERS_API, issued.access_token, None)).active
    for stranger in (REPORTS_API, OTHER):
        result = await introspect(world.ports, stranger, issued.access_token, None)
        assert msgspec.to_builtins(result) == {"active": False}


async def test_a_token_without_audience_is_hidden_from_other_clients() -> None:
    world = _world()
    issued = await issue_client_credentials(world.ports, APP, "read")
    assert not (await introspect(world.ports, OTHER, issued.access_token, None)).active
    assert not (await introspect(world.ports, ORDERS_API, issued.access_token, None)).active


async def test_introspect_any_token_sees_every_token() -> None:
    world = _world()
    for resources in ((), (ORDERS,)):
        issued = await issue_client_credentials(world.ports, APP, "read", resources=resources)
        assert (await introspect(world.ports, GATEWAY, issued.access_token, None)).active


# JWT access tokens


def _verify(token: str) -> jwt.Token:
    keys = KeySet.import_key_set(World().signer.jwks())  # type: ignore[arg-type]
    return jwt.decode(token, keys)


async def test_a_jwt_resource_server_gets_a_signed_at_jwt() -> None:
    world = _world()
    issued = await _code_tokens(world, resources=(REPORTS,))
    assert not issued.access_token.startswith("tk_") and is_access_token(issued.access_token)
    decoded = _verify(issued.access_token)
    assert decoded.header["typ"] == "at+jwt" and decoded.header["alg"] == "RS256"
    claims = decoded.claims
    assert {k: claims[k] for k in ("iss", "sub", "aud", "client_id", "scope", "iat", "exp",
                                   "auth_time", "acr")} == {
        "iss": ISSUER, "sub": "user-1", "aud": REPORTS, "client_id": APP.client_id,
        "scope": "openid offline_access reports", "iat": T0, "exp": T0 + 3600,
        "auth_time": T0 - 5, "acr": "pwd",
    }
    assert claims["jti"].startswith("tk_") and "cnf" not in claims
    # Recorded by its hash: introspection and revocation work as for an opaque token.
    info = await introspect(world.ports, REPORTS_API, issued.access_token, None)
    assert info.active and info.aud == REPORTS and info.sub == "user-1"
    assert await revoke(world.ports, APP, issued.access_token, None)
    assert not (await introspect(world.ports, REPORTS_API, issued.access_token, None)).active


async def test_a_clients_own_jwt_has_the_client_as_subject() -> None:
    world = _world()
    issued = await issue_client_credentials(world.ports, APP, "reports", resources=(REPORTS,))
    claims = _verify(issued.access_token).claims
    assert claims["sub"] == claims["client_id"] == APP.client_id
    assert "auth_time" not in claims and "acr" not in claims


async def test_a_refresh_for_a_jwt_server_gets_a_jwt() -> None:
    world = _world()
    issued = await _code_tokens(world, resources=(ORDERS, REPORTS))
    rotated = await refresh(world.ports, APP, issued.refresh_token, None, resources=(REPORTS,))
    assert _verify(rotated.access_token).claims["aud"] == REPORTS


def test_several_jwt_servers_get_one_jwt_with_every_audience() -> None:
    audience = Audience((ORDERS, REPORTS), (
        msgspec.structs.replace(ORDERS_API, access_token_format="jwt"), REPORTS_API))
    assert audience.jwt
    assert not Audience((ORDERS, REPORTS), (ORDERS_API, REPORTS_API)).jwt
    assert not Audience().jwt


# The pieces


def test_resource_uris_are_absolute_without_fragment() -> None:
    assert resource_uri_problem("https://api.example/v1") is None
    assert resource_uri_problem("urn:example:api") is None
    for bad in ("api", "/v1", "https://api.example/#x", "https://a b", "https://", ""):
        assert resource_uri_problem(bad) is not None, bad
    assert parse_resources([ORDERS, ORDERS, REPORTS]) == (ORDERS, REPORTS)


async def test_resource_uris_are_unique_and_an_unknown_default_is_invalid_target() -> None:
    with pytest.raises(ValueError, match="same resource_uri"):
        ResourceServers([ORDERS_API, msgspec.structs.replace(ORDERS_API, client_id="twin")])
    # The default may name a stored server created later: it is looked up when used.
    world = _world("https://later.example", ORDERS_API)
    with pytest.raises(OAuthError) as caught:
        await issue_client_credentials(world.ports, APP, "read")
    assert caught.value.error == "invalid_target"


# Client metadata


def _parse(source: MetadataSource, **keys: Any) -> Client:
    document = {"client_id": "api", "client_secret": "x" * 40, "scope": "read",
                "grant_types": ["client_credentials"], **keys}
    return parse_client_metadata(document, source=source).client


def test_clients_file_declares_a_resource_server() -> None:
    client = _parse(MetadataSource.FILE, resource_uri=ORDERS, resource_scopes=["read", "write"],
                    access_token_format="jwt", introspect_any_token=True)
    assert (client.resource_uri, client.resource_scopes, client.access_token_format) == (
        ORDERS, frozenset({"read", "write"}), "jwt")
    assert client.introspect_any_token
    shown = client_metadata(client)
    assert (shown["resource_uri"], shown["resource_scopes"], shown["access_token_format"],
            shown["introspect_any_token"]) == (ORDERS, "read write", "jwt", True)
    assert _parse(MetadataSource.FILE, resource_uri=ORDERS, resource_scopes="a b").resource_scopes \
        == frozenset({"a", "b"})
    plain = client_metadata(_parse(MetadataSource.FILE))
    assert "resource_uri" not in plain and plain["introspect_any_token"] is False


@pytest.mark.parametrize(("keys", "key"), [
    ({"resource_uri": "api/v1"}, "resource_uri"),
    ({"resource_uri": ORDERS + "#x"}, "resource_uri"),
    ({"resource_uri": 3}, "resource_uri"),
    ({"resource_uri": ORDERS, "access_token_format": "paseto"}, "access_token_format"),
    ({"resource_uri": ORDERS, "resource_scopes": ["openid"]}, "resource_scopes"),
    ({"resource_uri": ORDERS, "resource_scopes": ["scim:read"]}, "resource_scopes"),
    ({"resource_scopes": ["read"]}, "resource_scopes"),
    ({"access_token_format": "jwt"}, "access_token_format"),
    ({"introspect_any_token": "yes"}, "introspect_any_token"),
])
def test_bad_resource_server_metadata_names_its_key(keys: dict[str, Any], key: str) -> None:
    with pytest.raises(ClientMetadataError) as caught:
        _parse(MetadataSource.FILE, **keys)
    assert caught.value.key == key


def test_the_admin_api_may_trust_a_gateway_and_declare_a_resource_server() -> None:
    assert _parse(MetadataSource.ADMIN, introspect_any_token=True).introspect_any_token
    server = _parse(MetadataSource.ADMIN, resource_uri=ORDERS, resource_scopes="orders:read",
                    access_token_format="jwt")
    assert (server.resource_uri, server.resource_scopes, server.access_token_format) == \
        (ORDERS, frozenset({"orders:read"}), "jwt")
    with pytest.raises(ClientMetadataError) as caught:
        _parse(MetadataSource.ADMIN, resource_uri=ORDERS + "#x")
    assert caught.value.key == "resource_uri"


def test_registration_ignores_the_operators_keys() -> None:
    document = {"redirect_uris": ["https://app.example/cb"], "resource_uri": ORDERS,
                "resource_scopes": "read", "access_token_format": "jwt",
                "introspect_any_token": True}
    client = parse_client_metadata(document, source=MetadataSource.REGISTRATION,
                                   client_id="reg-1").client
    assert client.resource_uri is None and not client.introspect_any_token
    assert client.access_token_format == "opaque"


async def test_a_request_left_with_no_scope_by_its_audience_is_invalid_scope() -> None:
    world = _world()
    with pytest.raises(OAuthError) as caught:
        await issue_client_credentials(world.ports, APP, "write", resources=(REPORTS,))
    assert caught.value.error == "invalid_scope" and REPORTS in caught.value.description


async def test_default_resource_leaves_requests_for_this_server_alone() -> None:
    # A provisioning client's SCIM token, or a sign-in for userinfo only, has no audience.
    world = _world(ORDERS)
    scim = msgspec.structs.replace(APP, scopes=frozenset({"scim:read", "scim:write"}))
    issued = await issue_client_credentials(world.ports, scim, None)
    assert issued.scope == "scim:read scim:write"
    record = await world.store.get_access_token(hash_token(issued.access_token), T0)
    assert record is not None and record.audience == ()
    code = await world.code(APP, scope="openid offline_access")
    signed_in = await exchange_authorization_code(world.ports, APP, code, REDIRECT, VERIFIER)
    assert (await introspect(world.ports, APP, signed_in.access_token, None)).aud is None


# Stored resource servers (the admin API's, looked up in the store)

STORED = "https://stored.example.test"
STORED_API = msgspec.structs.replace(
    OTHER, client_id="stored-api", resource_uri=STORED, resource_scopes=frozenset({"read"}))


def _stored_world(default: str | None = None) -> World:
    store = MemoryStore()
    return World(store=store, resources=ResourceServers((ORDERS_API,), default, store))


async def test_a_stored_resource_server_is_an_audience_until_it_is_deleted() -> None:
    world = _stored_world()
    await world.store.create_client(STORED_API)
    issued = await issue_client_credentials(world.ports, APP, "read write", resources=(STORED,))
    record = await world.store.get_access_token(hash_token(issued.access_token), T0)
    assert record is not None and record.audience == (STORED,) and record.scope == "read"
    shown = await introspect(world.ports, STORED_API, issued.access_token, None)
    assert shown.active and shown.aud == STORED
    assert not (await introspect(world.ports, ORDERS_API, issued.access_token, None)).active
    await world.store.delete_client("stored-api")
    with pytest.raises(OAuthError) as caught:
        await issue_client_credentials(world.ports, APP, "read", resources=(STORED,))
    assert caught.value.error == "invalid_target"


async def test_the_static_server_wins_and_a_stale_copy_of_a_uri_sees_nothing() -> None:
    world = _stored_world()
    await world.store.create_client(STORED_API)
    issued = await issue_client_credentials(world.ports, APP, "read", resources=(STORED,))
    # Another client that says it has the URI (a copy read before a change) is not its server.
    impostor = msgspec.structs.replace(STORED_API, client_id="impostor")
    assert not (await introspect(world.ports, impostor, issued.access_token, None)).active
    # A static server is found without asking the store.
    assert await world.ports.resources.find(ORDERS) == ORDERS_API


async def test_default_resource_may_name_a_stored_server() -> None:
    world = _stored_world(default=STORED)
    await world.store.create_client(STORED_API)
    issued = await issue_client_credentials(world.ports, APP, "read")
    record = await world.store.get_access_token(hash_token(issued.access_token), T0)
    assert record is not None and record.audience == (STORED,)


async def test_the_admin_use_cases_refuse_a_static_servers_uri_and_the_store_a_stored_one(
) -> None:
    ports = ClientPorts(store=MemoryStore(), static=ClientRegistry([ORDERS_API]),
                        clock=FakeClock(), token_generator=SecretsTokenGenerator(),
                        sealer=AesGcmSecretSealer([b"k" * 32]), events=RecordingEvents())
    clash = msgspec.structs.replace(STORED_API, resource_uri=ORDERS)
    with pytest.raises(ClientMetadataError) as static:
        await create_client(ports, ClientDraft(client=clash))
    assert static.value.key == "resource_uri" and static.value.error == "invalid_client_metadata"
    await create_client(ports, ClientDraft(client=STORED_API))
    twin = msgspec.structs.replace(STORED_API, client_id="twin")
    with pytest.raises(Conflict) as stored:
        await create_client(ports, ClientDraft(client=twin))
    assert stored.value.attribute == "resource_uri"
    with pytest.raises(ClientMetadataError):
        await update_client(ports, ClientDraft(client=clash))

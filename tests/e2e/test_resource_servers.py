"""Resource servers through the app: audiences (RFC 8707), introspection only for the
audience (RFC 7662 section 4), JWT access tokens (RFC 9068) verified against /jwks.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError
from joserfc.jwk import KeySet
from litestar import Litestar
from litestar.testing import TestClient

from domain.oauth import create_authorization_code, pkce_s256
from tests.doubles import FakeClock
from tests.e2e.admin_support import CLIENTS_TOML as ADMIN_CLIENTS_TOML
from tests.e2e.admin_support import ENV_ID, ENV_SECRET, admin_app
from tests.e2e.conftest import StoreBackend
from tests.e2e.oauth_setup import (
    CLIENTS_TOML,
    FORM,
    ISSUER,
    REDIRECT,
    USER_ID,
    VERIFIER,
    basic,
    build_app,
    ensure_user,
    running,
    services_of,
)

ORDERS = "https://orders.example.test/api"
REPORTS = "urn:example:reports"
API_SECRET = "resource-server-secret-0123456789abcdef"

RESOURCE_SERVERS_TOML = f"""
[[clients]]
client_id = "orders-api"
secret = "{API_SECRET}"
grant_types = ["client_credentials"]
scopes = ["read"]
resource_uri = "{ORDERS}"
resource_scopes = ["read", "orders:write"]

[[clients]]
client_id = "reports-api"
secret = "{API_SECRET}"
grant_types = ["client_credentials"]
scopes = ["read"]
resource_uri = "{REPORTS}"
resource_scopes = "write"
access_token_format = "jwt"

[[clients]]
client_id = "gateway"
secret = "{API_SECRET}"
grant_types = ["client_credentials"]
scopes = ["read"]
introspect_any_token = true
"""


def _app(store: StoreBackend, tmp_path: Path, *, clock: FakeClock | None = None,
         **env: str) -> Litestar:
    clients_file = tmp_path / "resource-servers.toml"
    clients_file.write_text(CLIENTS_TOML + RESOURCE_SERVERS_TOML)
    return build_app(store, tmp_path, clock=clock, CLIENTS_FILE=str(clients_file), **env)


def _token(client: TestClient[Any], *resources: str, scope: str = "read write",
           grant: dict[str, str] | None = None) -> Any:
    data: dict[str, Any] = dict(grant or {"grant_type": "client_credentials", "scope": scope})
    if resources:
        data["resource"] = list(resources)
    return client.post("/oauth/token", headers={**FORM, **basic()}, data=data)


def _introspect(client: TestClient[Any], token: str, client_id: str) -> dict[str, Any]:
    response = client.post("/oauth/introspect", headers={**FORM, **basic(client_id, API_SECRET)},
                           data={"token": token})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _code(client: TestClient[Any], app: Litestar, *resources: str,
          scope: str = "openid offline_access read write") -> str:
    async def make() -> str:
        services = services_of(app)
        basic_client = await services.clients.find("basic")
        assert basic_client is not None
        await ensure_user(app)
        # As the consent page does for a client that is not first-party.
        await services.store.grant_consent(USER_ID, "basic", tuple(scope.split()),
                                           services.clock.now())
        return await create_authorization_code(
            services.oauth, client=basic_client, redirect_uri=REDIRECT, scope=scope,
            user_id=USER_ID, nonce="n-1", code_challenge=pkce_s256(VERIFIER),
            code_challenge_method="S256", auth_time=services.clock.now(), mfa_verified=False,
            resources=resources)

    code: str = client.blocking_portal.call(make)
    return code


def _exchange(client: TestClient[Any], app: Litestar, *resources: str,
              token_resources: tuple[str, ...] = ()) -> dict[str, Any]:
    code = _code(client, app, *resources)
    response = _token(client, *token_resources, grant={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_audience_bound_token_is_active_only_for_its_resource_server(
    store: StoreBackend, tmp_path: Path
) -> None:
    with running(_app(store, tmp_path)) as client:
        response = _token(client, ORDERS)
        assert response.status_code == 200, response.text
        # write is not a scope of the orders API: the token does not carry it.
        assert response.json()["scope"] == "read"
        token = response.json()["access_token"]
        info = _introspect(client, token, "orders-api")
        assert info["active"] is True and info["aud"] == ORDERS and info["scope"] == "read"
        assert _introspect(client, token, "reports-api") == {"active": False}
        assert _introspect(client, token, "gateway")["aud"] == ORDERS


def test_a_token_without_audience_is_shown_only_to_its_client_and_the_gateway(
    store: StoreBackend, tmp_path: Path
) -> None:
    with running(_app(store, tmp_path)) as client:
        token = _token(client).json()["access_token"]
        assert _introspect(client, token, "orders-api") == {"active": False}
        assert _introspect(client, token, "gateway")["active"] is True
        own = client.post("/oauth/introspect", headers={**FORM, **basic()},
                          data={"token": token}).json()
        assert own["active"] is True and "aud" not in own


def test_several_resources_make_several_audiences(store: StoreBackend, tmp_path: Path) -> None:
    with running(_app(store, tmp_path)) as client:
        response = _token(client, ORDERS, REPORTS)
        assert response.status_code == 200, response.text
        # Mixed formats: opaque, which both can introspect.
        assert response.json()["access_token"].startswith("tk_")
        assert response.json()["scope"] == "read write"
        for server in ("orders-api", "reports-api"):
            info = _introspect(client, response.json()["access_token"], server)
            assert info["aud"] == [ORDERS, REPORTS]


def test_jwt_access_tokens_verify_against_the_jwks_and_stay_revocable(
    store: StoreBackend, tmp_path: Path
) -> None:
    clock = FakeClock()
    app = _app(store, tmp_path, clock=clock)
    with running(app) as client:
        tokens = _exchange(client, app, REPORTS)
        token = tokens["access_token"]
        assert tokens["scope"] == "openid offline_access write"
        keys = KeySet.import_key_set(client.get("/jwks.json").json())
        decoded = jwt.decode(token, keys)  # raises unless our key signed it
        assert decoded.header["typ"] == "at+jwt"
        registry = jwt.JWTClaimsRegistry(
            now=clock.now, iss={"essential": True, "value": ISSUER},
            aud={"essential": True, "value": REPORTS},
            sub={"essential": True, "value": USER_ID},
            client_id={"essential": True, "value": "basic"},
            jti={"essential": True}, iat={"essential": True}, exp={"essential": True})
        registry.validate(decoded.claims)
        assert decoded.claims["scope"] == "openid offline_access write"
        assert decoded.claims["acr"] == "pwd" and decoded.claims["auth_time"] == clock.value
        with pytest.raises(InvalidClaimError):
            jwt.JWTClaimsRegistry(aud={"essential": True, "value": ORDERS}).validate(
                decoded.claims)
        # It works at userinfo, is introspected by hash, and is revoked like any token.
        userinfo = client.get("/oauth/userinfo", headers={"Authorization": f"Bearer {token}"})
        assert userinfo.status_code == 200 and userinfo.json()["sub"] == USER_ID
        assert _introspect(client, token, "reports-api")["aud"] == REPORTS
        revoked = client.post("/oauth/revoke", headers={**FORM, **basic()},
                              data={"token": token})
        assert revoked.status_code == 200
        assert _introspect(client, token, "reports-api") == {"active": False}
        again = client.get("/oauth/userinfo", headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 401
        # And it expires.
        clock.value += 3600
        with pytest.raises(ExpiredTokenError):
            registry.validate(decoded.claims)


def test_a_jwt_expires_for_introspection_too(store: StoreBackend, tmp_path: Path) -> None:
    clock = FakeClock()
    with running(_app(store, tmp_path, clock=clock)) as client:
        token = _token(client, REPORTS, scope="write").json()["access_token"]
        claims = jwt.decode(token, KeySet.import_key_set(client.get("/jwks.json").json())).claims
        assert claims["sub"] == claims["client_id"] == "basic"
        assert claims["exp"] == clock.value + 3600
        assert _introspect(client, token, "reports-api")["active"] is True
        clock.value += 3600
        assert _introspect(client, token, "reports-api") == {"active": False}


@pytest.mark.parametrize("resource", [
    "https://unknown.example.test", "not-absolute", ORDERS + "#fragment", "https://a b.test",
])
def test_an_unknown_or_malformed_resource_is_invalid_target(
    store: StoreBackend, tmp_path: Path, resource: str
) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        response = _token(client, resource)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_target"
        # At the authorization endpoint, the error goes back to the client.
        authorize = client.get("/oauth/authorize", follow_redirects=False, params={
            "client_id": "basic", "redirect_uri": REDIRECT, "response_type": "code",
            "scope": "openid", "state": "s-1", "resource": resource,
            "code_challenge": pkce_s256(VERIFIER), "code_challenge_method": "S256"})
        assert authorize.status_code == 303
        query = parse_qs(urlsplit(authorize.headers["location"]).query)
        assert query["error"] == ["invalid_target"] and query["state"] == ["s-1"]


def test_the_code_exchange_may_not_widen_the_resources(store: StoreBackend, tmp_path: Path) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        code = _code(client, app, ORDERS)
        response = _token(client, REPORTS, grant={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER})
        assert response.status_code == 400 and response.json()["error"] == "invalid_target"


def test_a_refresh_narrows_the_resource(store: StoreBackend, tmp_path: Path) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        tokens = _exchange(client, app, ORDERS, REPORTS)
        assert _introspect(client, tokens["access_token"], "orders-api")["aud"] == [
            ORDERS, REPORTS]
        refreshed = _token(client, REPORTS, grant={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
        narrowed = refreshed.json()
        assert narrowed["scope"] == "openid offline_access write"
        assert _introspect(client, narrowed["access_token"], "orders-api") == {"active": False}
        claims = jwt.decode(narrowed["access_token"],
                            KeySet.import_key_set(client.get("/jwks.json").json())).claims
        assert claims["aud"] == REPORTS
        outside = _token(client, "https://unknown.example.test", grant={
            "grant_type": "refresh_token", "refresh_token": narrowed["refresh_token"]})
        assert outside.status_code == 400 and outside.json()["error"] == "invalid_target"
        # Without resource, the grant's resources again.
        back = _token(client, grant={
            "grant_type": "refresh_token", "refresh_token": narrowed["refresh_token"]})
        assert back.status_code == 200, back.text
        assert _introspect(client, back.json()["access_token"], "orders-api")["aud"] == [
            ORDERS, REPORTS]


def test_default_resource_applies_without_resource(store: StoreBackend, tmp_path: Path) -> None:
    with running(_app(store, tmp_path, DEFAULT_RESOURCE=ORDERS)) as client:
        token = _token(client).json()["access_token"]
        info = _introspect(client, token, "orders-api")
        assert info["aud"] == ORDERS and info["scope"] == "read"
        named = _token(client, REPORTS, scope="write").json()["access_token"]
        assert _introspect(client, named, "orders-api") == {"active": False}


def test_signed_introspection_responses(store: StoreBackend, tmp_path: Path) -> None:
    clock = FakeClock()
    with running(_app(store, tmp_path, clock=clock)) as client:
        token = _token(client, ORDERS).json()["access_token"]
        response = client.post(
            "/oauth/introspect", data={"token": token},
            headers={**FORM, **basic("orders-api", API_SECRET),
                     "Accept": "application/token-introspection+jwt"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/token-introspection+jwt"
        assert response.headers["cache-control"] == "no-store"
        decoded = jwt.decode(response.text,
                             KeySet.import_key_set(client.get("/jwks.json").json()))
        assert decoded.header["typ"] == "token-introspection+jwt"
        claims = decoded.claims
        assert (claims["iss"], claims["aud"], claims["iat"]) == (ISSUER, "orders-api",
                                                                 clock.value)
        assert claims["token_introspection"]["active"] is True
        assert claims["token_introspection"]["aud"] == ORDERS
        # A stranger gets a signed "inactive".
        hidden = client.post(
            "/oauth/introspect", data={"token": token},
            headers={**FORM, **basic("reports-api", API_SECRET),
                     "Accept": "application/token-introspection+jwt"})
        assert jwt.decode(hidden.text, KeySet.import_key_set(client.get("/jwks.json").json())
                          ).claims["token_introspection"] == {"active": False}
        assert client.get("/.well-known/oauth-authorization-server").json()[
            "introspection_signing_alg_values_supported"] == ["RS256"]


# Resource servers managed at run time (the admin API)

BILLING = "https://billing.example.test"


def test_a_resource_server_created_through_the_admin_api_gets_its_audience(
    store: StoreBackend, tmp_path: Path
) -> None:
    clients_file = tmp_path / "with-orders.toml"
    clients_file.write_text(ADMIN_CLIENTS_TOML + RESOURCE_SERVERS_TOML)
    with admin_app(store, tmp_path, CLIENTS_FILE=str(clients_file)) as instance:
        created = instance.create(
            client_id="billing-api", grant_types=["client_credentials"], scope="read",
            resource_uri=BILLING, resource_scopes="read", access_token_format="opaque")
        assert created["resource_uri"] == BILLING and created["resource_scopes"] == "read"
        billing = basic("billing-api", created["client_secret"])

        def token(*resources: str) -> Any:
            return instance.client.post(
                "/oauth/token", headers={**FORM, **basic(ENV_ID, ENV_SECRET)},
                data={"grant_type": "client_credentials", "scope": "read",
                      "resource": list(resources)})

        def introspect(token: str, auth: dict[str, str]) -> dict[str, Any]:
            response = instance.client.post("/oauth/introspect", headers={**FORM, **auth},
                                            data={"token": token})
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        issued = token(BILLING)
        assert issued.status_code == 200, issued.text
        access = issued.json()["access_token"]
        shown = introspect(access, billing)
        assert shown["active"] is True and shown["aud"] == BILLING
        assert introspect(access, basic(ENV_ID, ENV_SECRET))["aud"] == BILLING
        assert introspect(access, basic("orders-api", API_SECRET)) == {"active": False}

        # A clash: with a static server's URI 400, with another stored one's 409.
        for uri, status, error in ((ORDERS, 400, "invalid_client_metadata"),
                                   (BILLING, 409, "conflict")):
            refused = instance.client.post("/admin/clients", headers=instance.admin(), json={
                "client_id": "twin", "grant_types": ["client_credentials"], "scope": "read",
                "resource_uri": uri})
            assert refused.status_code == status, refused.text
            assert refused.json()["error"] == error
        assert instance.client.get("/admin/clients/twin",
                                   headers=instance.admin()).status_code == 404

        deleted = instance.client.delete("/admin/clients/billing-api", headers=instance.admin())
        assert deleted.status_code == 204, deleted.text
        gone = token(BILLING)
        assert gone.status_code == 400 and gone.json()["error"] == "invalid_target"

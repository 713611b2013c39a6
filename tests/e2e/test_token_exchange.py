"""Token exchange (RFC 8693) through the app: a resource server that holds a user's token
exchanges it for one meant for another API; the target introspects it (or verifies the JWT
against /jwks.json) and sees who acts for the user (``act``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet
from litestar import Litestar
from litestar.testing import TestClient

from tests.doubles import FakeClock
from tests.dpop_proofs import DpopKey
from tests.e2e.admin_support import admin_app
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
    code_in,
    running,
)

ORDERS = "https://orders.example.test/api"
REPORTS = "urn:example:reports"
BILLING = "https://billing.example.test"
API_SECRET = "resource-server-secret-0123456789abcdef"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
JWT = "urn:ietf:params:oauth:token-type:jwt"
TOKEN_URL = f"{ISSUER}/oauth/token"

SERVERS_TOML = f"""
[[clients]]
client_id = "orders-api"
secret = "{API_SECRET}"
grant_types = ["client_credentials", "{EXCHANGE}"]
scopes = ["read"]
resource_uri = "{ORDERS}"
resource_scopes = ["read", "write"]
token_exchange_audiences = ["{REPORTS}", "{BILLING}"]

[[clients]]
client_id = "reports-api"
secret = "{API_SECRET}"
grant_types = ["client_credentials", "{EXCHANGE}"]
scopes = ["read"]
resource_uri = "{REPORTS}"
resource_scopes = ["write"]
access_token_format = "jwt"
token_exchange_audiences = ["{BILLING}"]

[[clients]]
client_id = "billing-api"
secret = "{API_SECRET}"
grant_types = ["client_credentials"]
scopes = ["read"]
resource_uri = "{BILLING}"
resource_scopes = ["read", "write"]
"""


def _app(store: StoreBackend, tmp_path: Path, clock: FakeClock | None = None) -> Litestar:
    clients_file = tmp_path / "exchange-clients.toml"
    clients_file.write_text(CLIENTS_TOML + SERVERS_TOML)
    return build_app(store, tmp_path, clock=clock, CLIENTS_FILE=str(clients_file))


def _user_tokens(client: TestClient[Any], app: Litestar) -> dict[str, Any]:
    """The user's app (``basic``) signs the user in and gets a token for the orders API."""
    code = code_in(client, app, scope="openid offline_access read write")
    response = client.post("/oauth/token", headers={**FORM, **basic()}, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER, "resource": ORDERS})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["scope"] == "openid offline_access read write"
    return body


def _exchange(client: TestClient[Any], subject: str, *, as_client: str = "orders-api",
              headers: dict[str, str] | None = None, **params: Any) -> Any:
    data: dict[str, Any] = {"grant_type": EXCHANGE, "subject_token": subject,
                            "subject_token_type": ACCESS_TOKEN, **params}
    auth = basic() if as_client == "basic" else basic(as_client, API_SECRET)
    return client.post("/oauth/token", data=data, headers={**FORM, **auth, **(headers or {})})


def _introspect(client: TestClient[Any], token: str, client_id: str) -> dict[str, Any]:
    response = client.post("/oauth/introspect", headers={**FORM, **basic(client_id, API_SECRET)},
                           data={"token": token})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _error(response: Any) -> str:
    assert response.status_code == 400, response.text
    error: str = response.json()["error"]
    return error


def test_an_api_exchanges_the_users_token_for_another_api(
    store: StoreBackend, tmp_path: Path
) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        subject = _user_tokens(client, app)["access_token"]
        response = _exchange(client, subject, audience="billing-api", scope="write")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["issued_token_type"] == ACCESS_TOKEN and body["token_type"] == "Bearer"
        assert body["scope"] == "write" and "refresh_token" not in body
        assert response.headers["cache-control"] == "no-store"
        info = _introspect(client, body["access_token"], "billing-api")
        assert info["active"] is True and info["aud"] == BILLING
        assert info["sub"] == USER_ID and info["client_id"] == "orders-api"
        assert info["act"] == {"sub": "orders-api"} and info["scope"] == "write"
        # Meant for billing only.
        assert _introspect(client, body["access_token"], "reports-api") == {"active": False}


def test_a_jwt_target_gets_a_jwt_with_act_verified_against_the_jwks(
    store: StoreBackend, tmp_path: Path
) -> None:
    clock = FakeClock()
    app = _app(store, tmp_path, clock)
    with running(app) as client:
        subject = _user_tokens(client, app)["access_token"]
        response = _exchange(client, subject, resource=REPORTS, requested_token_type=JWT)
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        decoded = jwt.decode(token, KeySet.import_key_set(client.get("/jwks.json").json()))
        assert decoded.header["typ"] == "at+jwt"
        jwt.JWTClaimsRegistry(
            now=clock.now, iss={"essential": True, "value": ISSUER},
            aud={"essential": True, "value": REPORTS},
            sub={"essential": True, "value": USER_ID},
            client_id={"essential": True, "value": "orders-api"},
            exp={"essential": True}).validate(decoded.claims)
        assert decoded.claims["act"] == {"sub": "orders-api"}
        assert decoded.claims["scope"] == "write"
        assert _introspect(client, token, "reports-api")["act"] == {"sub": "orders-api"}


def test_an_actor_token_names_the_actor_and_a_second_exchange_nests_act(
    store: StoreBackend, tmp_path: Path
) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        subject = _user_tokens(client, app)["access_token"]
        actor = client.post("/oauth/token", headers={**FORM, **basic()},
                            data={"grant_type": "client_credentials", "scope": "read"})
        assert actor.status_code == 200, actor.text
        first = _exchange(client, subject, resource=REPORTS,
                          actor_token=actor.json()["access_token"], actor_token_type=ACCESS_TOKEN)
        assert first.status_code == 200, first.text
        assert _introspect(client, first.json()["access_token"], "reports-api")["act"] == {
            "sub": "basic"}
        # The reports API calls billing with the token it received.
        second = _exchange(client, first.json()["access_token"], as_client="reports-api",
                           resource=BILLING)
        assert second.status_code == 200, second.text
        info = _introspect(client, second.json()["access_token"], "billing-api")
        assert info["act"] == {"sub": "reports-api", "act": {"sub": "basic"}}
        assert info["sub"] == USER_ID and info["scope"] == "write"


def test_the_exchanged_token_never_outlives_the_subject_token(
    store: StoreBackend, tmp_path: Path
) -> None:
    clock = FakeClock()
    app = _app(store, tmp_path, clock)
    with running(app) as client:
        subject = _user_tokens(client, app)["access_token"]
        clock.advance(3500)
        response = _exchange(client, subject, resource=BILLING)
        assert response.status_code == 200, response.text
        assert response.json()["expires_in"] == 100
        clock.advance(100)
        assert _introspect(client, response.json()["access_token"], "billing-api") == {
            "active": False}


def test_revoking_the_subjects_grant_revokes_the_exchanged_token(
    store: StoreBackend, tmp_path: Path
) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        tokens = _user_tokens(client, app)
        exchanged = _exchange(client, tokens["access_token"], resource=BILLING)
        token = exchanged.json()["access_token"]
        assert _introspect(client, token, "billing-api")["active"] is True
        revoked = client.post("/oauth/revoke", headers={**FORM, **basic()},
                              data={"token": tokens["refresh_token"]})
        assert revoked.status_code == 200
        assert _introspect(client, token, "billing-api") == {"active": False}


def test_a_dpop_proof_binds_the_exchanged_token(store: StoreBackend, tmp_path: Path) -> None:
    clock = FakeClock()
    app = _app(store, tmp_path, clock)
    key = DpopKey("ES256")
    with running(app) as client:
        subject = _user_tokens(client, app)["access_token"]
        first = _exchange(client, subject, resource=BILLING, headers={
            "DPoP": key.proof("POST", TOKEN_URL, iat=clock.now())})
        assert _error(first) == "use_dpop_nonce"
        response = _exchange(client, subject, resource=BILLING, headers={
            "DPoP": key.proof("POST", TOKEN_URL, iat=clock.now(),
                              nonce=first.headers["dpop-nonce"])})
        assert response.status_code == 200, response.text
        assert response.json()["token_type"] == "DPoP"
        info = _introspect(client, response.json()["access_token"], "billing-api")
        assert info["cnf"] == {"jkt": key.jkt} and info["token_type"] == "DPoP"


def test_refusals_carry_the_rfc_8693_error_codes(store: StoreBackend, tmp_path: Path) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        subject = _user_tokens(client, app)["access_token"]
        # A client without the grant, and one with it but no audience for this target.
        assert _error(_exchange(client, subject, as_client="basic",
                                resource=BILLING)) == "unauthorized_client"
        assert _error(_exchange(client, subject, as_client="billing-api",
                                resource=REPORTS)) == "unauthorized_client"
        assert _error(_exchange(client, subject, resource=ORDERS)) == "invalid_target"
        assert _error(_exchange(client, subject, audience="nobody")) == "invalid_target"
        assert _error(_exchange(client, subject, resource="https://unknown.example.test")
                      ) == "invalid_target"
        for bad in ({"subject_token": "tk_unknown"}, {"subject_token": "garbage"},
                    {"subject_token_type": JWT}, {"requested_token_type": JWT},
                    {"requested_token_type": "urn:ietf:params:oauth:token-type:id_token"},
                    {"actor_token": "tk_unknown", "actor_token_type": ACCESS_TOKEN}):
            params = {"resource": BILLING, **bad}
            assert _error(_exchange(client, params.pop("subject_token", subject),
                                    **params)) == "invalid_request", bad
        # The reports API may not exchange a token meant for the orders API.
        assert _error(_exchange(client, subject, as_client="reports-api",
                                resource=BILLING)) == "invalid_request"
        assert _error(_exchange(client, subject, resource=BILLING,
                                scope="write profile")) == "invalid_scope"
        assert _error(_exchange(client, subject, resource=BILLING,
                                scope="openid")) == "invalid_scope"


def test_discovery_lists_the_grant_type(store: StoreBackend, tmp_path: Path) -> None:
    with running(_app(store, tmp_path)) as client:
        meta = client.get("/.well-known/openid-configuration").json()
        assert EXCHANGE in meta["grant_types_supported"]


def test_the_admin_api_sets_and_shows_token_exchange_audiences(
    store: StoreBackend, tmp_path: Path
) -> None:
    with admin_app(store, tmp_path) as a:
        created = a.create(client_id="gw", grant_types=["client_credentials", EXCHANGE],
                           scope="read", token_exchange_audiences=[BILLING])
        assert created["token_exchange_audiences"] == [BILLING]
        read = a.client.get("/admin/clients/gw", headers=a.admin())
        assert read.status_code == 200, read.text
        assert read.json()["token_exchange_audiences"] == [BILLING]
        refused = a.client.post("/admin/clients", headers=a.admin(), json={
            "client_id": "gw2", "grant_types": ["client_credentials"], "scope": "read",
            "token_exchange_audiences": [BILLING]})
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_client_metadata"

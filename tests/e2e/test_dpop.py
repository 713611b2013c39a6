"""DPoP (RFC 9449) through the ASGI app, on memory and sql: binding at the token endpoint,
nonces, refusals (no proof, another key, replayed jti, wrong htu, stale iat), refresh of a
bound public-client refresh token, userinfo and SCIM with DPoP, introspection's cnf.

The client side is built with joserfc (tests/dpop_proofs.py): Authlib has no DPoP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from tests.doubles import FakeClock
from tests.dpop_proofs import DpopKey
from tests.e2e.conftest import StoreBackend
from tests.e2e.oauth_setup import (
    ENV_SECRET,
    FORM,
    ISSUER,
    REDIRECT,
    SECRET,
    VERIFIER,
    basic,
    build_app,
    code_in,
    running,
)

TOKEN_URL = f"{ISSUER}/oauth/token"
USERINFO_URL = f"{ISSUER}/oauth/userinfo"
SCIM_SECRET = "scim-dpop-secret-0123456789abcdefghij"
#: Introspects the tests' tokens whoever they were issued to (docs/resource-servers.md).
GATEWAY_SECRET = "gateway-dpop-secret-0123456789abcdefgh"
EXTRA_CLIENTS = f"""
[[clients]]
client_id = "bound"
secret = "{SECRET}"
grant_types = ["client_credentials"]
scopes = ["read"]
dpop_bound_access_tokens = true

[[clients]]
client_id = "scim-dpop"
secret = "{SCIM_SECRET}"
grant_types = ["client_credentials"]
scopes = ["scim:read"]

[[clients]]
client_id = "gateway"
secret = "{GATEWAY_SECRET}"
grant_types = ["client_credentials"]
scopes = ["read"]
introspect_any_token = true
"""


def introspect(client: TestClient[Any], token: str) -> dict[str, Any]:
    response = client.post("/oauth/introspect", headers={**FORM, **basic("gateway",
                                                                           GATEWAY_SECRET)},
                           data={"token": token})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _app(store: StoreBackend, tmp_path: Path, clock: FakeClock, **env: str) -> Litestar:
    return build_app(store, tmp_path, clock=clock, extra_clients=EXTRA_CLIENTS, **env)


def _nonce(client: TestClient[Any], key: DpopKey, clock: FakeClock) -> str:
    """The server's nonce, the way a client learns it: a proof without one is answered
    use_dpop_nonce with a DPoP-Nonce header."""
    response = client.post("/oauth/token", headers={
        **FORM, **basic("envc", ENV_SECRET), "DPoP": key.proof("POST", TOKEN_URL,
                                                               iat=clock.now())},
        data={"grant_type": "client_credentials", "scope": "read"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "use_dpop_nonce"
    nonce: str = response.headers["dpop-nonce"]
    return nonce


def _token_request(client: TestClient[Any], data: dict[str, str], proof: str | None,
                   auth: dict[str, str] | None = None) -> Any:
    headers = {**FORM, **(auth if auth is not None else basic())}
    if proof is not None:
        headers["DPoP"] = proof
    return client.post("/oauth/token", headers=headers, data=data)


def _spa_tokens(client: TestClient[Any], app: Litestar, key: DpopKey, clock: FakeClock,
                nonce: str) -> dict[str, Any]:
    code = code_in(client, app, client_id="spa")
    response = _token_request(client, {
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER, "client_id": "spa"},
        key.proof("POST", TOKEN_URL, iat=clock.now(), nonce=nonce), auth={})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _userinfo(client: TestClient[Any], token: str, proof: str | None,
              scheme: str = "DPoP") -> Any:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return client.get("/oauth/userinfo", headers=headers)


def test_a_bound_client_credentials_token_after_a_nonce_round_trip(
    store: StoreBackend, tmp_path: Path
) -> None:
    clock = FakeClock()
    app = _app(store, tmp_path, clock)
    key = DpopKey("ES256")
    with running(app) as client:
        nonce = _nonce(client, key, clock)
        response = _token_request(client, {"grant_type": "client_credentials", "scope": "read"},
                                  key.proof("POST", TOKEN_URL, iat=clock.now(), nonce=nonce),
                                  auth=basic("envc", ENV_SECRET))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "DPoP"
        assert response.headers["dpop-nonce"] == nonce
        info = introspect(client, body["access_token"])
        assert info["active"] is True and info["cnf"] == {"jkt": key.jkt}
        assert info["token_type"] == "DPoP"
        # Without a proof: a bearer token, as before.
        plain = _token_request(client, {"grant_type": "client_credentials", "scope": "read"},
                               None, auth=basic("envc", ENV_SECRET)).json()
        assert plain["token_type"] == "Bearer" and "cnf" not in introspect(
            client, plain["access_token"])


def test_token_endpoint_refuses_replayed_wrong_htu_stale_and_foreign_proofs(
    store: StoreBackend, tmp_path: Path
) -> None:
    clock = FakeClock()
    app = _app(store, tmp_path, clock)
    key = DpopKey("EdDSA")
    data = {"grant_type": "client_credentials", "scope": "read"}
    auth = basic("envc", ENV_SECRET)
    with running(app) as client:
        nonce = _nonce(client, key, clock)
        proof = key.proof("POST", TOKEN_URL, iat=clock.now(), nonce=nonce)
        assert _token_request(client, data, proof, auth).status_code == 200
        cases = {
            "already used": proof,
            "htu": key.proof("POST", f"{ISSUER}/oauth/introspect", iat=clock.now(),
                             nonce=nonce),
            "iat": key.proof("POST", TOKEN_URL, iat=clock.now() - 120, nonce=nonce),
            "htm": key.proof("GET", TOKEN_URL, iat=clock.now(), nonce=nonce),
            "typ": key.proof("POST", TOKEN_URL, iat=clock.now(), nonce=nonce, typ="JWT"),
        }
        for needle, bad in cases.items():
            refused = _token_request(client, data, bad, auth)
            assert refused.status_code == 400, needle
            assert refused.json()["error"] == "invalid_dpop_proof", needle
            assert needle in refused.json()["error_description"], needle
        two = client.post("/oauth/token", data=data, headers=[
            ("Content-Type", FORM["Content-Type"]), ("Authorization", auth["Authorization"]),
            ("DPoP", proof), ("DPoP", proof)])
        assert two.status_code == 400 and two.json()["error"] == "invalid_dpop_proof"


def test_a_client_with_dpop_bound_access_tokens_must_send_a_proof(
    store: StoreBackend, tmp_path: Path
) -> None:
    clock = FakeClock()
    app = _app(store, tmp_path, clock)
    key = DpopKey("ES256")
    data = {"grant_type": "client_credentials", "scope": "read"}
    with running(app) as client:
        refused = _token_request(client, data, None, basic("bound", SECRET))
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof"
        nonce = refused.headers["dpop-nonce"]
        accepted = _token_request(client, data, key.proof("POST", TOKEN_URL, iat=clock.now(),
                                                          nonce=nonce), basic("bound", SECRET))
        assert accepted.status_code == 200 and accepted.json()["token_type"] == "DPoP"


def test_userinfo_with_dpop_and_every_refusal(store: StoreBackend, tmp_path: Path) -> None:
    clock = FakeClock()
    app = _app(store, tmp_path, clock)
    key = DpopKey("ES256")
    with running(app) as client:
        nonce = _nonce(client, key, clock)
        tokens = _spa_tokens(client, app, key, clock, nonce)
        token = tokens["access_token"]
        assert tokens["token_type"] == "DPoP"

        def proof(**kw: Any) -> str:
            options: dict[str, Any] = {"iat": clock.now(), "nonce": nonce, "access_token": token}
            options.update(kw)
            return key.proof("GET", USERINFO_URL, **options)

        good = proof()
        ok = _userinfo(client, token, good)
        assert ok.status_code == 200, ok.text
        assert ok.json()["sub"] == "user-42"

        def refused(response: Any, error: str) -> None:
            assert response.status_code == 401, response.text
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith("DPoP ") and f'error="{error}"' in challenge
            assert response.json()["error"] == error

        refused(_userinfo(client, token, None, scheme="Bearer"), "invalid_token")
        refused(_userinfo(client, token, good, scheme="Bearer"), "invalid_token")
        refused(_userinfo(client, token, None), "invalid_dpop_proof")
        refused(_userinfo(client, token, good), "invalid_dpop_proof")  # replayed jti
        other = DpopKey("ES256").proof("GET", USERINFO_URL, iat=clock.now(), nonce=nonce,
                                       access_token=token)
        refused(_userinfo(client, token, other), "invalid_dpop_proof")
        refused(_userinfo(client, token, proof(access_token="tk_other")), "invalid_dpop_proof")
        refused(_userinfo(client, token, key.proof("GET", TOKEN_URL, iat=clock.now(),
                                                   nonce=nonce, access_token=token)),
                "invalid_dpop_proof")
        refused(_userinfo(client, token, proof(iat=clock.now() - 120)), "invalid_dpop_proof")
        missing_nonce = _userinfo(client, token, proof(nonce=None))
        refused(missing_nonce, "use_dpop_nonce")
        assert missing_nonce.headers["dpop-nonce"] == nonce
        # An unbound token is a bearer token: not accepted under the DPoP scheme.
        plain = _token_request(client, {"grant_type": "client_credentials", "scope": "read"},
                               None, auth=basic("envc", ENV_SECRET)).json()
        refused(_userinfo(client, plain["access_token"], None), "invalid_token")


def test_refresh_of_a_bound_public_client_token_needs_the_same_key(
    store: StoreBackend, tmp_path: Path
) -> None:
    clock = FakeClock()
    app = _app(store, tmp_path, clock)
    key, thief = DpopKey("ES256"), DpopKey("ES256")
    with running(app) as client:
        nonce = _nonce(client, key, clock)
        first = _spa_tokens(client, app, key, clock, nonce)
        data = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                "client_id": "spa"}
        refresh_info = client.post("/oauth/introspect", headers={**FORM},
                                   data={"token": first["refresh_token"],
                                         "client_id": "spa"})
        assert refresh_info.status_code == 401  # public clients may not introspect
        for proof in (None, thief.proof("POST", TOKEN_URL, iat=clock.now(), nonce=nonce)):
            refused = _token_request(client, data, proof, auth={})
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"] == "invalid_dpop_proof"
        # Not burnt by the refusals: the key's holder rotates it, and stays bound.
        second = _token_request(client, data, key.proof("POST", TOKEN_URL, iat=clock.now(),
                                                        nonce=nonce), auth={})
        assert second.status_code == 200, second.text
        assert second.json()["token_type"] == "DPoP"
        assert introspect(client, second.json()["access_token"])["cnf"] == {"jkt": key.jkt}
        assert introspect(client, first["access_token"]) == {"active": False}
        again = _token_request(client, {**data, "refresh_token": second.json()["refresh_token"]},
                               thief.proof("POST", TOKEN_URL, iat=clock.now(), nonce=nonce),
                               auth={})
        assert again.json()["error"] == "invalid_dpop_proof"


def test_a_bound_service_token_at_scim_needs_its_proof(
    store: StoreBackend, tmp_path: Path
) -> None:
    clock = FakeClock()
    app = _app(store, tmp_path, clock)
    key = DpopKey("ES256")
    with running(app) as client:
        nonce = _nonce(client, key, clock)
        token = _token_request(client, {"grant_type": "client_credentials"},
                               key.proof("POST", TOKEN_URL, iat=clock.now(), nonce=nonce),
                               auth=basic("scim-dpop", SCIM_SECRET)).json()["access_token"]
        url = f"{ISSUER}/scim/v2/Users"
        as_bearer = client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {token}"})
        assert as_bearer.status_code == 401
        assert as_bearer.headers["www-authenticate"].startswith("DPoP ")
        proof = key.proof("GET", url, iat=clock.now(), nonce=nonce, access_token=token)
        ok = client.get("/scim/v2/Users", headers={"Authorization": f"DPoP {token}",
                                                   "DPoP": proof})
        assert ok.status_code == 200, ok.text
        replay = client.get("/scim/v2/Users", headers={"Authorization": f"DPoP {token}",
                                                       "DPoP": proof})
        assert replay.status_code == 401


def test_without_required_nonces_a_proof_needs_none(store: StoreBackend, tmp_path: Path) -> None:
    clock = FakeClock()
    app = _app(store, tmp_path, clock, DPOP_REQUIRE_NONCE="0")
    key = DpopKey("RS256")
    with running(app) as client:
        response = _token_request(client, {"grant_type": "client_credentials", "scope": "read"},
                                  key.proof("POST", TOKEN_URL, iat=clock.now()),
                                  auth=basic("envc", ENV_SECRET))
        assert response.status_code == 200 and response.json()["token_type"] == "DPoP"


def test_discovery_lists_the_dpop_algorithms(store: StoreBackend, tmp_path: Path) -> None:
    app = _app(store, tmp_path, FakeClock())
    with running(app) as client:
        document = client.get("/.well-known/openid-configuration").json()
        assert {"ES256", "EdDSA", "RS256", "PS256"} <= set(
            document["dpop_signing_alg_values_supported"])
        assert not {"none", "HS256"} & set(document["dpop_signing_alg_values_supported"])


"""Discovery metadata (OIDC Discovery, RFC 8414) and the JWKS."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from adapters.memory.store import MemoryStore
from tests.e2e.conftest import StoreBackend
from tests.e2e.oauth_setup import ISSUER, basic, build_app, exchange, running

WELL_KNOWN = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]


def _memory() -> StoreBackend:
    return StoreBackend("memory", instance=MemoryStore())


@pytest.mark.parametrize("path", WELL_KNOWN)
def test_metadata(tmp_path: Path, path: str) -> None:
    with running(build_app(_memory(), tmp_path)) as client:
        response = client.get(path)
        assert response.status_code == 200
        meta = response.json()
        assert meta["issuer"] == ISSUER
        assert meta["token_endpoint"] == f"{ISSUER}/oauth/token"
        assert meta["introspection_endpoint"] == f"{ISSUER}/oauth/introspect"
        assert meta["revocation_endpoint"] == f"{ISSUER}/oauth/revoke"
        assert meta["authorization_endpoint"] == f"{ISSUER}/oauth/authorize"
        assert meta["userinfo_endpoint"] == f"{ISSUER}/oauth/userinfo"
        assert meta["jwks_uri"] == f"{ISSUER}/jwks.json"
        assert meta["response_types_supported"] == ["code"]
        assert meta["response_modes_supported"] == ["query"]
        assert meta["code_challenge_methods_supported"] == ["S256"]
        assert set(meta["grant_types_supported"]) == {
            "authorization_code", "client_credentials", "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange"}
        assert meta["device_authorization_endpoint"] == f"{ISSUER}/oauth/device_authorization"
        assert set(meta["token_endpoint_auth_methods_supported"]) == {
            "client_secret_basic", "client_secret_post", "none", "client_secret_jwt",
            "private_key_jwt"}
        assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
        assert meta["subject_types_supported"] == ["public"]
        assert {"openid", "offline_access", "read"} <= set(meta["scopes_supported"])
        assert {"sub", "nonce", "amr", "at_hash"} <= set(meta["claims_supported"])


def test_metadata_states_what_authorization_responses_and_userinfo_do(tmp_path: Path) -> None:
    with running(build_app(_memory(), tmp_path)) as client:
        meta = client.get(WELL_KNOWN[0]).json()
        # Every authorization response carries iss (RFC 9207); clients only check it if told.
        assert meta["authorization_response_iss_parameter_supported"] is True
        # Omitted, OIDC Discovery 3 means "request_uri is supported"; it is refused.
        assert meta["request_uri_parameter_supported"] is False
        assert {"preferred_username", "name", "email", "email_verified"} <= set(
            meta["claims_supported"])


def test_metadata_lists_the_single_sign_on_parameters_and_claims(tmp_path: Path) -> None:
    with running(build_app(_memory(), tmp_path)) as client:
        meta = client.get(WELL_KNOWN[0]).json()
        assert meta["acr_values_supported"] == ["pwd", "mfa"]
        assert meta["prompt_values_supported"] == ["none", "login", "consent", "select_account"]
        assert {"sid", "acr", "amr", "auth_time"} <= set(meta["claims_supported"])


def test_both_documents_are_the_same(tmp_path: Path) -> None:
    with running(build_app(_memory(), tmp_path)) as client:
        assert client.get(WELL_KNOWN[0]).json() == client.get(WELL_KNOWN[1]).json()


def test_jwks_verifies_id_tokens(tmp_path: Path) -> None:
    app = build_app(_memory(), tmp_path)
    with running(app) as client:
        jwks = client.get("/jwks.json").json()
        assert jwks["keys"] and all("kid" in key and "d" not in key for key in jwks["keys"])
        id_token = exchange(client, app)["id_token"]
        claims = jwt.decode(id_token, KeySet.import_key_set(jwks)).claims
        assert claims["iss"] == ISSUER and claims["aud"] == "basic"


# Every endpoint the metadata advertises must be routed. /oauth/authorize and
# /oauth/userinfo come from the "Authorization endpoint with sign-in" work: this test
# fails until they are wired into create_app.
ADVERTISED = [
    ("authorization_endpoint", "GET"),
    ("token_endpoint", "POST"),
    ("introspection_endpoint", "POST"),
    ("revocation_endpoint", "POST"),
    ("userinfo_endpoint", "GET"),
    ("jwks_uri", "GET"),
    ("device_authorization_endpoint", "POST"),
]


@pytest.mark.parametrize(("field", "method"), ADVERTISED)
def test_every_advertised_endpoint_is_routed(
    store: StoreBackend, tmp_path: Path, field: str, method: str
) -> None:
    with running(build_app(store, tmp_path)) as client:
        url = client.get(WELL_KNOWN[0]).json()[field]
        response = client.request(method, urlsplit(url).path, headers=basic())
        assert response.status_code not in (404, 405), (field, response.status_code)

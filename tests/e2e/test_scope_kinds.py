"""Scope kinds through the app: a user cannot mint a service (identity-admin) token.

The attack: an ordinary user asks ``/oauth/authorize`` for ``scim:write`` on a client that
holds it, signs in with her own password, gets a token with her ``sub`` and
``scim:write``, and resets another user's password over SCIM. Service scopes are now
granted only through ``client_credentials``, and SCIM refuses any token with a user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import StoreBackend
from tests.e2e.oauth_setup import FORM, REDIRECT, VERIFIER, build_app, code_in, running
from tests.e2e.scim_support import BACKENDS, SCIM_JSON, scim_app
from tests.e2e.signin_flow import (
    PASSWORD,
    auth_params,
    harness,
    pkce_pair,
    redirect_params,
    submit,
)

MIXED_SECRET = "mixed-client-secret-0123456789abcdefghij"
MIXED_REDIRECT = "http://localhost:9000/callback"
#: Like the old demo client of ``make run``: every grant, user and service scopes.
MIXED_TOML = f"""
[[clients]]
client_id = "demo"
secret = "{MIXED_SECRET}"
redirect_uris = ["{MIXED_REDIRECT}", "{REDIRECT}"]
grant_types = ["authorization_code", "client_credentials", "refresh_token"]
scopes = ["openid", "profile", "email", "offline_access", "read", "write",
          "scim:read", "scim:write"]
first_party = true
"""
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _mixed_clients(tmp_path: Path) -> str:
    path = tmp_path / "mixed.toml"
    path.write_text(MIXED_TOML)
    return str(path)


@pytest.mark.parametrize("scope", ["openid scim:write", "openid scim:read", "scim:write"])
def test_a_user_cannot_ask_for_a_service_scope_at_the_authorization_endpoint(
    tmp_path: Path, scope: str
) -> None:
    with harness(tmp_path, CLIENTS_FILE=_mixed_clients(tmp_path)) as h:
        h.add_user("alice")
        _, challenge = pkce_pair()
        response = h.client.get("/oauth/authorize", params=auth_params(
            client_id="demo", redirect_uri=MIXED_REDIRECT, scope=scope,
            code_challenge=challenge), follow_redirects=False)
        # Refused before any sign-in page: the user is never asked for her password.
        params = redirect_params(response)
        assert params["error"] == "invalid_scope" and "code" not in params
        assert "client_credentials" in params["error_description"]
        assert params["state"] == "st-123"


def test_the_same_client_still_signs_users_in_with_user_scopes(tmp_path: Path) -> None:
    with harness(tmp_path, CLIENTS_FILE=_mixed_clients(tmp_path)) as h:
        h.add_user("alice")
        verifier, challenge = pkce_pair()
        page = h.client.get("/oauth/authorize", params=auth_params(
            client_id="demo", redirect_uri=MIXED_REDIRECT, scope="openid read",
            code_challenge=challenge), follow_redirects=False)
        assert page.status_code == 200
        code = redirect_params(submit(h.client, page, username="alice",
                                      password=PASSWORD))["code"]
        token = h.client.post("/oauth/token", auth=("demo", MIXED_SECRET), data={
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": MIXED_REDIRECT, "code_verifier": verifier})
        assert token.status_code == 200, token.text
        assert token.json()["scope"] == "openid read"
        # Her token is a user's token: SCIM refuses it outright.
        scim = h.client.get("/scim/v2/Users", headers={
            "Authorization": f"Bearer {token.json()['access_token']}"})
        assert scim.status_code == 403


@pytest.mark.parametrize("backend", BACKENDS)
def test_scim_refuses_a_users_token_even_with_scim_write(backend: str) -> None:
    # A token minted before the fix: user sub and scim:write. It must not reset passwords.
    with scim_app(backend) as h:
        created = h.client.post("/scim/v2/Users", headers=h.auth(), json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bob",
            "password": "bob's own passphrase, long enough"})
        assert created.status_code == 201, created.text
        bob = created.json()["id"]
        before = h.call(h.store.get_credentials, bob)
        user_token = h.token("scim:write scim:read", sub="alice-id")
        headers = {"Authorization": f"Bearer {user_token}", "Content-Type": SCIM_JSON}
        patched = h.client.patch(f"/scim/v2/Users/{bob}", headers=headers, json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "password", "value": "mallory-wins-now"}]})
        assert patched.status_code == 403
        assert patched.json()["status"] == "403"
        assert 'error="insufficient_scope"' in patched.headers["www-authenticate"]
        assert h.client.get(f"/scim/v2/Users/{bob}", headers=headers).status_code == 403
        assert h.call(h.store.get_credentials, bob) == before


def test_a_service_token_from_client_credentials_manages_identities(
    store: StoreBackend, tmp_path: Path
) -> None:
    app = build_app(store, tmp_path, CLIENTS_FILE=_mixed_clients(tmp_path))
    with running(app) as client:
        issued = client.post("/oauth/token", auth=("demo", MIXED_SECRET), headers=FORM,
                             data={"grant_type": "client_credentials", "scope": "scim:write"})
        assert issued.status_code == 200, issued.text
        token = issued.json()["access_token"]
        created = client.post("/scim/v2/Users", headers={
            "Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}, json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada"})
        assert created.status_code == 201, created.text


def test_a_service_scope_in_a_refresh_request_is_invalid_scope(
    store: StoreBackend, tmp_path: Path
) -> None:
    app = build_app(store, tmp_path, CLIENTS_FILE=_mixed_clients(tmp_path))
    with running(app) as client:
        code = code_in(client, app, client_id="demo", scope="openid offline_access read")
        first: dict[str, Any] = client.post(
            "/oauth/token", auth=("demo", MIXED_SECRET), headers=FORM, data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                "code_verifier": VERIFIER}).json()
        refused = client.post("/oauth/token", auth=("demo", MIXED_SECRET), headers=FORM, data={
            "grant_type": "refresh_token", "refresh_token": first["refresh_token"],
            "scope": "read scim:write"})
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
        # Refused without burning the refresh token.
        again = client.post("/oauth/token", auth=("demo", MIXED_SECRET), headers=FORM, data={
            "grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
        assert again.status_code == 200, again.text


def test_introspection_names_the_client_as_subject_of_its_own_token(
    store: StoreBackend, tmp_path: Path
) -> None:
    # RFC 9068 section 2.2: resource servers keying on sub work for services too.
    app = build_app(store, tmp_path, CLIENTS_FILE=_mixed_clients(tmp_path))
    with running(app) as client:
        issued = client.post("/oauth/token", auth=("demo", MIXED_SECRET), headers=FORM,
                             data={"grant_type": "client_credentials", "scope": "read"}).json()
        info = client.post("/oauth/introspect", auth=("demo", MIXED_SECRET), headers=FORM,
                           data={"token": issued["access_token"]}).json()
        assert info["active"] is True
        assert info["sub"] == info["client_id"] == "demo"

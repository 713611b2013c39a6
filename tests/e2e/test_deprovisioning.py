"""Deprovisioning over SCIM ends the user's grants, codes obtained before it included.

The bypass: a code obtained before SCIM deactivation or deletion still gave tokens,
introspection said active, and the refresh token rotated forever.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from tests.e2e.conftest import StoreBackend
from tests.e2e.oauth_setup import (
    CLIENTS_TOML,
    FORM,
    REDIRECT,
    USER_ID,
    VERIFIER,
    basic,
    build_app,
    code_in,
    exchange,
    introspect,
    running,
)

SCIM_SECRET = "provisioner-secret-0123456789abcdefghij"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PROVISIONER = f"""
[[clients]]
client_id = "provisioner"
secret = "{SCIM_SECRET}"
grant_types = ["client_credentials"]
scopes = ["scim:read", "scim:write"]
"""


def _app(store: StoreBackend, tmp_path: Path) -> Any:
    path = tmp_path / "with-provisioner.toml"
    path.write_text(CLIENTS_TOML + PROVISIONER)
    return build_app(store, tmp_path, CLIENTS_FILE=str(path))


def _scim(client: TestClient[Any]) -> dict[str, str]:
    token = client.post("/oauth/token", auth=("provisioner", SCIM_SECRET), headers=FORM,
                        data={"grant_type": "client_credentials"}).json()["access_token"]
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}


def _deprovision(client: TestClient[Any], how: str) -> None:
    headers = _scim(client)
    if how == "deactivated":
        response = client.patch(f"/scim/v2/Users/{USER_ID}", headers=headers, json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "active", "value": False}]})
        assert response.status_code == 200, response.text
        assert response.json()["active"] is False
    else:
        response = client.delete(f"/scim/v2/Users/{USER_ID}", headers=headers)
        assert response.status_code == 204, response.text


def _redeem(client: TestClient[Any], code: str) -> httpx.Response:
    return client.post("/oauth/token", headers={**FORM, **basic()}, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER})


@pytest.mark.parametrize("how", ["deactivated", "deleted"])
def test_a_code_obtained_before_deprovisioning_gives_no_tokens(
    store: StoreBackend, tmp_path: Path, how: str
) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        code = code_in(client, app)
        _deprovision(client, how)
        response = _redeem(client, code)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("how", ["deactivated", "deleted"])
def test_deprovisioning_ends_issued_tokens_and_refresh(
    store: StoreBackend, tmp_path: Path, how: str
) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        tokens = exchange(client, app)
        _deprovision(client, how)
        assert introspect(client, tokens["access_token"]) == {"active": False}
        assert introspect(client, tokens["refresh_token"]) == {"active": False}
        refreshed = client.post("/oauth/token", headers={**FORM, **basic()}, data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


def test_a_reactivated_user_needs_a_new_code(store: StoreBackend, tmp_path: Path) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        stale = code_in(client, app)
        _deprovision(client, "deactivated")
        reactivated = client.patch(f"/scim/v2/Users/{USER_ID}", headers=_scim(client), json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "active", "value": True}]})
        assert reactivated.status_code == 200, reactivated.text
        assert _redeem(client, stale).json()["error"] == "invalid_grant"
        fresh = _redeem(client, code_in(client, app))
        assert fresh.status_code == 200, fresh.text
        assert introspect(client, fresh.json()["access_token"])["active"] is True

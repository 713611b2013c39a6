"""Signing keys through the ASGI app, on memory and sql: ID tokens signed with ES256 and
EdDSA (per client, ``id_token_signed_response_alg``) verified by joserfc against
/jwks.json, truthful discovery, and a key rotation across a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from litestar.testing import TestClient

from adapters.jose_signer import generate_pem_key
from entrypoints.settings import ConfigError
from tests.e2e.conftest import StoreBackend
from tests.e2e.oauth_setup import (
    FORM,
    ISSUER,
    REDIRECT,
    SECRET,
    VERIFIER,
    basic,
    build_app,
    code_in,
    exchange,
    introspect,
    running,
)

PER_ALG_CLIENTS = "".join(f"""
[[clients]]
client_id = "{name}"
secret = "{SECRET}"
redirect_uris = ["{REDIRECT}"]
scopes = ["openid", "offline_access", "read"]
id_token_signed_response_alg = "{alg}"
""" for name, alg in (("es", "ES256"), ("ed", "EdDSA"), ("rs", "RS256")))


def _key(tmp_path: Path, name: str, alg: str) -> str:
    path = tmp_path / f"{name}.pem"
    path.write_bytes(generate_pem_key(alg))
    return str(path)


def _id_token(client: TestClient[Any], app: Any, client_id: str) -> str:
    code = code_in(client, app, client_id=client_id)
    response = client.post("/oauth/token", headers={**FORM, **basic(client_id)}, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER})
    assert response.status_code == 200, response.text
    token: str = response.json()["id_token"]
    return token


def _verify(client: TestClient[Any], token: str, alg: str, audience: str) -> Any:
    keys = KeySet.import_key_set(client.get("/jwks.json").json())
    decoded = jwt.decode(token, keys, algorithms=[alg])
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": ISSUER},
                          aud={"essential": True, "value": audience}).validate(decoded.claims)
    assert decoded.header["alg"] == alg
    return decoded


def test_id_tokens_are_signed_with_each_clients_algorithm(
    store: StoreBackend, tmp_path: Path
) -> None:
    keys = ",".join((_key(tmp_path, "ec", "ES256"), _key(tmp_path, "ed", "EdDSA"),
                     _key(tmp_path, "rsa", "RS256")))
    app = build_app(store, tmp_path, extra_clients=PER_ALG_CLIENTS, SIGNING_KEY_FILE=keys)
    with running(app) as client:
        jwks = client.get("/jwks.json").json()["keys"]
        assert [k["alg"] for k in jwks] == ["ES256", "EdDSA", "RS256"]
        assert all("d" not in k for k in jwks)
        meta = client.get("/.well-known/openid-configuration").json()
        assert meta["id_token_signing_alg_values_supported"] == ["RS256", "ES256", "EdDSA"]
        kids = {k["alg"]: k["kid"] for k in jwks}
        for client_id, alg in (("es", "ES256"), ("ed", "EdDSA"), ("rs", "RS256")):
            decoded = _verify(client, _id_token(client, app, client_id), alg, client_id)
            assert decoded.header["kid"] == kids[alg]
        # A client that names no algorithm gets RS256 (the OIDC default), the key being there.
        _verify(client, exchange(client, app)["id_token"], "RS256", "basic")


def test_without_an_rsa_key_the_primary_key_signs_and_discovery_says_so(
    store: StoreBackend, tmp_path: Path
) -> None:
    app = build_app(store, tmp_path, SIGNING_KEY_FILE=_key(tmp_path, "ed", "EdDSA"))
    with running(app) as client:
        meta = client.get("/.well-known/openid-configuration").json()
        assert meta["id_token_signing_alg_values_supported"] == ["EdDSA"]
        _verify(client, exchange(client, app)["id_token"], "EdDSA", "basic")


def test_a_client_alg_without_a_key_stops_the_start_up(
    store: StoreBackend, tmp_path: Path
) -> None:
    app = build_app(store, tmp_path, extra_clients=PER_ALG_CLIENTS,
                    SIGNING_KEY_FILE=_key(tmp_path, "rsa", "RS256"))
    with pytest.raises(BaseException) as refused, running(app):
        pass
    # The lifespan's failure, wrapped by the task group that ran it.
    found = refused.value
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    assert isinstance(found, ConfigError)
    assert found.variable == "CLIENTS_FILE" and "ES256" in str(found)


def test_rotation_old_tokens_verify_after_a_restart_with_new_and_old_keys(
    store: StoreBackend, tmp_path: Path
) -> None:
    old, new = _key(tmp_path, "old", "RS256"), _key(tmp_path, "new", "ES256")
    before = build_app(store, tmp_path, SIGNING_KEY_FILE=old)
    with running(before) as client:
        issued = exchange(client, before)
        old_kid = client.get("/jwks.json").json()["keys"][0]["kid"]
    # The restart: the same store, the new key first, the old one still published.
    after = build_app(store, tmp_path, SIGNING_KEY_FILE=f"{new},{old}")
    with running(after) as client:
        jwks = client.get("/jwks.json").json()["keys"]
        assert [k["kid"] for k in jwks][1] == old_kid and len(jwks) == 2
        assert _verify(client, issued["id_token"], "RS256", "basic").header["kid"] == old_kid
        # The grant survived the restart (sql; memory shares the store instance), its
        # access token still introspects and its refresh token still rotates.
        assert introspect(client, issued["access_token"])["active"] is True
        rotated = client.post("/oauth/token", headers={**FORM, **basic()}, data={
            "grant_type": "refresh_token", "refresh_token": issued["refresh_token"]})
        assert rotated.status_code == 200, rotated.text
        # New ID tokens: RS256 (the clients' default) by the old RSA key until it is
        # dropped, while logout tokens and the like use the new primary key.
        fresh = _verify(client, exchange(client, after)["id_token"], "RS256", "basic")
        assert fresh.header["kid"] == old_kid
    # Once the old key is dropped (after its tokens expired), its tokens stop verifying.
    dropped = build_app(store, tmp_path, SIGNING_KEY_FILE=new)
    with running(dropped) as client:
        keys = KeySet.import_key_set(client.get("/jwks.json").json())
        with pytest.raises(JoseError):
            jwt.decode(issued["id_token"], keys, algorithms=["RS256"])

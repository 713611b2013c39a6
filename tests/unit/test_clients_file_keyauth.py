"""CLIENTS_FILE clients that authenticate with a signed JWT (private_key_jwt with jwks or
jwks_uri, client_secret_jwt with its secret sealed), and OUTBOUND_ALLOW_LOOPBACK."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from joserfc.jwk import ECKey

from adapters.secret_sealing import AesGcmSecretSealer
from entrypoints.clients import load_clients
from entrypoints.settings import ConfigError, load_settings

SECRET = "hmac-client-secret-0123456789abcdefghij"
SEALER = AesGcmSecretSealer([os.urandom(32)])
KEY = ECKey.generate_key("P-256", private=True, parameters={"kid": "ec-1"})
HEAD = 'grant_types = ["client_credentials"]\nscopes = ["read"]\n'


def _load(tmp_path: Path, body: str, **env: str) -> list[object]:
    path = tmp_path / "clients.toml"
    path.write_text(f"[[clients]]\nclient_id = \"c\"\n{HEAD}{body}")
    settings = load_settings({"CLIENTS_FILE": str(path), **env})
    return list(load_clients(settings, SEALER))


def _jwks_toml() -> str:
    return "jwks = " + json.dumps({"keys": [KEY.as_dict(private=False)]}).replace('":', '" =')


def test_private_key_jwt_with_inline_jwks_or_jwks_uri(tmp_path: Path) -> None:
    (client,) = _load(tmp_path, 'token_endpoint_auth_method = "private_key_jwt"\n'
                      + _jwks_toml() + "\n")
    assert client.token_endpoint_auth_method == "private_key_jwt"  # type: ignore[attr-defined]
    assert client.jwks["keys"][0]["kid"] == "ec-1"  # type: ignore[attr-defined]
    assert client.secrets == ()  # type: ignore[attr-defined]
    (remote,) = _load(tmp_path, 'token_endpoint_auth_method = "private_key_jwt"\n'
                      'jwks_uri = "https://client.example/jwks.json"\n')
    assert remote.jwks_uri == "https://client.example/jwks.json"  # type: ignore[attr-defined]


def test_client_secret_jwt_keeps_its_secret_sealed(tmp_path: Path) -> None:
    (client,) = _load(tmp_path, f'token_endpoint_auth_method = "client_secret_jwt"\n'
                      f'secret = "{SECRET}"\n')
    (held,) = client.secrets  # type: ignore[attr-defined]
    assert held.sealed is not None and SECRET not in held.sealed
    assert SEALER.open(held.sealed, "client_secret_jwt:c").plaintext == SECRET


@pytest.mark.parametrize(("body", "problem"), [
    ('token_endpoint_auth_method = "private_key_jwt"\n', "needs jwks or jwks_uri"),
    ('token_endpoint_auth_method = "private_key_jwt"\njwks_uri = "http://client.example/k"\n',
     "must use https"),
    ('token_endpoint_auth_method = "private_key_jwt"\njwks_uri = "http://127.0.0.1:9/k"\n',
     "OUTBOUND_ALLOW_LOOPBACK=1"),
    ('token_endpoint_auth_method = "private_key_jwt"\njwks = { keys = [] }\n',
     "jwks must be a JWK Set"),
    (f'token_endpoint_auth_method = "private_key_jwt"\nsecret = "{SECRET}"\n'
     'jwks_uri = "https://client.example/k"\n', "has no secret; remove secret"),
    (f'secret = "{SECRET}"\njwks_uri = "http://client.example/k"\n', "must use https"),
    ('token_endpoint_auth_method = "client_secret_jwt"\n', "needs a secret"),
])
def test_bad_key_based_clients(tmp_path: Path, body: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        _load(tmp_path, body)


def test_loopback_jwks_uri_with_the_setting(tmp_path: Path) -> None:
    (client,) = _load(tmp_path, 'token_endpoint_auth_method = "private_key_jwt"\n'
                      'jwks_uri = "http://127.0.0.1:9/k"\n', OUTBOUND_ALLOW_LOOPBACK="1")
    assert client.jwks_uri == "http://127.0.0.1:9/k"  # type: ignore[attr-defined]


def test_outbound_allow_loopback_setting() -> None:
    assert load_settings({}).outbound_allow_loopback is False
    assert load_settings({"OUTBOUND_ALLOW_LOOPBACK": "1"}).outbound_allow_loopback is True
    assert load_settings({"OUTBOUND_ALLOW_LOOPBACK": "false"}).outbound_allow_loopback is False
    with pytest.raises(ConfigError, match="OUTBOUND_ALLOW_LOOPBACK: must be 1 or 0"):
        load_settings({"OUTBOUND_ALLOW_LOOPBACK": "maybe"})

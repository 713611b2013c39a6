"""The device grant in client metadata and in the settings: a device client (public, no
redirect URI) is accepted wherever client metadata is; ``DEVICE_CODE_SECONDS`` is bounded;
``CLIENT_CREDENTIALS`` clients do not get the new grant."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from domain.client_metadata import (
    DEFAULT_REGISTRATION_SCOPE,
    ClientMetadataError,
    MetadataSource,
    parse_client_metadata,
)
from domain.clients import GRANT_DEVICE_CODE, GRANT_TYPES
from entrypoints.clients import load_clients
from entrypoints.settings import ConfigError, load_settings

TV: dict[str, Any] = {"client_id": "tv", "client_name": "TV",
                      "token_endpoint_auth_method": "none",
                      "grant_types": [GRANT_DEVICE_CODE, "refresh_token"],
                      "scope": "openid profile offline_access"}


def test_the_device_grant_is_a_grant_type() -> None:
    assert GRANT_DEVICE_CODE == "urn:ietf:params:oauth:grant-type:device_code"
    assert GRANT_DEVICE_CODE in GRANT_TYPES


@pytest.mark.parametrize("source", list(MetadataSource))
def test_a_public_device_client_needs_no_redirect_uri_and_may_ask_for_openid(
    source: MetadataSource
) -> None:
    client = parse_client_metadata(TV, source=source, client_id="tv").client
    assert client.grant_types == {GRANT_DEVICE_CODE, "refresh_token"}
    assert client.is_public and client.redirect_uris == () and client.response_types == set()
    assert "openid" in client.scopes


def test_openid_still_needs_a_grant_a_user_signs_in_through() -> None:
    with pytest.raises(ClientMetadataError) as caught:
        parse_client_metadata({**TV, "token_endpoint_auth_method": "client_secret_basic",
                               "grant_types": ["client_credentials"]},
                              source=MetadataSource.ADMIN)
    assert caught.value.key == "scope" and GRANT_DEVICE_CODE in caught.value.description


def test_a_registered_device_client_gets_the_default_scope() -> None:
    doc = {key: value for key, value in TV.items() if key != "scope"}
    client = parse_client_metadata(doc, source=MetadataSource.REGISTRATION,
                                   client_id="cl_1").client
    assert client.scopes == {*DEFAULT_REGISTRATION_SCOPE, "offline_access"}


def test_client_credentials_clients_keep_the_grants_they_had() -> None:
    secret = "e" * 40
    registry = load_clients(load_settings({"CLIENT_CREDENTIALS": f"env:{secret}"}))
    client = registry.get("env")
    assert client is not None and hashlib.sha256(secret.encode()).hexdigest() in {
        s.digest for s in client.secrets}
    assert client.grant_types == {"authorization_code", "client_credentials", "refresh_token"}


def test_device_settings() -> None:
    defaults = load_settings({})
    assert (defaults.device_code_seconds, defaults.rate_limit_device_authorization_per_minute,
            defaults.rate_limit_device_code_failures_per_address,
            defaults.rate_limit_device_code_failures) == (600, 20, 10, 1000)
    tuned = load_settings({"DEVICE_CODE_SECONDS": "300",
                           "RATE_LIMIT_DEVICE_AUTHORIZATION_PER_MINUTE": "0",
                           "RATE_LIMIT_DEVICE_CODE_FAILURES_PER_ADDRESS": "3",
                           "RATE_LIMIT_DEVICE_CODE_FAILURES": "0"})
    assert (tuned.device_code_seconds, tuned.rate_limit_device_authorization_per_minute,
            tuned.rate_limit_device_code_failures_per_address,
            tuned.rate_limit_device_code_failures) == (300, 0, 3, 0)


@pytest.mark.parametrize("value", ["0", "59", "3601", "ten"])
def test_device_code_seconds_is_bounded(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"DEVICE_CODE_SECONDS": value})
    assert caught.value.variable == "DEVICE_CODE_SECONDS"

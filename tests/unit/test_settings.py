"""Settings are validated at load; every problem names its variable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from entrypoints.clients import load_clients, load_resource_servers
from entrypoints.settings import ConfigError, load_settings

STRONG = "s" * 32


def test_defaults_match_the_spec() -> None:
    settings = load_settings({})
    assert settings.store_backend == "hybrid"
    assert (settings.bind_host, settings.bind_port) == ("127.0.0.1", 8080)
    assert settings.external_base_url == "http://localhost:8080"
    assert settings.token_expiry_seconds == 3600
    assert settings.refresh_token_expiry_seconds == 1_209_600
    assert settings.refresh_token_max_lifetime_seconds == 90 * 86_400
    assert settings.auth_code_expiry_seconds == 600
    assert settings.allowed_scopes == (
        "openid", "profile", "email", "offline_access", "read", "write", "mfa"
    )
    assert settings.mfa_recent_auth_seconds == 600 and settings.sealing_key_files == ()
    assert settings.redis_url is None and settings.database_url is None


@pytest.mark.parametrize(
    ("env", "variable", "fragment"),
    [
        ({"STORE_BACKEND": "mongo"}, "STORE_BACKEND", "hybrid, sql"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL", "postgresql://"),
        ({"BIND_ADDR": "localhost"}, "BIND_ADDR", "host:port"),
        ({"BIND_ADDR": "127.0.0.1:99999"}, "BIND_ADDR", "host:port"),
        ({"BIND_ADDR": "bad host!:80"}, "BIND_ADDR", "not a host"),
        ({"CLIENT_CREDENTIALS": "no-colon"}, "CLIENT_CREDENTIALS", "client_id:secret"),
        ({"CLIENT_CREDENTIALS": "app:short"}, "CLIENT_CREDENTIALS", "'app'"),
        ({"CLIENT_CREDENTIALS": f"a:{STRONG};a:{STRONG}"}, "CLIENT_CREDENTIALS", "twice"),
        ({"CLIENT_REDIRECT_URIS": "app"}, "CLIENT_REDIRECT_URIS", "client_id:uri"),
        ({"CLIENT_REDIRECT_URIS": "app:/relative"}, "CLIENT_REDIRECT_URIS", "absolute"),
        ({"TOKEN_EXPIRY_SECONDS": "-5"}, "TOKEN_EXPIRY_SECONDS", "positive"),
        ({"REFRESH_TOKEN_EXPIRY_SECONDS": "soon"}, "REFRESH_TOKEN_EXPIRY_SECONDS", "positive"),
        ({"REFRESH_TOKEN_MAX_LIFETIME_SECONDS": "0"}, "REFRESH_TOKEN_MAX_LIFETIME_SECONDS",
         "positive"),
        ({"EXTERNAL_BASE_URL": "ftp://x"}, "EXTERNAL_BASE_URL", "http"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL", "redis://"),
        ({"REDIS_CLUSTER": "maybe"}, "REDIS_CLUSTER", "1 or 0"),
        ({"REDIS_CLUSTER": "1", "REDIS_URL": "unix:///run/redis.sock"}, "REDIS_CLUSTER", "redis://"),
        ({"ALLOWED_SCOPES": 'a,"b'}, "ALLOWED_SCOPES", "scope"),
        ({"CLIENTS_FILE": "/nonexistent/clients.toml"}, "CLIENTS_FILE", "no such file"),
        ({"SIGNING_KEY_FILE": "/nonexistent/key.pem"}, "SIGNING_KEY_FILE", "no such file"),
        ({"SEALING_KEY_FILE": "/nonexistent/seal.key"}, "SEALING_KEY_FILE", "no such file"),
        ({"MFA_RECENT_AUTH_SECONDS": "0"}, "MFA_RECENT_AUTH_SECONDS", "positive"),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], variable: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["postgres://u:p@db:5432/auth", "postgresql://u@db/auth", "postgresql+asyncpg://u:p@db/auth"],
)
def test_every_documented_database_url_form_is_accepted(url: str) -> None:
    assert load_settings({"STORE_BACKEND": "sql", "DATABASE_URL": url}).database_url == url


def test_client_secrets_are_not_kept_in_clear() -> None:
    secret = "x" * 40
    settings = load_settings({"CLIENT_CREDENTIALS": f"app:{secret}"})
    assert settings.client_credentials == (("app", hashlib.sha256(secret.encode()).hexdigest()),)
    assert secret not in repr(settings)


def test_lists_are_parsed() -> None:
    settings = load_settings(
        {
            "CLIENT_CREDENTIALS": f"a:{STRONG}; b:{STRONG};",
            "CLIENT_REDIRECT_URIS": "a:https://a.example/cb,http://localhost:3000/cb;b:https://b/cb",
            "ALLOWED_SCOPES": "read, write",
            "BIND_ADDR": "[::1]:9000",
        }
    )
    assert [c for c, _ in settings.client_credentials] == ["a", "b"]
    assert settings.client_redirect_uris["a"] == ("https://a.example/cb", "http://localhost:3000/cb")
    assert settings.allowed_scopes == ("read", "write")
    assert (settings.bind_host, settings.bind_port) == ("::1", 9000)


def test_throttling_settings_default_and_parse() -> None:
    defaults = load_settings({})
    assert defaults.rate_limit_signin_failures_per_address == 20
    assert defaults.rate_limit_client_auth_failures == 20
    assert defaults.trusted_proxies == ()  # X-Forwarded-For is believed from no one
    settings = load_settings({
        "RATE_LIMIT_SIGNIN_FAILURES_PER_ADDRESS": "0", "RATE_LIMIT_CLIENT_AUTH_FAILURES": "7",
        "TRUSTED_PROXIES": " 10.0.0.0/8, 192.0.2.7 ,::1 "})
    assert settings.rate_limit_signin_failures_per_address == 0
    assert settings.rate_limit_client_auth_failures == 7
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.0.2.7", "::1")
    assert load_settings({"TRUSTED_PROXIES": "*"}).trusted_proxies == ("*",)


@pytest.mark.parametrize("value", ["10.0.0.1/8", "lb.internal", "*,10.0.0.1", "300.1.1.1"])
def test_a_bad_trusted_proxy_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"TRUSTED_PROXIES": value})
    assert caught.value.variable == "TRUSTED_PROXIES"


@pytest.mark.parametrize("variable", ["RATE_LIMIT_SIGNIN_FAILURES_PER_ADDRESS",
                                      "RATE_LIMIT_CLIENT_AUTH_FAILURES"])
def test_a_bad_throttling_limit_names_its_variable(variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: "-1"})
    assert caught.value.variable == variable


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("1", True), ("true", True), ("YES", True), ("0", False), ("false", False)],
)
def test_redis_cluster_is_forced_either_way_or_detected(
    value: str | None, expected: bool | None
) -> None:
    env = {"REDIS_URL": "redis://127.0.0.1:7000/0"}
    if value is not None:
        env["REDIS_CLUSTER"] = value
    assert load_settings(env).redis_cluster is expected


def test_default_resource_is_an_absolute_uri_of_a_resource_server(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as malformed:
        load_settings({"DEFAULT_RESOURCE": "not a uri"})
    assert malformed.value.variable == "DEFAULT_RESOURCE"
    clients_file = tmp_path / "clients.toml"
    server = ('[[clients]]\nclient_id = "{id}"\nsecret = "{secret}"\nscopes = ["read"]\n'
              'grant_types = ["client_credentials"]\nresource_uri = "https://api.test"\n')
    clients_file.write_text(server.format(id="api", secret=STRONG))
    env = {"CLIENTS_FILE": str(clients_file)}
    settings = load_settings({**env, "DEFAULT_RESOURCE": "https://api.test"})
    assert load_resource_servers(settings, load_clients(settings)).default == "https://api.test"
    # One that no static client has may be a stored resource server's: looked up when used.
    stored = load_settings({**env, "DEFAULT_RESOURCE": "https://other.test"})
    assert load_resource_servers(stored, load_clients(stored)).default == "https://other.test"
    clients_file.write_text(server.format(id="api", secret=STRONG)
                            + server.format(id="twin", secret=STRONG))
    twins = load_settings(env)
    with pytest.raises(ConfigError) as clash:
        load_resource_servers(twins, load_clients(twins))
    assert clash.value.variable == "CLIENTS_FILE" and "same resource_uri" in str(clash.value)

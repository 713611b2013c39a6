"""Client registry: authentication and loading from the settings and CLIENTS_FILE."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.clients import (
    AUTH_BASIC,
    AUTH_NONE,
    AUTH_POST,
    Client,
    ClientRegistry,
    ClientSecret,
    hash_secret,
)
from entrypoints.cli import main
from entrypoints.clients import load_clients
from entrypoints.settings import ConfigError, load_settings

SECRET = "a-long-and-random-client-secret-0123456789"
OTHER_SECRET = "another-long-and-random-client-secret-xyz"

REGISTRY = ClientRegistry([
    Client(client_id="conf", name="c", secrets=(ClientSecret.of(SECRET),),
           auth_methods=frozenset({AUTH_BASIC})),
    Client(client_id="both", name="b", secrets=(ClientSecret.of(SECRET),),
           auth_methods=frozenset({AUTH_BASIC, AUTH_POST})),
    Client(client_id="pub", name="p", auth_methods=frozenset({AUTH_NONE})),
])


def test_authenticate_with_the_right_secret() -> None:
    client = REGISTRY.authenticate("conf", SECRET, AUTH_BASIC)
    assert client is not None and client.client_id == "conf"
    assert REGISTRY.authenticate("both", SECRET, AUTH_POST) is not None


@pytest.mark.parametrize(
    ("client_id", "secret", "method"),
    [
        ("conf", OTHER_SECRET, AUTH_BASIC),  # wrong secret
        ("conf", "", AUTH_BASIC),  # empty secret
        ("conf", None, AUTH_NONE),  # a confidential client must prove its secret
        ("conf", SECRET, AUTH_POST),  # a method the client is not registered for
        ("nobody", SECRET, AUTH_BASIC),  # unknown id
        ("nobody", None, AUTH_NONE),
        ("pub", SECRET, AUTH_POST),  # a public client has no secret to send
        ("pub", "", AUTH_BASIC),
    ],
)
def test_authentication_failures(client_id: str, secret: str | None, method: str) -> None:
    assert REGISTRY.authenticate(client_id, secret, method) is None


def test_public_client_by_id_alone() -> None:
    client = REGISTRY.authenticate("pub", None, AUTH_NONE)
    assert client is not None and client.is_public


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        ClientRegistry([Client(client_id="x", name="x"), Client(client_id="x", name="y")])


# Loading


def test_clients_from_environment() -> None:
    settings = load_settings({
        "CLIENT_CREDENTIALS": f"web:{SECRET};svc:{OTHER_SECRET}",
        "CLIENT_REDIRECT_URIS": "web:https://web.example/cb,https://web.example/cb2",
        "ALLOWED_SCOPES": "openid,read",
    })
    registry = load_clients(settings)
    web = registry.get("web")
    assert web is not None
    assert web.redirect_uris == ("https://web.example/cb", "https://web.example/cb2")
    assert web.scopes == {"openid", "read"}
    assert web.grant_types == {"authorization_code", "client_credentials", "refresh_token"}
    assert registry.authenticate("web", SECRET, AUTH_BASIC) is web
    assert registry.authenticate("svc", OTHER_SECRET, AUTH_POST) is not None


def test_redirect_uris_for_an_unknown_client_are_refused() -> None:
    settings = load_settings({"CLIENT_REDIRECT_URIS": "ghost:https://x.example/cb"})
    with pytest.raises(ConfigError, match=r"CLIENT_REDIRECT_URIS.*ghost"):
        load_clients(settings)


def _file(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "clients.toml"
    path.write_text(text)
    return {"CLIENTS_FILE": str(path)}


GOOD_FILE = f"""
[[clients]]
client_id = "demo"
name = "Demo app"
secret = "{SECRET}"
redirect_uris = ["http://localhost:9000/callback"]
grant_types = ["authorization_code", "refresh_token", "client_credentials"]
scopes = ["openid", "offline_access", "scim:read"]
token_endpoint_auth_method = "client_secret_post"

[[clients]]
client_id = "spa"
public = true
redirect_uris = ["http://localhost:3000/cb"]
scopes = ["openid", "profile"]
"""


def test_clients_file(tmp_path: Path) -> None:
    registry = load_clients(load_settings(_file(tmp_path, GOOD_FILE)))
    demo = registry.get("demo")
    assert demo is not None and demo.name == "Demo app"
    assert demo.scopes == {"openid", "offline_access", "scim:read"}
    assert demo.auth_methods == {AUTH_POST}
    assert registry.authenticate("demo", SECRET, AUTH_POST) is demo
    assert registry.authenticate("demo", SECRET, AUTH_BASIC) is None
    spa = registry.get("spa")
    assert spa is not None and spa.is_public and spa.auth_methods == {AUTH_NONE}
    assert spa.grant_types == {"authorization_code", "refresh_token"}


def test_pkce_is_required_unless_a_confidential_client_opts_out(tmp_path: Path) -> None:
    text = GOOD_FILE + f"""
[[clients]]
client_id = "legacy"
secret = "{SECRET}"
redirect_uris = ["https://legacy.example/cb"]
scopes = ["openid"]
require_pkce = false
"""
    registry = load_clients(load_settings(_file(tmp_path, text)))
    demo, spa, legacy = (registry.get(name) for name in ("demo", "spa", "legacy"))
    assert demo is not None and demo.needs_pkce
    assert spa is not None and spa.needs_pkce
    assert legacy is not None and not legacy.needs_pkce


def test_clients_from_the_environment_need_pkce() -> None:
    registry = load_clients(load_settings({"CLIENT_CREDENTIALS": f"web:{SECRET}"}))
    web = registry.get("web")
    assert web is not None and web.needs_pkce


def test_a_client_mixing_user_grants_and_service_scopes_still_loads(tmp_path: Path) -> None:
    # The scope kinds decide per grant (domain.scopes); the file need not split the client.
    text = f"""
[[clients]]
client_id = "mixed"
secret = "{SECRET}"
redirect_uris = ["https://mixed.example/cb"]
grant_types = ["authorization_code", "refresh_token", "client_credentials"]
scopes = ["openid", "offline_access", "read", "scim:read", "scim:write", "admin"]
"""
    mixed = load_clients(load_settings(_file(tmp_path, text))).get("mixed")
    assert mixed is not None
    assert mixed.scopes == {"openid", "offline_access", "read", "scim:read", "scim:write",
                            "admin"}


def test_secret_is_not_kept_in_clear(tmp_path: Path) -> None:
    registry = load_clients(load_settings(_file(tmp_path, GOOD_FILE)))
    demo = registry.get("demo")
    assert demo is not None and demo.secrets[0].digest == hash_secret(SECRET)
    assert SECRET not in repr(demo)


def test_file_and_environment_are_merged(tmp_path: Path) -> None:
    env = {**_file(tmp_path, GOOD_FILE), "CLIENT_CREDENTIALS": f"web:{SECRET}"}
    assert {c.client_id for c in load_clients(load_settings(env))} == {"demo", "spa", "web"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[[clients]]\nclient_id = "x"\nsecret = "short"\nscopes = ["read"]\n'
         'grant_types = ["client_credentials"]',
         "client 'x': secret must be a string of at least 32 characters"),
        ('[[clients]]\nclient_id = "x"\npublic = true\nsecret = "' + SECRET + '"\n'
         'scopes = ["read"]\nredirect_uris = ["https://x/cb"]',
         "client 'x': a client using none has no secret"),
        ('[[clients]]\nclient_id = "x"\nscopes = ["read"]\ngrant_types = ["client_credentials"]',
         "client 'x': a confidential client needs a secret"),
        ('[[clients]]\nclient_id = "x"\npublic = true\nscopes = ["read"]\n'
         'grant_types = ["client_credentials"]', "cannot use client_credentials"),
        ('[[clients]]\nclient_id = "x"\nsecret = "' + SECRET + '"\nscopes = ["read"]\n'
         'grant_types = ["password"]', "unsupported grant type"),
        ('[[clients]]\nclient_id = "x"\nsecret = "' + SECRET + '"\nscopes = ["read"]',
         "needs at least one redirect URI"),
        ('[[clients]]\nclient_id = "x"\nsecret = "' + SECRET + '"\nscopes = ["read"]\n'
         'redirect_uris = ["/relative"]', "must be an absolute URI"),
        ('[[clients]]\nclient_id = "x"\nsecret = "' + SECRET + '"\n'
         'grant_types = ["client_credentials"]', "scope is required"),
        ('[[clients]]\nclient_id = "x"\nsecret = "' + SECRET + '"\nscopes = ["read"]\n'
         'grant_types = ["client_credentials"]\ntoken_endpoint_auth_method = "none"',
         "a client using none has no secret"),
        ('[[clients]]\nclient_id = "x"\nsecret = "' + SECRET + '"\nscopes = ["read"]\n'
         'grant_types = ["client_credentials"]\nscopez = "typo"', "unknown key(s): scopez"),
        ('[[clients]]\nsecret = "' + SECRET + '"', "client #1 needs a client_id"),
        ('[[clients]]\nclient_id = "x"\npublic = true\nscopes = ["read"]\n'
         'redirect_uris = ["https://x/cb"]\nrequire_pkce = false',
         "client 'x': a public client cannot set require_pkce to false"),
        ('[[clients]]\nclient_id = "x"\nsecret = "' + SECRET + '"\nscopes = ["read"]\n'
         'redirect_uris = ["https://x/cb"]\nrequire_pkce = "no"',
         "require_pkce must be true or false"),
        ('[[clients]]\nclient_id = "x"\nsecret = "' + SECRET + '"\nscopes = ["read"]\n'
         'grant_types = ["client_credentials"]\nscope = "read"', "scope or scopes, not both"),
        ("[[clients]\n", "not valid TOML"),
        ('[[clients]]\nclient_id = "x"\nsecret = "' + SECRET + '"\nscopes = ["read"]\n'
         'grant_types = ["client_credentials"]\n[[clients]]\nclient_id = "x"\n'
         'secret = "' + SECRET + '"\nscopes = ["read"]\ngrant_types = ["client_credentials"]',
         "client 'x' is also declared"),
    ],
)
def test_bad_clients_file(tmp_path: Path, text: str, problem: str) -> None:
    settings = load_settings(_file(tmp_path, text))
    with pytest.raises(ConfigError) as caught:
        load_clients(settings)
    assert caught.value.variable == "CLIENTS_FILE"
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)
    assert SECRET not in str(caught.value)


def test_serve_exits_2_with_one_line_on_a_bad_clients_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = '[[clients]]\nclient_id = "weak"\nsecret = "tooshort"\nscopes = ["read"]\n'
    for name, value in _file(tmp_path, text).items():
        monkeypatch.setenv(name, value)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "CLIENTS_FILE" in err and "'weak'" in err and "Traceback" not in err

"""Client metadata (domain/client_metadata.py): every key, every source, every error.

One reader serves ``CLIENTS_FILE`` (``file``), the admin API and the CLI (``admin``) and
dynamic registration (``registration``); an error always names the key that caused it.
"""

from __future__ import annotations

from typing import Any

import pytest

from domain.client_admin import client_view
from domain.client_metadata import (
    DEFAULT_REGISTRATION_SCOPE,
    MAX_LIST_LENGTH,
    ClientMetadataError,
    MetadataSource,
    client_metadata,
    is_loopback_host,
    outbound_url_problem,
    parse_client_metadata,
)
from domain.clients import AUTH_BASIC, AUTH_NONE, AUTH_POST, AUTH_PRIVATE_KEY_JWT, AUTH_SECRET_JWT

FILE = MetadataSource.FILE
ADMIN = MetadataSource.ADMIN
REGISTRATION = MetadataSource.REGISTRATION
SECRET = "s" * 40
EC_KEY = {"kty": "EC", "crv": "P-256", "kid": "k1",
          "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
          "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}

#: Every key the admin source accepts, each with a value other than its default.
FULL: dict[str, Any] = {
    "client_id": "billing",
    "client_name": "Billing",
    "client_secret": SECRET,
    "redirect_uris": ["https://billing.example/cb", "http://127.0.0.1/cb"],
    "post_logout_redirect_uris": ["https://billing.example/bye"],
    "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
    "response_types": ["code"],
    "scope": "openid profile read admin",
    "token_endpoint_auth_method": "client_secret_post",
    "jwks_uri": "https://billing.example/jwks.json",
    "backchannel_logout_uri": "https://billing.example/logout",
    "backchannel_logout_session_required": True,
    "access_token_lifetime": 600,
    "refresh_token_lifetime": 86_400,
    "require_pkce": False,
    "require_mfa": True,
    "first_party": True,
    "allowed_cors_origins": ["https://billing.example", "http://localhost:3000"],
}

MINIMAL: dict[str, Any] = {"client_id": "c1", "redirect_uris": ["https://app.example/cb"],
                           "scope": "openid"}


def parse(doc: dict[str, Any], source: MetadataSource = ADMIN, **kw: Any) -> Any:
    return parse_client_metadata(doc, source=source, **kw)


def error_of(doc: dict[str, Any], source: MetadataSource = ADMIN,
             **kw: Any) -> ClientMetadataError:
    with pytest.raises(ClientMetadataError) as caught:
        parse_client_metadata(doc, source=source, **kw)
    return caught.value


# Every key


def test_every_key_is_read_from_the_admin_source() -> None:
    draft = parse(FULL)
    c = draft.client
    assert draft.secret == SECRET
    assert c.client_id == "billing" and c.name == "Billing"
    assert c.secrets == ()  # the secret is the caller's to hash; never in the client
    assert c.redirect_uris == ("https://billing.example/cb", "http://127.0.0.1/cb")
    assert c.post_logout_redirect_uris == ("https://billing.example/bye",)
    assert c.grant_types == {"authorization_code", "refresh_token", "client_credentials"}
    assert c.response_types == {"code"}
    assert c.scopes == {"openid", "profile", "read", "admin"}
    assert c.auth_methods == {AUTH_POST} and c.token_endpoint_auth_method == AUTH_POST
    assert c.jwks is None and c.jwks_uri == "https://billing.example/jwks.json"
    assert c.backchannel_logout_uri == "https://billing.example/logout"
    assert c.backchannel_logout_session_required is True
    assert c.access_token_lifetime == 600 and c.refresh_token_lifetime == 86_400
    assert c.require_pkce is False and c.require_mfa is True and c.first_party is True
    assert c.allowed_cors_origins == ("https://billing.example", "http://localhost:3000")
    assert c.static is False and c.registered is False and c.version == 0


def test_defaults() -> None:
    c = parse({"client_id": "c1", "redirect_uris": ["https://app.example/cb"],
               "scope": "openid"}).client
    assert c.name == "c1"
    assert c.grant_types == {"authorization_code", "refresh_token"}
    assert c.response_types == {"code"}
    assert c.auth_methods == {AUTH_BASIC}
    assert c.require_pkce is True and c.require_mfa is False and c.first_party is False
    assert c.access_token_lifetime is None and c.refresh_token_lifetime is None
    assert c.jwks is None and c.jwks_uri is None and c.backchannel_logout_uri is None
    assert c.post_logout_redirect_uris == () and c.allowed_cors_origins == ()


def test_the_default_client_id_is_used_when_the_document_has_none() -> None:
    doc = {k: v for k, v in MINIMAL.items() if k != "client_id"}
    assert parse(doc, client_id="generated").client.client_id == "generated"
    assert parse(MINIMAL, client_id="generated").client.client_id == "c1"


def test_jwks_for_private_key_jwt() -> None:
    c = parse({**MINIMAL, "token_endpoint_auth_method": AUTH_PRIVATE_KEY_JWT,
               "jwks": {"keys": [EC_KEY]}}).client
    assert c.jwks == {"keys": [EC_KEY]} and c.auth_methods == {AUTH_PRIVATE_KEY_JWT}


def test_a_client_credentials_client_needs_no_redirect_uri_nor_response_type() -> None:
    c = parse({"client_id": "svc", "grant_types": ["client_credentials"],
               "scope": "scim:read"}).client
    assert c.response_types == frozenset() and c.redirect_uris == ()


def test_public_client_by_auth_method_none() -> None:
    c = parse({**MINIMAL, "token_endpoint_auth_method": "none"}).client
    assert c.is_public and c.needs_pkce


def test_lists_keep_their_order_without_duplicates() -> None:
    c = parse({**MINIMAL, "redirect_uris": ["https://a.example/cb", "https://b.example/cb",
                                            "https://a.example/cb"],
               "scope": "read openid  read"}).client
    assert c.redirect_uris == ("https://a.example/cb", "https://b.example/cb")
    assert c.scopes == {"read", "openid"}


# What is shown, and read back


def test_client_metadata_shows_rfc_names_and_never_a_secret() -> None:
    draft = parse(FULL)
    shown = client_metadata(draft.client)
    assert shown["client_name"] == "Billing"
    assert shown["scope"] == "admin openid profile read"
    assert shown["token_endpoint_auth_method"] == AUTH_POST
    assert "client_secret" not in shown and SECRET not in repr(shown)
    assert "jwks" not in shown  # absent optional keys are left out, not null


def test_what_a_get_shows_is_accepted_back_as_the_same_client() -> None:
    first = parse(FULL).client
    view = client_view(first)
    # The keys the server manages (version, static, secrets, ...) are ignored on input.
    assert {"version", "static", "secrets", "client_id_issued_at"} <= set(view)
    again = parse(view).client
    assert again == first


# Unknown keys, per source


@pytest.mark.parametrize("source", [FILE, ADMIN])
def test_an_unknown_key_is_refused_with_its_name(source: MetadataSource) -> None:
    doc = {**MINIMAL, "scope": "openid", "redirect_uri": "https://typo.example/cb"}
    if source is FILE:
        doc["secret"] = SECRET
    error = error_of(doc, source)
    assert error.key == "redirect_uri"
    assert "redirect_uri" in error.description
    assert error.error == "invalid_client_metadata"


def test_several_unknown_keys_are_all_named_in_one_line() -> None:
    error = error_of({**MINIMAL, "zeta": 1, "alpha": 2})
    assert error.key == "alpha"
    assert error.description == "unknown key(s): alpha, zeta"


def test_unknown_metadata_in_a_registration_is_ignored() -> None:
    draft = parse({"redirect_uris": ["https://app.example/cb"], "logo_uri": "x",
                   "software_statement": "y"}, REGISTRATION, client_id="cl_1")
    assert draft.client.client_id == "cl_1"


def test_server_managed_keys_are_ignored_in_the_admin_source_only() -> None:
    doc = {**MINIMAL, "version": 7, "static": True, "client_id_issued_at": 1, "secrets": []}
    assert parse(doc).client.static is False
    assert error_of({**doc, "secret": SECRET}, FILE).key == "client_id_issued_at"


@pytest.mark.parametrize("key", ["secret", "scopes", "public", "name"])
def test_the_older_file_keys_are_unknown_to_the_admin_api(key: str) -> None:
    assert error_of({**MINIMAL, key: "x"}).key == key


# The older CLIENTS_FILE keys


def test_toml_aliases_secret_scopes_public_and_name() -> None:
    draft = parse({"client_id": "web", "name": "Web", "secret": SECRET,
                   "redirect_uris": ["https://web.example/cb"], "scopes": ["openid", "read"]},
                  FILE)
    assert draft.secret == SECRET
    assert draft.client.name == "Web" and draft.client.scopes == {"openid", "read"}
    public = parse({"client_id": "spa", "public": True,
                    "redirect_uris": ["https://spa.example/cb"], "scopes": ["openid"]}, FILE)
    assert public.client.auth_methods == {AUTH_NONE} and public.secret is None


def test_the_rfc_names_work_in_the_file_too() -> None:
    draft = parse({"client_id": "web", "client_name": "Web", "client_secret": SECRET,
                   "redirect_uris": ["https://web.example/cb"], "scope": "openid read"}, FILE)
    assert draft.secret == SECRET and draft.client.scopes == {"openid", "read"}


def test_a_confidential_file_client_needs_a_secret_but_an_admin_one_gets_one_generated() -> None:
    doc = {"client_id": "web", "redirect_uris": ["https://web.example/cb"], "scope": "openid"}
    assert error_of(doc, FILE).key == "secret"
    assert parse(doc, ADMIN).secret is None  # create_client generates it


# Registration


def test_registration_defaults_and_issued_id() -> None:
    draft = parse({"client_id": "chosen", "redirect_uris": ["https://app.example/cb"]},
                  REGISTRATION, client_id="cl_issued")
    c = draft.client
    assert c.client_id == "cl_issued"  # the server issues ids (RFC 7591 section 3.2.1)
    assert c.registered is True
    assert c.scopes == {*DEFAULT_REGISTRATION_SCOPE, "offline_access"}


def test_registration_ignores_what_the_operator_decides() -> None:
    c = parse({"redirect_uris": ["https://app.example/cb"], "first_party": True,
               "access_token_lifetime": 600, "refresh_token_lifetime": 600},
              REGISTRATION, client_id="cl_1").client
    assert c.first_party is False
    assert c.access_token_lifetime is None and c.refresh_token_lifetime is None


@pytest.mark.parametrize("scope", ["openid admin", "scim:read", "openid scim:write"])
def test_registration_refuses_service_scopes(scope: str) -> None:
    error = error_of({"redirect_uris": ["https://app.example/cb"], "scope": scope,
                      "grant_types": ["authorization_code", "client_credentials"]},
                     REGISTRATION, client_id="cl_1")
    assert error.key == "scope" and "service scopes" in error.description


@pytest.mark.parametrize(("uri", "public", "ok"), [
    ("https://app.example/cb", False, True),
    ("http://127.0.0.1/cb", True, True),
    ("http://[::1]:8080/cb", True, True),
    ("http://localhost/cb", True, True),
    ("http://app.example/cb", False, False),
    ("com.example.app:/cb", True, True),
    ("com.example.app:/cb", False, False),  # a private-use scheme is for native apps only
    ("myapp:/cb", True, False),  # not named after a domain
])
def test_registration_redirect_uri_rules(uri: str, public: bool, ok: bool) -> None:
    doc: dict[str, Any] = {"redirect_uris": [uri]}
    if public:
        doc["token_endpoint_auth_method"] = "none"
    if ok:
        assert parse(doc, REGISTRATION, client_id="cl_1").client.redirect_uris == (uri,)
    else:
        error = error_of(doc, REGISTRATION, client_id="cl_1")
        assert error.key == "redirect_uris" and error.error == "invalid_redirect_uri"


def test_an_operator_may_register_http_and_custom_schemes() -> None:
    c = parse({**MINIMAL, "redirect_uris": ["http://intranet.example/cb", "myapp:/cb"]}).client
    assert c.redirect_uris == ("http://intranet.example/cb", "myapp:/cb")


# Every error, with its key


NUL = "a\x00b"

ERRORS: list[tuple[str, dict[str, Any], str, str]] = [
    # (id, changes to MINIMAL, key named, error code)
    ("client_id missing", {"client_id": None}, "client_id", "invalid_client_metadata"),
    ("client_id not a string", {"client_id": 5}, "client_id", "invalid_client_metadata"),
    ("client_id with space", {"client_id": "a b"}, "client_id", "invalid_client_metadata"),
    ("client_id too long", {"client_id": "a" * 256}, "client_id", "invalid_client_metadata"),
    ("client_id NUL", {"client_id": NUL}, "client_id", "invalid_client_metadata"),
    ("client_name not a string", {"client_name": 1}, "client_name", "invalid_client_metadata"),
    ("client_name NUL", {"client_name": NUL}, "client_name", "invalid_client_metadata"),
    ("client_name too long", {"client_name": "n" * 2001}, "client_name",
     "invalid_client_metadata"),
    ("client_secret short", {"client_secret": "short"}, "client_secret",
     "invalid_client_metadata"),
    ("client_secret not a string", {"client_secret": 12345}, "client_secret",
     "invalid_client_metadata"),
    ("client_secret NUL", {"client_secret": "s" * 40 + "\x00"}, "client_secret",
     "invalid_client_metadata"),
    ("client_secret for a public client", {"client_secret": SECRET,
                                           "token_endpoint_auth_method": "none"},
     "client_secret", "invalid_client_metadata"),
    ("auth method unknown", {"token_endpoint_auth_method": "tls_client_auth"},
     "token_endpoint_auth_method", "invalid_client_metadata"),
    ("redirect_uris not a list", {"redirect_uris": "https://a.example/cb"}, "redirect_uris",
     "invalid_client_metadata"),
    ("redirect_uris empty for code", {"redirect_uris": []}, "redirect_uris",
     "invalid_redirect_uri"),
    ("redirect_uri relative", {"redirect_uris": ["/cb"]}, "redirect_uris",
     "invalid_redirect_uri"),
    ("redirect_uri fragment", {"redirect_uris": ["https://a.example/cb#x"]}, "redirect_uris",
     "invalid_redirect_uri"),
    ("redirect_uri javascript", {"redirect_uris": ["javascript:alert(1)"]}, "redirect_uris",
     "invalid_redirect_uri"),
    ("redirect_uri no host", {"redirect_uris": ["https:///cb"]}, "redirect_uris",
     "invalid_redirect_uri"),
    ("redirect_uri bad port", {"redirect_uris": ["https://a.example:99999/cb"]},
     "redirect_uris", "invalid_redirect_uri"),
    ("redirect_uri bad host", {"redirect_uris": ["https://[::1/cb"]}, "redirect_uris",
     "invalid_redirect_uri"),
    ("redirect_uri NUL", {"redirect_uris": [f"https://a.example/{NUL}"]}, "redirect_uris",
     "invalid_client_metadata"),
    ("too many redirect_uris", {"redirect_uris": [f"https://a.example/{i}"
                                                  for i in range(MAX_LIST_LENGTH + 1)]},
     "redirect_uris", "invalid_client_metadata"),
    ("post_logout fragment", {"post_logout_redirect_uris": ["https://a.example/#x"]},
     "post_logout_redirect_uris", "invalid_redirect_uri"),
    ("grant type unknown", {"grant_types": ["password"]}, "grant_types",
     "invalid_client_metadata"),
    ("grant types empty", {"grant_types": []}, "grant_types", "invalid_client_metadata"),
    ("public client_credentials", {"token_endpoint_auth_method": "none",
                                   "grant_types": ["client_credentials"]}, "grant_types",
     "invalid_client_metadata"),
    ("response type token", {"response_types": ["token"]}, "response_types",
     "invalid_client_metadata"),
    ("response type without code grant", {"grant_types": ["client_credentials"],
                                          "scope": "read", "response_types": ["code"]},
     "response_types", "invalid_client_metadata"),
    ("scope missing", {"scope": None}, "scope", "invalid_client_metadata"),
    ("scope a list", {"scope": ["openid"]}, "scope", "invalid_client_metadata"),
    ("scope empty", {"scope": " "}, "scope", "invalid_client_metadata"),
    ("scope quote", {"scope": 'openid "x'}, "scope", "invalid_client_metadata"),
    ("scope NUL", {"scope": f"openid {NUL}"}, "scope", "invalid_client_metadata"),
    ("openid without code", {"grant_types": ["client_credentials"], "response_types": [],
                             "scope": "openid"}, "scope", "invalid_client_metadata"),
    ("jwks and jwks_uri", {"jwks": {"keys": [EC_KEY]},
                           "jwks_uri": "https://a.example/jwks"}, "jwks",
     "invalid_client_metadata"),
    ("jwks not a set", {"jwks": [EC_KEY]}, "jwks", "invalid_client_metadata"),
    ("jwks private", {"jwks": {"keys": [{**EC_KEY, "d": "secret"}]}}, "jwks",
     "invalid_client_metadata"),
    ("jwks symmetric", {"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, "jwks",
     "invalid_client_metadata"),
    ("jwks nested NUL", {"jwks": {"keys": [{**EC_KEY, "kid": NUL}]}}, "jwks",
     "invalid_client_metadata"),
    ("jwks NUL member name", {"jwks": {"keys": [{**EC_KEY, NUL: "x"}]}}, "jwks",
     "invalid_client_metadata"),
    ("private_key_jwt without keys", {"token_endpoint_auth_method": "private_key_jwt"},
     "jwks", "invalid_client_metadata"),
    ("jwks_uri http", {"jwks_uri": "http://keys.example/jwks"}, "jwks_uri",
     "invalid_client_metadata"),
    ("jwks_uri loopback without the setting", {"jwks_uri": "http://127.0.0.1:9/jwks"},
     "jwks_uri", "invalid_client_metadata"),
    ("jwks_uri NUL", {"jwks_uri": f"https://keys.example/{NUL}"}, "jwks_uri",
     "invalid_client_metadata"),
    ("backchannel_logout_uri http", {"backchannel_logout_uri": "http://a.example/logout"},
     "backchannel_logout_uri", "invalid_client_metadata"),
    ("backchannel_logout_uri not a string", {"backchannel_logout_uri": 3},
     "backchannel_logout_uri", "invalid_client_metadata"),
    ("session_required not a bool", {"backchannel_logout_session_required": "yes"},
     "backchannel_logout_session_required", "invalid_client_metadata"),
    ("access lifetime too short", {"access_token_lifetime": 59}, "access_token_lifetime",
     "invalid_client_metadata"),
    ("access lifetime too long", {"access_token_lifetime": 86_401}, "access_token_lifetime",
     "invalid_client_metadata"),
    ("access lifetime a bool", {"access_token_lifetime": True}, "access_token_lifetime",
     "invalid_client_metadata"),
    ("refresh lifetime a string", {"refresh_token_lifetime": "600"},
     "refresh_token_lifetime", "invalid_client_metadata"),
    ("require_pkce not a bool", {"require_pkce": 0}, "require_pkce", "invalid_client_metadata"),
    ("public without pkce", {"token_endpoint_auth_method": "none", "require_pkce": False},
     "require_pkce", "invalid_client_metadata"),
    ("require_mfa not a bool", {"require_mfa": "true"}, "require_mfa",
     "invalid_client_metadata"),
    ("first_party not a bool", {"first_party": 1}, "first_party", "invalid_client_metadata"),
    ("origin with a path", {"allowed_cors_origins": ["https://a.example/app"]},
     "allowed_cors_origins", "invalid_client_metadata"),
    ("origin not http", {"allowed_cors_origins": ["ftp://a.example"]},
     "allowed_cors_origins", "invalid_client_metadata"),
    ("origin bad host", {"allowed_cors_origins": ["https://[::1"]},
     "allowed_cors_origins", "invalid_client_metadata"),
    ("origin bad port", {"allowed_cors_origins": ["https://a.example:70000"]},
     "allowed_cors_origins", "invalid_client_metadata"),
]


@pytest.mark.parametrize(("changes", "key", "code"), [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_every_error_names_its_key(changes: dict[str, Any], key: str, code: str) -> None:
    doc = {k: v for k, v in {**MINIMAL, **changes}.items() if v is not None}
    error = error_of(doc)
    assert error.key == key, error.description
    assert error.error == code
    assert key in error.description
    assert "\x00" not in error.description


def test_file_only_errors() -> None:
    base = {"client_id": "spa", "redirect_uris": ["https://a.example/cb"], "scopes": ["openid"]}
    assert error_of({**base, "public": "yes"}, FILE).key == "public"
    assert error_of({**base, "public": True, "token_endpoint_auth_method": AUTH_BASIC,
                     "secret": SECRET}, FILE).key == "public"
    assert error_of({**base, "scope": "openid", "secret": SECRET}, FILE).key == "scope"
    assert error_of({**base, "secret": SECRET, "scopes": "openid"}, FILE).key == "scopes"
    assert error_of({**base, "name": 3, "secret": SECRET}, FILE).key == "name"


def test_client_secret_jwt_takes_a_secret() -> None:
    draft = parse({**MINIMAL, "token_endpoint_auth_method": AUTH_SECRET_JWT,
                   "client_secret": SECRET})
    assert draft.secret == SECRET and draft.client.auth_methods == {AUTH_SECRET_JWT}


# Outbound URLs


def test_loopback_http_outbound_urls_need_the_setting() -> None:
    doc = {**MINIMAL, "jwks_uri": "http://127.0.0.1:9000/jwks"}
    assert parse(doc, allow_loopback_http=True).client.jwks_uri == "http://127.0.0.1:9000/jwks"
    assert "OUTBOUND_ALLOW_LOOPBACK" in error_of(doc).description
    # Never a non-loopback http URL, whatever the setting.
    assert outbound_url_problem("http://keys.example/", allow_loopback_http=True)
    assert outbound_url_problem("https://u:p@keys.example/", allow_loopback_http=False)
    assert outbound_url_problem("https://keys.example/", allow_loopback_http=False) is None


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True),
    ("LOCALHOST", True), ("10.0.0.1", False), ("example.com", False), (None, False), ("", False),
])
def test_is_loopback_host(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_cors_origins_are_kept_in_the_case_browsers_send() -> None:
    doc = {**MINIMAL, "allowed_cors_origins": ["https://App.Example:8443", "https://app.example:8443"]}
    assert parse(doc).client.allowed_cors_origins == ("https://app.example:8443",)


# Signing algorithm and DPoP (issue 15)


@pytest.mark.parametrize("source", [FILE, ADMIN, REGISTRATION])
def test_id_token_alg_and_dpop_binding_are_read_from_every_source(
    source: MetadataSource,
) -> None:
    doc = {**MINIMAL, "id_token_signed_response_alg": "EdDSA",
           "dpop_bound_access_tokens": True}
    if source is FILE:
        doc["public"] = True
    client = parse(doc, source, signing_algs=("RS256", "EdDSA"), client_id="c1").client
    assert client.id_token_signed_response_alg == "EdDSA"
    assert client.dpop_bound_access_tokens is True
    shown = client_metadata(client)
    assert shown["id_token_signed_response_alg"] == "EdDSA"
    assert shown["dpop_bound_access_tokens"] is True
    # What a GET shows goes back in a PUT unchanged.
    assert parse({**shown, "client_secret": SECRET} if not client.is_public else shown,
                 ADMIN).client.id_token_signed_response_alg == "EdDSA"


def test_defaults_are_no_alg_and_no_dpop_requirement() -> None:
    client = parse(MINIMAL).client
    assert client.id_token_signed_response_alg is None
    assert client.dpop_bound_access_tokens is False
    assert "id_token_signed_response_alg" not in client_metadata(client)


def test_an_id_token_alg_without_a_server_key_or_unknown_is_refused() -> None:
    refused = error_of({**MINIMAL, "id_token_signed_response_alg": "ES256"},
                       signing_algs=("RS256",))
    assert refused.key == "id_token_signed_response_alg" and "no ES256 signing key" in (
        refused.description)
    for bad in ("none", "HS256", "PS256", 7):
        assert error_of({**MINIMAL, "id_token_signed_response_alg": bad}).key == (
            "id_token_signed_response_alg")
    assert error_of({**MINIMAL, "dpop_bound_access_tokens": "yes"}).key == (
        "dpop_bound_access_tokens")

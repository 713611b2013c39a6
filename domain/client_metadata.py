"""Client metadata: reading it (RFC 7591 names) from every source, and showing it.

One reader for the three ways a client is described, so that a key means the same
everywhere (docs/clients.md has the table):

- ``file``: a ``[[clients]]`` table of ``CLIENTS_FILE``. Also accepts the older keys
  ``secret``, ``scopes`` (a list), ``public`` and ``name``. An unknown key is an error.
- ``admin``: the body of the admin API or the CLI. An unknown key is an error; the keys the
  server manages (``client_id_issued_at``, ``version``, ...) are ignored, so that what a GET
  returned can be sent back in a PUT.
- ``registration``: dynamic registration (RFC 7591). Unknown metadata is ignored (section
  2); redirect URIs must be https, loopback http, or a private-use scheme for native apps;
  service scopes are refused; ``first_party``, token lifetimes, ``introspect_any_token``,
  ``token_exchange_audiences`` and the resource-server keys are the operator's to set and
  are ignored.

The resource-server keys (``resource_uri``, ``resource_scopes``, ``access_token_format``,
``domain.resources``) are accepted from ``file`` and ``admin`` (registration ignores them,
as every operator key). A ``resource_uri`` unique among the clients is checked by the
caller: the file loader among static clients, the admin use cases against the static ones
and the store among stored ones.

Secrets are never part of the result's :class:`~domain.clients.Client`: the secret given
(``client_secret``, or ``secret`` in the file) is returned beside it, for the caller to
hash (or seal) and keep.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Mapping
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import msgspec

from domain.clients import (
    AUTH_BASIC,
    AUTH_METHODS,
    AUTH_NONE,
    AUTH_PRIVATE_KEY_JWT,
    GRANT_AUTHORIZATION_CODE,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_DEVICE_CODE,
    GRANT_REFRESH_TOKEN,
    GRANT_TOKEN_EXCHANGE,
    GRANT_TYPES,
    RESPONSE_TYPE_CODE,
    SECRET_METHODS,
    Client,
)
from domain.outbound import OutboundPolicy
from domain.resources import ACCESS_TOKEN_FORMATS, ACCESS_TOKEN_OPAQUE, resource_uri_problem
from domain.scopes import IDENTITY_SCOPES, OFFLINE_ACCESS, OPENID, service_scopes_in
from domain.text import is_storable

#: Client secrets must be at least this long (they are compared as SHA-256 digests).
MIN_CLIENT_SECRET_LENGTH = 32
MAX_CLIENT_ID_LENGTH = 255
MAX_TEXT_LENGTH = 2000
MAX_LIST_LENGTH = 100
MAX_JWKS_BYTES = 64 * 1024
MIN_LIFETIME_SECONDS = 60
MAX_ACCESS_TOKEN_LIFETIME_SECONDS = 86_400
MAX_REFRESH_TOKEN_LIFETIME_SECONDS = 31_536_000
#: The ``id_token_signed_response_alg`` values a server can have keys for
#: (``adapters.jose_signer``); which of them a server has keys for is its own.
ID_TOKEN_ALGORITHMS = ("RS256", "ES256", "EdDSA")
#: The scope a registered client gets when its registration names none.
DEFAULT_REGISTRATION_SCOPE = ("openid", "profile", "email")


#: Why a JWK Set holds no key the server can verify an assertion with (None: it does);
#: given by the JOSE adapter, since ``domain`` imports no JOSE library.
KeyCheck = Callable[[dict[str, Any]], str | None]


class MetadataSource(StrEnum):
    FILE = "file"
    ADMIN = "admin"
    REGISTRATION = "registration"


class ClientMetadataError(Exception):
    """Metadata that cannot be accepted. ``error`` is the RFC 7591 section 3.2.2 code
    (``invalid_redirect_uri`` or ``invalid_client_metadata``); ``key`` names the field."""

    def __init__(self, key: str, description: str, error: str = "invalid_client_metadata"):
        super().__init__(description)
        self.key = key
        self.description = description
        self.error = error


class ClientDraft(msgspec.Struct, frozen=True, kw_only=True):
    """What a description says: the client (no secrets, version 0) and the secret given in
    it, if any (in clear: the caller hashes or seals it and forgets it)."""

    client: Client
    secret: str | None = None


_RFC_KEYS = frozenset({
    "client_id", "client_name", "client_secret", "redirect_uris",
    "post_logout_redirect_uris", "grant_types", "response_types", "scope",
    "token_endpoint_auth_method", "jwks", "jwks_uri", "backchannel_logout_uri",
    "backchannel_logout_session_required", "access_token_lifetime",
    "refresh_token_lifetime", "require_pkce", "require_mfa", "first_party",
    "allowed_cors_origins", "revoke_tokens_on_logout",
    "id_token_signed_response_alg", "dpop_bound_access_tokens",
    "resource_uri", "resource_scopes", "access_token_format", "introspect_any_token",
    "token_exchange_audiences",
})
#: Older CLIENTS_FILE keys, still accepted there.
_FILE_ONLY_KEYS = frozenset({"secret", "scopes", "public", "name"})
#: What the server sets; ignored on input from the admin API and registration.
SERVER_MANAGED_KEYS = frozenset({
    "client_id_issued_at", "client_secret_expires_at", "registration_client_uri",
    "registration_access_token", "version", "static", "registered", "created_at",
    "updated_at", "secrets",
})
#: Keys a registration may not set; the operator decides them.
_OPERATOR_KEYS = frozenset({
    "first_party", "access_token_lifetime", "refresh_token_lifetime", "introspect_any_token",
    "resource_uri", "resource_scopes", "access_token_format", "token_exchange_audiences",
})
_DEFAULT_GRANTS = (GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN)
#: The grants through which a signed-in user delegates (and so an ID token can be issued).
_USER_GRANTS = frozenset({GRANT_AUTHORIZATION_CODE, GRANT_DEVICE_CODE})
_CLIENT_ID = re.compile(r"[\x21-\x7e]+")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# RFC 8252 section 7.1: a private-use scheme is a reverse domain name, so it has a dot.
_PRIVATE_USE_SCHEME = re.compile(r"[a-z][a-z0-9+\-]*(\.[a-z0-9+\-]+)+")
_NEVER_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "blob", "about"})
_LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` (as ``urlsplit`` gives it: no brackets) names this machine."""
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_client_metadata(
    document: Mapping[str, Any],
    *,
    source: MetadataSource,
    client_id: str | None = None,
    allow_loopback_http: bool = False,
    check_keys: KeyCheck | None = None,
    signing_algs: Collection[str] | None = None,
) -> ClientDraft:
    """The client a description describes; raises :class:`ClientMetadataError`.

    ``client_id`` is used when the document has none (a generated id, or the one in the
    URL of an update); for ``registration`` it is always the one used (the server issues
    ids, RFC 7591 section 3.2.1). ``allow_loopback_http`` is ``OUTBOUND_ALLOW_LOOPBACK``:
    whether URLs the server calls (``jwks_uri``, ``backchannel_logout_uri``) may be http
    loopback URLs. ``check_keys`` checks the keys of an inline ``jwks`` of a
    ``private_key_jwt`` client (without it, only the JWK Set's shape is checked).
    ``signing_algs`` are the algorithms the server has signing keys for: an
    ``id_token_signed_response_alg`` outside them is refused (None: any of
    :data:`ID_TOKEN_ALGORITHMS`).
    """
    reader = _Reader(document, source, allow_loopback_http, check_keys, signing_algs)
    return reader.read(client_id)


class _Reader:
    def __init__(self, document: Mapping[str, Any], source: MetadataSource,
                 allow_loopback_http: bool, check_keys: KeyCheck | None = None,
                 signing_algs: Collection[str] | None = None) -> None:
        self.source = source
        self.signing_algs = signing_algs
        self.allow_loopback_http = allow_loopback_http
        self.check_keys = check_keys
        known = _RFC_KEYS | (_FILE_ONLY_KEYS if source is MetadataSource.FILE else frozenset())
        if source is MetadataSource.FILE:
            unknown = sorted(set(document) - known)
        elif source is MetadataSource.ADMIN:
            unknown = sorted(set(document) - known - SERVER_MANAGED_KEYS)
        else:
            unknown = []
        if unknown:
            raise ClientMetadataError(unknown[0], f"unknown key(s): {', '.join(unknown)}")
        ignored = (_OPERATOR_KEYS if source is MetadataSource.REGISTRATION else frozenset())
        self.doc = {k: v for k, v in document.items() if k in known and k not in ignored}

    @property
    def registration(self) -> bool:
        return self.source is MetadataSource.REGISTRATION

    def read(self, default_client_id: str | None) -> ClientDraft:
        client_id = self._client_id(default_client_id)
        method, secret = self._authentication()
        public = method == AUTH_NONE
        grant_types = self._grant_types(public)
        response_types = self._response_types(grant_types)
        redirect_uris = self._uris("redirect_uris", public=public)
        if GRANT_AUTHORIZATION_CODE in grant_types and not redirect_uris:
            raise ClientMetadataError(
                "redirect_uris", "redirect_uris: a client using authorization_code needs at least "
                "one redirect URI", "invalid_redirect_uri")
        jwks, jwks_uri = self._keys(method)
        require_pkce = self._bool("require_pkce", True)
        if public and not require_pkce:
            # A public client has no secret: PKCE is all that binds its code to it.
            raise ClientMetadataError("require_pkce",
                                      "a public client cannot set require_pkce to false")
        client = Client(
            client_id=client_id,
            name=self._name(client_id),
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=self._uris("post_logout_redirect_uris", public=public),
            grant_types=frozenset(grant_types),
            response_types=frozenset(response_types),
            scopes=frozenset(self._scopes(grant_types)),
            auth_methods=frozenset({method}),
            jwks=jwks,
            jwks_uri=jwks_uri,
            backchannel_logout_uri=self._outbound_uri("backchannel_logout_uri"),
            backchannel_logout_session_required=self._bool(
                "backchannel_logout_session_required", False),
            access_token_lifetime=self._lifetime("access_token_lifetime",
                                                 MAX_ACCESS_TOKEN_LIFETIME_SECONDS),
            refresh_token_lifetime=self._lifetime("refresh_token_lifetime",
                                                  MAX_REFRESH_TOKEN_LIFETIME_SECONDS),
            require_pkce=require_pkce,
            require_mfa=self._bool("require_mfa", False),
            first_party=self._bool("first_party", False),
            revoke_tokens_on_logout=self._bool("revoke_tokens_on_logout", True),
            id_token_signed_response_alg=self._id_token_alg(),
            dpop_bound_access_tokens=self._bool("dpop_bound_access_tokens", False),
            allowed_cors_origins=self._origins(),
            introspect_any_token=self._bool("introspect_any_token", False),
            registered=self.registration,
        )
        client = self._resource_server(client)
        client = self._token_exchange(client)
        return ClientDraft(client=client, secret=secret)

    # The fields

    def _resource_server(self, client: Client) -> Client:
        uri = self.doc.get("resource_uri")
        if uri is None:
            for key in ("resource_scopes", "access_token_format"):
                if self.doc.get(key) is not None:
                    raise ClientMetadataError(key, f"{key} belongs to a resource server: give "
                                              "its resource_uri too")
            return client
        if not isinstance(uri, str):
            raise ClientMetadataError("resource_uri", "resource_uri must be a string")
        problem = resource_uri_problem(self._text("resource_uri", uri))
        if problem is not None:
            raise ClientMetadataError("resource_uri", f"resource_uri {problem}")
        value = self.doc.get("resource_scopes")
        if isinstance(value, str):
            scopes = tuple(s for s in self._text("resource_scopes", value).split(" ") if s)
        else:
            scopes = self._strings("resource_scopes", ())
        bad = [s for s in scopes if not _SCOPE_TOKEN.fullmatch(s)]
        if bad or len(scopes) > MAX_LIST_LENGTH:
            raise ClientMetadataError("resource_scopes", "resource_scopes must be scope names "
                                      "(a space-separated string or a list)")
        reserved = [s for s in scopes if s in IDENTITY_SCOPES or service_scopes_in((s,))]
        if reserved:
            raise ClientMetadataError(
                "resource_scopes", f"resource_scopes: {', '.join(reserved)} is a scope of this "
                "server, not of a resource server")
        token_format = self.doc.get("access_token_format", ACCESS_TOKEN_OPAQUE)
        if token_format not in ACCESS_TOKEN_FORMATS:
            raise ClientMetadataError(
                "access_token_format", "access_token_format must be "
                f"{' or '.join(ACCESS_TOKEN_FORMATS)}")
        return msgspec.structs.replace(client, resource_uri=uri,
                                       resource_scopes=frozenset(scopes),
                                       access_token_format=token_format)

    def _token_exchange(self, client: Client) -> Client:
        key = "token_exchange_audiences"
        audiences = self._strings(key, ())
        for uri in audiences:
            problem = resource_uri_problem(uri)
            if problem is not None:
                raise ClientMetadataError(key, f"{key}: {uri!r} {problem}")
        if audiences and GRANT_TOKEN_EXCHANGE not in client.grant_types:
            raise ClientMetadataError(key, f"{key} needs the grant type {GRANT_TOKEN_EXCHANGE}")
        return msgspec.structs.replace(client, token_exchange_audiences=audiences)

    def _client_id(self, default: str | None) -> str:
        value = default if self.registration else self.doc.get("client_id", default)
        if not isinstance(value, str) or not value.strip():
            raise ClientMetadataError("client_id", "client_id is required (a string)")
        value = value.strip()
        if len(value) > MAX_CLIENT_ID_LENGTH or not _CLIENT_ID.fullmatch(value):
            raise ClientMetadataError(
                "client_id", f"client_id must be 1 to {MAX_CLIENT_ID_LENGTH} visible ASCII "
                "characters, without spaces")
        return value

    def _name(self, client_id: str) -> str:
        key = "client_name" if "client_name" in self.doc else "name"
        value = self.doc.get(key, client_id)
        if not isinstance(value, str):
            raise ClientMetadataError(key, f"{key} must be a string")
        return self._text(key, value)

    def _authentication(self) -> tuple[str, str | None]:
        public = self.doc.get("public")
        if public is not None and not isinstance(public, bool):
            raise ClientMetadataError("public", "public must be true or false")
        method = self.doc.get("token_endpoint_auth_method",
                              AUTH_NONE if public else AUTH_BASIC)
        if method not in AUTH_METHODS:
            raise ClientMetadataError(
                "token_endpoint_auth_method",
                f"token_endpoint_auth_method {method!r} is not supported; use one of "
                f"{', '.join(AUTH_METHODS)}")
        if public is not None and public != (method == AUTH_NONE):
            raise ClientMetadataError(
                "public", "token_endpoint_auth_method must be 'none' exactly when public "
                "is true")
        key = "client_secret" if "client_secret" in self.doc else "secret"
        secret = self.doc.get(key)
        if secret is None:
            if method in SECRET_METHODS and self.source is MetadataSource.FILE:
                raise ClientMetadataError(key, "a confidential client needs a secret (or "
                                          "public = true)")
            return method, None
        if method not in SECRET_METHODS:
            raise ClientMetadataError(
                key, f"a client using {method} has no secret; remove {key}")
        if not isinstance(secret, str) or len(secret) < MIN_CLIENT_SECRET_LENGTH:
            raise ClientMetadataError(
                key, f"{key} must be a string of at least {MIN_CLIENT_SECRET_LENGTH} "
                "characters")
        return method, self._text(key, secret)

    def _grant_types(self, public: bool) -> tuple[str, ...]:
        grants = self._strings("grant_types", _DEFAULT_GRANTS)
        bad = [g for g in grants if g not in GRANT_TYPES]
        if bad:
            raise ClientMetadataError(
                "grant_types", f"grant_types: unsupported grant type(s) {', '.join(bad)}; use "
                f"{', '.join(GRANT_TYPES)}")
        if public and GRANT_CLIENT_CREDENTIALS in grants:
            raise ClientMetadataError("grant_types", "grant_types: a public client cannot use "
                                      "client_credentials")
        if public and GRANT_TOKEN_EXCHANGE in grants:
            # The exchanged token acts for a user at another API: only a client that proves
            # who it is may hold one.
            raise ClientMetadataError("grant_types", "grant_types: a public client cannot use "
                                      "token exchange")
        if self.registration and GRANT_TOKEN_EXCHANGE in grants:
            # Which APIs a client may exchange for is the operator's call
            # (token_exchange_audiences), so the grant is too.
            raise ClientMetadataError("grant_types", "grant_types: token exchange is set up "
                                      "by the operator, not in a registration")
        if not grants:
            raise ClientMetadataError("grant_types", "grant_types must not be empty")
        return grants

    def _response_types(self, grants: tuple[str, ...]) -> tuple[str, ...]:
        code = GRANT_AUTHORIZATION_CODE in grants
        types = self._strings("response_types", (RESPONSE_TYPE_CODE,) if code else ())
        if any(t != RESPONSE_TYPE_CODE for t in types):
            raise ClientMetadataError("response_types", "response_types: only the response type "
                                      "'code' is supported")
        if bool(types) != code:
            # RFC 7591 section 2.1: response_types and grant_types must agree.
            raise ClientMetadataError(
                "response_types", "response_types 'code' goes with the grant type "
                "authorization_code, and only with it")
        return types

    def _scopes(self, grants: tuple[str, ...]) -> tuple[str, ...]:
        if "scope" in self.doc and "scopes" in self.doc:
            raise ClientMetadataError("scope", "give scope or scopes, not both")
        if "scope" in self.doc:
            text = self.doc["scope"]
            if not isinstance(text, str):
                raise ClientMetadataError("scope", "scope must be a space-separated string")
            scopes = tuple(dict.fromkeys(s for s in self._text("scope", text).split(" ") if s))
            if len(scopes) > MAX_LIST_LENGTH:
                raise ClientMetadataError("scope", f"scope names more than {MAX_LIST_LENGTH} "
                                          "scopes")
            key = "scope"
        elif "scopes" in self.doc:
            scopes = self._strings("scopes", ())
            key = "scopes"
        elif self.registration:
            default: tuple[str, ...] = DEFAULT_REGISTRATION_SCOPE
            if GRANT_REFRESH_TOKEN in grants:
                default = (*default, OFFLINE_ACCESS)
            return default if _USER_GRANTS & set(grants) else ()
        else:
            raise ClientMetadataError("scope", "scope is required (the scopes the client may "
                                      "ask for)")
        bad = [s for s in scopes if not _SCOPE_TOKEN.fullmatch(s)]
        if bad or not scopes:
            raise ClientMetadataError(key, "scope must name at least one scope, each made of "
                                      "visible ASCII characters other than \" and \\")
        if self.registration:
            service = service_scopes_in(scopes)
            if service:
                raise ClientMetadataError(
                    key, f"{', '.join(service)}: service scopes are granted only to clients "
                    "an operator creates, never to a registered client")
        if OPENID in scopes and not _USER_GRANTS & set(grants):
            raise ClientMetadataError(key, "the scope openid needs the grant type "
                                      f"authorization_code or {GRANT_DEVICE_CODE}")
        return scopes

    def _uris(self, key: str, *, public: bool) -> tuple[str, ...]:
        uris = self._strings(key, ())
        for uri in uris:
            problem = self._redirect_problem(uri, public)
            if problem:
                raise ClientMetadataError(key, f"{key}: {uri!r} {problem}",
                                          "invalid_redirect_uri")
        return uris

    def _redirect_problem(self, uri: str, public: bool) -> str | None:
        try:
            parts = urlsplit(uri)
            parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
        except ValueError:
            return "is not a URI (check the host and the port)"
        scheme = parts.scheme.lower()
        if not scheme or parts.fragment or "#" in uri:
            return "must be an absolute URI without fragment"
        if scheme in _NEVER_SCHEMES:
            return f"uses the scheme {scheme}, which is never allowed"
        if scheme in ("http", "https"):
            if not parts.hostname:
                return "has no host"
            if scheme == "http" and self.registration and not is_loopback_host(parts.hostname):
                return "must use https (http only for a loopback address)"
            return None
        if self.registration:
            if not _PRIVATE_USE_SCHEME.fullmatch(scheme):
                return ("must use https, loopback http or a private-use scheme named after a "
                        "domain you own (com.example.app:/callback)")
            if not public:
                return "uses a private-use scheme, which only a native (public) client may"
        return None

    def _outbound_uri(self, key: str) -> str | None:
        value = self.doc.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ClientMetadataError(key, f"{key} must be a string")
        self._text(key, value)
        problem = outbound_url_problem(value, allow_loopback_http=self.allow_loopback_http)
        if problem:
            raise ClientMetadataError(key, f"{key}: {value!r} {problem}")
        return value

    def _keys(self, method: str) -> tuple[dict[str, Any] | None, str | None]:
        jwks = self.doc.get("jwks")
        jwks_uri = self._outbound_uri("jwks_uri")
        if jwks is not None and jwks_uri is not None:
            raise ClientMetadataError("jwks", "give jwks or jwks_uri, not both")
        if jwks is not None:
            jwks = _public_key_set(jwks)
            problem = (self.check_keys(jwks) if self.check_keys is not None
                       and method == AUTH_PRIVATE_KEY_JWT else None)
            if problem is not None:
                raise ClientMetadataError("jwks", f"jwks: {problem}")
        if method == AUTH_PRIVATE_KEY_JWT and jwks is None and jwks_uri is None:
            raise ClientMetadataError("jwks", "a client using private_key_jwt needs jwks or "
                                      "jwks_uri")
        return jwks, jwks_uri

    def _id_token_alg(self) -> str | None:
        key = "id_token_signed_response_alg"
        value = self.doc.get(key)
        if value is None:
            return None
        if value not in ID_TOKEN_ALGORITHMS:
            raise ClientMetadataError(key, f"{key} must be one of "
                                      f"{', '.join(ID_TOKEN_ALGORITHMS)}")
        if self.signing_algs is not None and value not in self.signing_algs:
            raise ClientMetadataError(key, f"{key}: the server has no {value} signing key; "
                                      f"it signs with {', '.join(self.signing_algs)}")
        return str(value)

    def _lifetime(self, key: str, maximum: int) -> int | None:
        value = self.doc.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not (
                MIN_LIFETIME_SECONDS <= value <= maximum):
            raise ClientMetadataError(
                key, f"{key} must be a whole number of seconds from {MIN_LIFETIME_SECONDS} "
                f"to {maximum}")
        return value

    def _origins(self) -> tuple[str, ...]:
        origins = self._strings("allowed_cors_origins", ())
        for origin in origins:
            try:
                parts = urlsplit(origin)
                parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
            except ValueError:
                parts = urlsplit("")
            if (parts.scheme not in ("http", "https") or not parts.hostname
                    or parts.path or parts.query or parts.fragment or "@" in parts.netloc):
                raise ClientMetadataError(
                    "allowed_cors_origins", f"allowed_cors_origins: {origin!r} is not an "
                    "origin (scheme://host[:port], nothing after)")
        # Browsers send the scheme and host in lower case (RFC 6454 section 6.1): an origin
        # registered as https://App.example must still match.
        return tuple(dict.fromkeys(o.lower() for o in origins))

    # Shapes

    def _bool(self, key: str, default: bool) -> bool:
        value = self.doc.get(key, default)
        if not isinstance(value, bool):
            raise ClientMetadataError(key, f"{key} must be true or false")
        return value

    def _strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.doc.get(key)
        if value is None:
            return default
        if (not isinstance(value, list) or len(value) > MAX_LIST_LENGTH
                or not all(isinstance(v, str) and v for v in value)):
            raise ClientMetadataError(
                key, f"{key} must be a list of at most {MAX_LIST_LENGTH} non-empty strings")
        return tuple(dict.fromkeys(self._text(key, v) for v in value))

    @staticmethod
    def _text(key: str, value: str) -> str:
        if len(value) > MAX_TEXT_LENGTH:
            raise ClientMetadataError(key, f"{key} is longer than {MAX_TEXT_LENGTH} "
                                      "characters")
        if not is_storable(value):
            raise ClientMetadataError(key, f"{key} contains a character that is not allowed "
                                      "(NUL)")
        return value


def outbound_url_problem(url: str, *, allow_loopback_http: bool) -> str | None:
    """Why the server must not call ``url``, or None (:class:`domain.outbound.OutboundPolicy`:
    https to a public host, or loopback when ``OUTBOUND_ALLOW_LOOPBACK`` allows it; never a
    fragment)."""
    if "#" in url:
        return "must not have a fragment"
    return OutboundPolicy(allow_loopback=allow_loopback_http).refusal(url)


def _public_key_set(value: Any) -> dict[str, Any]:
    keys = value.get("keys") if isinstance(value, dict) else None
    if not isinstance(keys, list) or not keys or len(keys) > MAX_LIST_LENGTH or not all(
            isinstance(k, dict) and isinstance(k.get("kty"), str) for k in keys):
        raise ClientMetadataError("jwks", "jwks must be a JWK Set: {\"keys\": [{\"kty\": ...}]}")
    for key in keys:
        # "d" is a private RSA/EC/OKP component, "k" a symmetric key: never ours to hold.
        if "d" in key or "k" in key or key.get("kty") == "oct":
            raise ClientMetadataError("jwks", "jwks must hold public keys only")
    # Every string, member names included: JSON escapes a NUL as \u0000, so the encoded
    # document would look storable while PostgreSQL's jsonb still refuses it.
    if not _all_storable(value):
        raise ClientMetadataError("jwks", "jwks contains a character that is not allowed "
                                  "(NUL)")
    if len(msgspec.json.encode(value)) > MAX_JWKS_BYTES:
        raise ClientMetadataError("jwks", f"jwks is larger than {MAX_JWKS_BYTES} bytes; "
                                  "publish the keys at a jwks_uri instead")
    return dict(value)


def _all_storable(value: Any) -> bool:
    if isinstance(value, str):
        return is_storable(value)
    if isinstance(value, dict):
        return all(_all_storable(k) and _all_storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_all_storable(v) for v in value)
    return True


def client_metadata(client: Client) -> dict[str, Any]:
    """The client's metadata under RFC 7591 names (and ours): what the admin API, the CLI
    and the registration endpoint show. Never a secret, in any form."""
    shown: dict[str, Any] = {
        "client_id": client.client_id,
        "client_name": client.name,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "grant_types": sorted(client.grant_types),
        "response_types": sorted(client.response_types),
        "scope": " ".join(sorted(client.scopes)),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "backchannel_logout_session_required": client.backchannel_logout_session_required,
        "require_pkce": client.require_pkce,
        "require_mfa": client.require_mfa,
        "first_party": client.first_party,
        "allowed_cors_origins": list(client.allowed_cors_origins),
        "revoke_tokens_on_logout": client.revoke_tokens_on_logout,
        "dpop_bound_access_tokens": client.dpop_bound_access_tokens,
        "introspect_any_token": client.introspect_any_token,
    }
    if client.token_exchange_audiences:
        shown["token_exchange_audiences"] = list(client.token_exchange_audiences)
    if client.resource_uri is not None:
        shown["resource_uri"] = client.resource_uri
        shown["resource_scopes"] = " ".join(sorted(client.resource_scopes))
        shown["access_token_format"] = client.access_token_format
    optional = {
        "jwks": client.jwks,
        "jwks_uri": client.jwks_uri,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "access_token_lifetime": client.access_token_lifetime,
        "refresh_token_lifetime": client.refresh_token_lifetime,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
    }
    shown.update({k: v for k, v in optional.items() if v is not None})
    return shown

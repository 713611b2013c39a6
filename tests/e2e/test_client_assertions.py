"""Key-based client authentication (RFC 7523) through the ASGI app, with Authlib's
``PrivateKeyJWT`` and ``ClientSecretJWT`` as the client, at the token, introspection and
revocation endpoints, on every backend."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from authlib.integrations.httpx_client import OAuth2Client  # type: ignore[import-untyped]
from authlib.oauth2.rfc7523 import ClientSecretJWT, PrivateKeyJWT  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey
from litestar import Litestar
from litestar.testing import TestClient

from domain.client_assertion import ASSERTION_TYPE, seal_client_secret
from domain.clients import AUTH_PRIVATE_KEY_JWT, AUTH_SECRET_JWT, GRANT_CLIENT_CREDENTIALS, Client
from tests.doubles import FakeClock
from tests.e2e.conftest import StoreBackend
from tests.e2e.jwks_server import JwksServer, jwks_server
from tests.e2e.oauth_setup import FORM, ISSUER, SECRET, basic, build_app, running, services_of

TOKEN_URL = f"{ISSUER}/oauth/token"
INTROSPECT_URL = f"{ISSUER}/oauth/introspect"
REVOKE_URL = f"{ISSUER}/oauth/revoke"
SHARED = "hmac-client-secret-0123456789abcdefghij"
RSA = RSAKey.generate_key(2048, private=True, parameters={"kid": "rsa-1"})
EC = ECKey.generate_key("P-256", private=True, parameters={"kid": "ec-1"})


class _ShortLived:
    """Authlib signs assertions valid for an hour by default; this server accepts at most
    five minutes (docs/clients.md), so the clients here ask for one minute."""

    claims: dict[str, Any] | None

    def sign(self, auth: Any, token_endpoint: str) -> str:
        self.claims = {"exp": int(time.time()) + 60}
        return super().sign(auth, token_endpoint)  # type: ignore[misc,no-any-return]


class ShortPrivateKeyJWT(_ShortLived, PrivateKeyJWT):  # type: ignore[misc]
    pass


class ShortClientSecretJWT(_ShortLived, ClientSecretJWT):  # type: ignore[misc]
    pass


def _jwks(*keys: Any) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


def _client(client_id: str, method: str, **fields: Any) -> Client:
    return Client(client_id=client_id, name=client_id, auth_methods=frozenset({method}),
                  grant_types=frozenset({GRANT_CLIENT_CREDENTIALS}),
                  scopes=frozenset({"read", "write"}), **fields)


def add_clients(client: TestClient[Any], app: Litestar, jwks_uri: str = "") -> None:
    """The key-based clients, created in the app's store (on its event loop)."""
    async def create() -> None:
        services = services_of(app)
        now = services.clock.now()
        await services.store.create_client(_client("pk", AUTH_PRIVATE_KEY_JWT,
                                                   jwks=_jwks(RSA, EC)))
        await services.store.create_client(_client("hs", AUTH_SECRET_JWT, secrets=(
            seal_client_secret("hs", SHARED, services.secret_sealer, now=now),)))
        if jwks_uri:
            await services.store.create_client(_client("remote", AUTH_PRIVATE_KEY_JWT,
                                                       jwks_uri=jwks_uri))
    client.blocking_portal.call(create)


def authlib(client: TestClient[Any], client_id: str, key: Any, method: Any) -> Any:
    oauth = OAuth2Client(client_id, key, token_endpoint_auth_method=method,
                         revocation_endpoint_auth_method=method, scope="read",
                         transport=client._transport, base_url=ISSUER)
    oauth.register_client_auth_method(method)
    return oauth


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with jwks_server() as server:
        yield server


@pytest.mark.parametrize(("client_id", "key", "method"), [
    ("pk", RSA, ShortPrivateKeyJWT()),
    ("pk", EC, ShortPrivateKeyJWT(alg="ES256")),
    ("hs", SHARED, ShortClientSecretJWT()),
    ("hs", SHARED, ShortClientSecretJWT(alg="HS512")),
])
def test_authlib_at_the_token_introspection_and_revocation_endpoints(
    store: StoreBackend, tmp_path: Path, client_id: str, key: Any, method: Any
) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        add_clients(client, app)
        oauth = authlib(client, client_id, key, method)
        token = oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
        assert token["access_token"].startswith("tk_") and token["scope"] == "read"
        # The same client authenticates at the other two endpoints; Authlib's aud is then
        # the endpoint's own URL, which is accepted there.
        info = oauth.introspect_token(INTROSPECT_URL, token=token["access_token"])
        assert info.status_code == 200, info.text
        assert info.json()["active"] is True and info.json()["client_id"] == client_id
        revoked = oauth.revoke_token(REVOKE_URL, token=token["access_token"])
        assert revoked.status_code == 200, revoked.text
        again = oauth.introspect_token(INTROSPECT_URL, token=token["access_token"])
        assert again.json() == {"active": False}


def test_a_client_secret_jwt_secret_is_stored_sealed(store: StoreBackend, tmp_path: Path) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        add_clients(client, app)

        async def stored() -> tuple[bytes, str | None]:
            services = services_of(app)
            held = await services.store.get_client("hs")
            assert held is not None
            exported = [c async for batch in _export(services.store) for c in batch]
            return msgspec.json.encode([held, *exported]), held.secrets[0].sealed

        document, sealed = client.blocking_portal.call(stored)
        assert SHARED.encode() not in document
        assert sealed is not None and sealed.startswith("sealed.v1.")


async def _export(store: Any) -> Any:
    cursor = None
    while True:
        batch = await store.list_clients(cursor, 100)
        yield batch.records
        cursor = batch.cursor
        if cursor is None:
            return


def _assertion(client_id: str, key: Any, alg: str, *, kid: str | None = "auto",
               **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": now + 60,
            "iat": now, "jti": str(uuid.uuid4()), **claims}
    header = {"alg": alg}
    if kid == "auto" and not isinstance(key, OctKey):
        header["kid"] = key.kid
    elif kid not in (None, "auto"):
        header["kid"] = kid
    return jwt.encode(header, {k: v for k, v in body.items() if v is not None}, key,
                      algorithms=[alg])


def _post(client: TestClient[Any], assertion: str, path: str = "/oauth/token",
          **extra: str) -> Any:
    data = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, **extra}
    if path == "/oauth/token":
        data.setdefault("grant_type", "client_credentials")
    return client.post(path, headers=FORM, data=data)


def _refused(response: Any, description: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"]
    body = response.json()
    assert body["error"] == "invalid_client"
    assert description in body["error_description"], body


def test_every_bad_assertion_has_its_clear_error(store: StoreBackend, tmp_path: Path) -> None:
    app = build_app(store, tmp_path)
    with running(app) as client:
        add_clients(client, app)
        now = int(time.time())
        once = _assertion("pk", RSA, "RS256")
        assert _post(client, once).status_code == 200
        _refused(_post(client, once), "already used (its jti is single-use)")
        _refused(_post(client, _assertion("pk", RSA, "RS256", aud="https://elsewhere/token")),
                 "must be the issuer")
        _refused(_post(client, _assertion("pk", RSA, "RS256", exp=now - 120)), "has expired")
        _refused(_post(client, _assertion("pk", RSA, "RS256", exp=now + 3600)),
                 "lives too long: exp may be at most 300 seconds ahead")
        _refused(_post(client, _assertion("pk", RSA, "RS256", jti=None)), "needs a jti")
        _refused(_post(client, _assertion("pk", EC, "ES256", kid="rsa-1")),
                 "no key of the client can verify ES256 with kid 'rsa-1'")
        public_as_secret = OctKey.import_key(RSA.as_pem(private=False).decode()[40:80])
        _refused(_post(client, _assertion("pk", public_as_secret, "HS256", kid="rsa-1")),
                 "signed with 'HS256' (client_secret_jwt), but this client authenticates "
                 "with private_key_jwt")
        _refused(_post(client, _assertion("pk", RSA, "RS256", kid="gone")),
                 "no key of the client has kid 'gone'")
        _refused(_post(client, _assertion("basic", OctKey.import_key(SECRET), "HS256")),
                 "this client authenticates with client_secret_basic")
        _refused(_post(client, _assertion("hs", OctKey.import_key("w" * 40), "HS256")),
                 "the signature does not verify")
        _refused(_post(client, _assertion("pk", RSA, "RS256"), client_id="hs"),
                 "client_id differs")
        _refused(_post(client, _assertion("pk", RSA, "RS256"), client_assertion_type="jwt"),
                 "client_assertion_type must be")
        # Authlib's default lifetime (an hour) is refused too, with the same words.
        default = authlib(client, "pk", RSA, PrivateKeyJWT())
        with pytest.raises(Exception, match="lives too long"):
            default.fetch_token(TOKEN_URL, grant_type="client_credentials")
        both = client.post("/oauth/token", headers={**FORM, **basic()}, data={
            "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": _assertion("pk", RSA, "RS256")})
        assert both.status_code == 400 and "one client authentication method" in both.text


def test_failed_assertions_are_throttled(store: StoreBackend, tmp_path: Path) -> None:
    app = build_app(store, tmp_path, RATE_LIMIT_CLIENT_AUTH_FAILURES="2")
    with running(app) as client:
        add_clients(client, app)
        wrong = OctKey.import_key("w" * 40)
        statuses = [_post(client, _assertion("hs", wrong, "HS256")).status_code
                    for _ in range(3)]
        assert statuses == [401, 401, 429]
        # Counted against the client the assertion named, at the other endpoints too.
        assert _post(client, _assertion("hs", wrong, "HS256", aud=REVOKE_URL),
                     "/oauth/revoke", token="x").status_code == 429


def test_jwks_uri_is_fetched_cached_and_refreshed_on_rotation(
    store: StoreBackend, tmp_path: Path, jwks: JwksServer
) -> None:
    clock = FakeClock(int(time.time()))
    app = build_app(store, tmp_path, clock=clock, OUTBOUND_ALLOW_LOOPBACK="1")
    jwks.document = _jwks(RSA)
    with running(app) as client:
        add_clients(client, app, jwks_uri=jwks.url)
        for _ in range(3):
            assert _post(client, _assertion("remote", RSA, "RS256")).status_code == 200
        assert jwks.fetches() == 1
        rotated = RSAKey.generate_key(2048, private=True, parameters={"kid": "rsa-2"})
        jwks.document = _jwks(rotated)
        clock.advance(31)  # past the refresh interval of the first fetch
        oauth = authlib(client, "remote", rotated, ShortPrivateKeyJWT())
        assert oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")["access_token"]
        assert jwks.fetches() == 2
        # Made-up kids do not make the server fetch again within the interval.
        for kid in ("x1", "x2", "x3"):
            _refused(_post(client, _assertion("remote", rotated, "RS256", kid=kid)),
                     f"no key of the client has kid '{kid}'")
        assert jwks.fetches() == 2


def test_an_http_jwks_uri_is_refused_without_the_setting(
    store: StoreBackend, tmp_path: Path, jwks: JwksServer
) -> None:
    app = build_app(store, tmp_path)
    jwks.document = _jwks(RSA)
    with running(app) as client:
        add_clients(client, app, jwks_uri=jwks.url)
        _refused(_post(client, _assertion("remote", RSA, "RS256")),
                 "jwks_uri is not allowed: it must use https")
        assert jwks.requests == []


def test_discovery_lists_the_methods_and_algorithms(store: StoreBackend, tmp_path: Path) -> None:
    with running(build_app(store, tmp_path)) as client:
        document = client.get("/.well-known/oauth-authorization-server").json()
    for endpoint in ("token", "introspection", "revocation"):
        methods = document[f"{endpoint}_endpoint_auth_methods_supported"]
        assert {"private_key_jwt", "client_secret_jwt"} <= set(methods)
        algorithms = document[f"{endpoint}_endpoint_auth_signing_alg_values_supported"]
        assert {"RS256", "ES256", "EdDSA", "HS256"} <= set(algorithms)
        assert "none" not in algorithms

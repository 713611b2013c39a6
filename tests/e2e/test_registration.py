"""Dynamic client registration (RFC 7591) and management (RFC 7592) through the ASGI app.

A client registered over ``/oauth/register`` signs a user in through the real pages with
Authlib and refreshes; the registration access token reads, replaces and deletes it; a
deleted registration stops working everywhere at once; ``open``, ``token`` and ``off``
modes; initial access tokens (single use under a race, use counts, expiry); every
refused input has its RFC 7591 error.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client  # type: ignore[import-untyped]

from adapters.memory.store import MemoryStore
from domain.entities import AccessToken
from domain.tokens import hash_token, token_display
from tests.e2e.conftest import StoreBackend
from tests.e2e.registration_support import (
    BASIC_SECRET,
    ISSUER,
    JSON,
    NATIVE_REDIRECT,
    REDIRECT,
    Registrar,
    registrar,
)
from tests.e2e.signin_flow import PASSWORD, pkce_pair, submit, through_consent

WEB_APP = {"client_name": "Registered Web App", "redirect_uris": [REDIRECT],
           "grant_types": ["authorization_code", "refresh_token"],
           "scope": "openid profile email offline_access"}
NATIVE_APP = {"client_name": "Native App", "redirect_uris": [NATIVE_REDIRECT],
              "token_endpoint_auth_method": "none", "scope": "openid offline_access"}


def _memory() -> StoreBackend:
    """For tests of input rules, which no backend changes."""
    return StoreBackend("memory", instance=MemoryStore())


def _registered(r: Registrar, metadata: dict[str, Any] = WEB_APP,
                token: str | None = None) -> dict[str, Any]:
    response = r.register(metadata, token)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def _sign_in(r: Registrar, authorize_url: str) -> str:
    """Open the sign-in page at ``authorize_url``, submit alice's password; the redirect."""
    page = r.client.get(authorize_url, follow_redirects=False)
    assert page.status_code == 200, page.text
    # A registered client is never first party: the user allows it.
    response = through_consent(r.client, submit(r.client, page, username="alice",
                                                password=PASSWORD))
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    return location


def _manage(r: Registrar, method: str, body: dict[str, Any], token: str | None,
            json_body: dict[str, Any] | None = None) -> httpx.Response:
    path = urlsplit(body["registration_client_uri"]).path
    headers = {**JSON, **({"Authorization": f"Bearer {token}"} if token else {})}
    return r.client.request(method, path, headers=headers, json=json_body)


def test_a_registered_client_signs_a_user_in_with_authlib_and_refreshes(
    store: StoreBackend, tmp_path: Path
) -> None:
    with registrar(store, tmp_path) as r:
        r.add_user()
        registered = _registered(r)
        assert registered["client_id"].startswith("cl_")
        assert registered["client_secret"] and registered["registration_access_token"]
        assert registered["token_endpoint_auth_method"] == "client_secret_basic"
        assert registered["client_secret_expires_at"] == 0
        assert registered["registration_client_uri"] == (
            f"{ISSUER}/oauth/register/{registered['client_id']}")
        oauth = OAuth2Client(
            registered["client_id"], registered["client_secret"], redirect_uri=REDIRECT,
            scope="openid profile offline_access", code_challenge_method="S256",
            transport=r.client._transport, base_url=ISSUER)
        verifier, _ = pkce_pair()
        url, _state = oauth.create_authorization_url(f"{ISSUER}/oauth/authorize",
                                                     code_verifier=verifier, nonce="n-1")
        location = _sign_in(r, url)
        assert location.startswith(REDIRECT)
        tokens = oauth.fetch_token(f"{ISSUER}/oauth/token", authorization_response=location,
                                   code_verifier=verifier)
        assert tokens["id_token"] and tokens["refresh_token"].startswith("rt_")
        info = r.introspect(tokens["access_token"])
        assert info["active"] and info["client_id"] == registered["client_id"]
        refreshed = oauth.refresh_token(f"{ISSUER}/oauth/token")
        assert refreshed["access_token"] != tokens["access_token"]
        assert r.introspect(refreshed["access_token"])["active"] is True
        assert any(name == "client_created" and fields["client_id"] == registered["client_id"]
                   and fields["registered"] is True for name, fields in r.events.events)


def test_a_native_app_registers_a_private_use_scheme_and_signs_in(
    store: StoreBackend, tmp_path: Path
) -> None:
    with registrar(store, tmp_path) as r:
        r.add_user()
        registered = _registered(r, NATIVE_APP)
        assert "client_secret" not in registered
        assert registered["token_endpoint_auth_method"] == "none"
        verifier, challenge = pkce_pair()
        location = _sign_in(r, "/oauth/authorize?" + str(httpx.QueryParams({
            "response_type": "code", "client_id": registered["client_id"],
            "redirect_uri": NATIVE_REDIRECT, "scope": "openid offline_access",
            "state": "s-1", "code_challenge": challenge, "code_challenge_method": "S256"})))
        assert location.startswith(NATIVE_REDIRECT + "?")
        code = parse_qs(urlsplit(location).query)["code"][0]
        token = r.client.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": NATIVE_REDIRECT,
            "client_id": registered["client_id"], "code_verifier": verifier})
        assert token.status_code == 200, token.text
        refreshed = r.client.post("/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": token.json()["refresh_token"],
            "client_id": registered["client_id"]})
        assert refreshed.status_code == 200, refreshed.text


def test_rfc7592_read_update_and_delete(store: StoreBackend, tmp_path: Path) -> None:
    with registrar(store, tmp_path) as r:
        registered = _registered(r)
        token = registered["registration_access_token"]
        read = _manage(r, "GET", registered, token)
        assert read.status_code == 200, read.text
        shown = read.json()
        assert shown["client_id"] == registered["client_id"]
        assert shown["redirect_uris"] == [REDIRECT]
        assert "client_secret" not in shown and "registration_access_token" not in shown

        new_redirect = "https://rp.example.test/other-cb"
        updated = _manage(r, "PUT", registered, token, {
            **WEB_APP, "client_id": registered["client_id"], "redirect_uris": [new_redirect],
            "client_name": "Renamed"})
        assert updated.status_code == 200, updated.text
        body = updated.json()
        assert body["redirect_uris"] == [new_redirect] and body["client_name"] == "Renamed"
        rotated = body["registration_access_token"]
        assert rotated != token
        assert _manage(r, "GET", registered, token).status_code == 401  # the old one is spent
        assert _manage(r, "GET", registered, rotated).status_code == 200
        # The secret survives an update: the client still authenticates with it.
        grant = r.client.post("/oauth/token", auth=(registered["client_id"],
                                                    registered["client_secret"]),
                              data={"grant_type": "refresh_token", "refresh_token": "rt_x"})
        assert grant.json()["error"] == "invalid_grant"

        deleted = _manage(r, "DELETE", registered, rotated)
        assert deleted.status_code == 204
        assert _manage(r, "GET", registered, rotated).status_code == 401
        assert _manage(r, "DELETE", registered, rotated).status_code == 401


def test_update_must_name_the_client_and_cannot_choose_its_secret(
    store: StoreBackend, tmp_path: Path
) -> None:
    with registrar(store, tmp_path) as r:
        registered = _registered(r)
        token = registered["registration_access_token"]
        for document in (
            WEB_APP,  # no client_id
            {**WEB_APP, "client_id": "someone-else"},
            {**WEB_APP, "client_id": registered["client_id"], "client_secret": "x" * 40},
        ):
            response = _manage(r, "PUT", registered, token, document)
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "invalid_client_metadata"
        lone = "\\ud800" * 40  # a JSON escape of a lone surrogate, which no store keeps
        surrogate = (f'{{"client_id": "{registered["client_id"]}", "redirect_uris": '
                     f'["{REDIRECT}"], "client_secret": "{lone}"}}')
        response = r.client.put(urlsplit(registered["registration_client_uri"]).path,
                                content=surrogate.encode(), headers={
                                    **JSON, "Authorization": f"Bearer {token}"})
        assert response.status_code == 400, response.text
        # Sending the current secret back is allowed (RFC 7592 section 2.2).
        same = _manage(r, "PUT", registered, token, {
            **WEB_APP, "client_id": registered["client_id"],
            "client_secret": registered["client_secret"]})
        assert same.status_code == 200, same.text
        assert "client_secret" not in same.json()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_management_needs_the_clients_own_registration_token(
    store: StoreBackend, tmp_path: Path, method: str
) -> None:
    with registrar(store, tmp_path) as r:
        first = _registered(r)
        second = _registered(r)
        document = {**WEB_APP, "client_id": first["client_id"]}
        missing = _manage(r, method, first, None, document)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == 'Bearer realm="auth-service"'
        for wrong in ("rat_wrong", second["registration_access_token"], "x" * 600):
            refused = _manage(r, method, first, wrong, document)
            assert refused.status_code == 401, refused.text
            assert 'error="invalid_token"' in refused.headers["www-authenticate"]
            assert refused.json()["error"] == "invalid_token"
        # A static client cannot be managed here, with any token.
        static = {"registration_client_uri": f"{ISSUER}/oauth/register/basic"}
        assert _manage(r, method, static, first["registration_access_token"],
                       document).status_code == 401
        assert _manage(r, "GET", first, first["registration_access_token"]).status_code == 200


def test_a_deleted_registration_stops_working_at_once(
    store: StoreBackend, tmp_path: Path
) -> None:
    with registrar(store, tmp_path) as r:
        r.add_user()
        registered = _registered(r)
        client_id, secret = registered["client_id"], registered["client_secret"]
        verifier, challenge = pkce_pair()
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
                  "scope": "openid profile offline_access", "state": "s",
                  "code_challenge": challenge, "code_challenge_method": "S256"}
        location = _sign_in(r, "/oauth/authorize?" + str(httpx.QueryParams(params)))
        code = parse_qs(urlsplit(location).query)["code"][0]
        tokens = r.client.post("/oauth/token", auth=(client_id, secret), data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier}).json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert r.client.get("/oauth/userinfo", headers=bearer).status_code == 200
        assert r.introspect(tokens["access_token"])["active"] is True

        assert _manage(r, "DELETE", registered,
                       registered["registration_access_token"]).status_code == 204

        refresh = r.client.post("/oauth/token", auth=(client_id, secret), data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
        assert refresh.status_code == 401 and refresh.json()["error"] == "invalid_client"
        assert r.introspect(tokens["access_token"]) == {"active": False}
        userinfo = r.client.get("/oauth/userinfo", headers=bearer)
        assert userinfo.status_code == 401
        page = r.client.get("/oauth/authorize", params=params, follow_redirects=False)
        assert page.status_code == 400
        assert "not registered" in page.text


def test_registration_off_is_404_and_not_in_discovery(
    store: StoreBackend, tmp_path: Path
) -> None:
    with registrar(store, tmp_path, mode="off") as r:
        response = r.register(WEB_APP)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
        assert "registration_endpoint" not in r.client.get(
            "/.well-known/openid-configuration").json()


@pytest.mark.parametrize("mode", ["open", "token"])
def test_discovery_names_the_registration_endpoint_when_on(tmp_path: Path, mode: str) -> None:
    with registrar(_memory(), tmp_path, mode=mode) as r:
        for path in ("/.well-known/openid-configuration",
                     "/.well-known/oauth-authorization-server"):
            document = r.client.get(path).json()
            assert document["registration_endpoint"] == f"{ISSUER}/oauth/register"


def test_token_mode_needs_a_live_initial_access_token(
    store: StoreBackend, tmp_path: Path
) -> None:
    with registrar(store, tmp_path, mode="token") as r:
        missing = r.register(WEB_APP)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == 'Bearer realm="auth-service"'
        wrong = r.register(WEB_APP, "iat_not-a-token")
        assert wrong.status_code == 401
        assert 'error="invalid_token"' in wrong.headers["www-authenticate"]

        single = r.initial_token()
        # Bad metadata does not spend it.
        assert r.register({**WEB_APP, "scope": "admin"}, single).status_code == 400
        assert _registered(r, WEB_APP, single)["client_id"]
        again = r.register(WEB_APP, single)
        assert again.status_code == 401 and again.json()["error"] == "invalid_token"

        twice = r.initial_token(uses=2, expires_in=600)
        _registered(r, WEB_APP, twice)
        _registered(r, WEB_APP, twice)
        assert r.register(WEB_APP, twice).status_code == 401

        expiring = r.initial_token(uses=5, expires_in=60)
        r.clock.advance(61)
        assert r.register(WEB_APP, expiring).status_code == 401


def test_a_single_use_initial_token_wins_one_race(store: StoreBackend, tmp_path: Path) -> None:
    with registrar(store, tmp_path, mode="token") as r:
        tokens = [r.initial_token() for _ in range(3)]

        async def race(token: str) -> list[int]:
            transport = httpx.ASGITransport(app=r.client.app)
            async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as c:
                answers = await asyncio.gather(*(
                    c.post("/oauth/register", json=WEB_APP,
                           headers={"Authorization": f"Bearer {token}"}) for _ in range(2)))
            return sorted(a.status_code for a in answers)

        for token in tokens:
            assert r.call(lambda token=token: race(token)) == [201, 401]  # type: ignore[misc]


def test_initial_access_tokens_need_the_admin_service_scope(
    store: StoreBackend, tmp_path: Path
) -> None:
    with registrar(store, tmp_path, mode="token") as r:
        path = "/admin/initial-access-tokens"
        assert r.client.post(path, json={}).status_code == 401
        unknown = r.client.post(path, json={}, headers={"Authorization": "Bearer tk_nope"})
        assert unknown.status_code == 401
        other = r.client.post("/oauth/token", auth=("basic", BASIC_SECRET),
                              data={"grant_type": "client_credentials", "scope": "read"})
        weak = r.client.post(path, json={}, headers={
            "Authorization": f"Bearer {other.json()['access_token']}"})
        assert weak.status_code == 403
        assert 'error="insufficient_scope"' in weak.headers["www-authenticate"]
        admin = {"Authorization": f"Bearer {r.admin_token()}", **JSON}
        for bad in ({"uses": 0}, {"uses": "2"}, {"expires_in": -5}, {"colour": "red"}, [1]):
            refused = r.client.post(path, json=bad, headers=admin)
            assert refused.status_code == 400, (bad, refused.text)
            assert refused.json()["error"] == "invalid_request"
        made = r.client.post(path, json={"uses": 3, "expires_in": None}, headers=admin)
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["uses"] == 3 and body["expires_at"] is None
        assert body["initial_access_token"].startswith("iat_")
        assert made.headers["cache-control"] == "no-store"


def test_a_user_token_with_the_admin_scope_is_refused(tmp_path: Path) -> None:
    store = MemoryStore()
    with registrar(StoreBackend("memory", instance=store), tmp_path, mode="token") as r:
        token = "tk_" + "u" * 43
        now = r.clock.now()
        r.call(lambda: store.save_tokens(AccessToken(
            token_hash=hash_token(token), token_display=token_display(token), active=True,
            scope="admin openid", client_id="basic", sub="user-1", exp=now + 600, iat=now),
            None, now))
        response = r.client.post("/admin/initial-access-tokens", json={},
                                 headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"scope": "openid scim:read"}, "invalid_client_metadata"),
        ({"scope": "admin"}, "invalid_client_metadata"),
        ({"redirect_uris": ["http://rp.example.test/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        # A private-use scheme is for native (public) apps only: any app can claim one.
        ({"redirect_uris": ["com.example.app:/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://rp.example.test/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"client_name": "nul\u0000byte"}, "invalid_client_metadata"),
        ({"redirect_uris": ["https://rp.example.test/\u0000"]}, "invalid_client_metadata"),
        ({"grant_types": ["password"]}, "invalid_client_metadata"),
        # Anyone could then mint API tokens (read, write) that no user delegated.
        ({"grant_types": ["client_credentials"], "scope": "read"}, "invalid_client_metadata"),
        ({"grant_types": ["authorization_code", "client_credentials"]},
         "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]},
         "invalid_client_metadata"),
        # An EC key without its coordinates: no assertion could ever be verified with it.
        ({"token_endpoint_auth_method": "private_key_jwt",
          "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1"}]}},
         "invalid_client_metadata"),
    ],
)
def test_bad_metadata_is_refused_with_its_rfc7591_error(
    tmp_path: Path, change: dict[str, Any], error: str
) -> None:
    with registrar(_memory(), tmp_path) as r:
        response = r.register({**WEB_APP, **change})
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["error"] == error and body["error_description"]
        assert r.call(lambda: r.services.store.list_clients(None, 10)).records == ()


def test_bad_bodies_and_nul_bytes_are_400_on_every_backend(
    store: StoreBackend, tmp_path: Path
) -> None:
    with registrar(store, tmp_path) as r:
        for body, headers in (
            (b"not json", JSON),
            (b"[1, 2]", JSON),
            (b'{"client_name": "x"', JSON),
            (b'{"redirect_uris": ["https://a.test/cb"]}', {"Content-Type": "text/plain"}),
            (b'{"client_name": "a\\u0000b", "redirect_uris": ["https://a.test/cb"]}',
             JSON),
            (b'{"redirect_uris": ["https://a.test/cb"], "scope": "openid\\u0000"}',
             JSON),
            (b'{"redirect_uris": ["https://a.test/\\ud800"]}', JSON),
        ):
            response = r.client.post("/oauth/register", content=body, headers=headers)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["error"] in ("invalid_client_metadata",
                                                "invalid_redirect_uri")
        registered = _registered(r)
        nul_path = r.client.get("/oauth/register/cl_%00", headers={
            "Authorization": f"Bearer {registered['registration_access_token']}"})
        assert nul_path.status_code == 400


def test_unknown_metadata_is_ignored_and_operator_fields_are_not_taken(
    tmp_path: Path
) -> None:
    with registrar(_memory(), tmp_path) as r:
        registered = _registered(r, {**WEB_APP, "logo_uri": "https://rp.example.test/l.png",
                                     "software_statement": "eyJ...", "colour": {"x": [1]},
                                     "first_party": True, "access_token_lifetime": 86400})
        assert "logo_uri" not in registered and "colour" not in registered
        assert registered["first_party"] is False
        assert "access_token_lifetime" not in registered
        chosen = "c" * 40
        generated = _registered(r, {**WEB_APP, "client_secret": chosen})["client_secret"]
        assert generated != chosen and generated.startswith("cs_")
        default_scope = _registered(r, {"redirect_uris": [REDIRECT]})
        assert set(default_scope["scope"].split()) == {"openid", "profile", "email",
                                                       "offline_access"}


def test_loopback_redirects_for_native_apps(tmp_path: Path) -> None:
    with registrar(_memory(), tmp_path) as r:
        for uri in ("http://127.0.0.1/cb", "http://[::1]:8400/cb", "http://localhost/cb"):
            assert _registered(r, {**NATIVE_APP, "redirect_uris": [uri]})["redirect_uris"] == [
                uri]


def test_registrations_are_rate_limited_per_address(tmp_path: Path) -> None:
    with registrar(_memory(), tmp_path,
                   RATE_LIMIT_REGISTRATION_PER_MINUTE="2") as r:
        assert r.register(WEB_APP).status_code == 201
        assert r.register({"redirect_uris": ["bad"]}).status_code == 400  # failures count too
        refused = r.register(WEB_APP)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        r.clock.advance(60)
        assert r.register(WEB_APP).status_code == 201

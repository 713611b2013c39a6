"""The device authorization grant (RFC 8628, issue 15 item 6) through the real app, on
every backend: ``POST /oauth/device_authorization``, the verification page ``/device``
driven like a browser (tests/e2e/signin_flow.py's form driver), and the device's polls at
``/oauth/token``, with every RFC 8628 error that applies.

The signed-in browser is a session made directly in the store
(tests/e2e/session_support.py): ``/signin`` is built on another branch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from dependency_injector import providers
from joserfc import jwt
from joserfc.jwk import KeySet
from litestar import Litestar
from litestar.testing import TestClient

from domain.clients import GRANT_DEVICE_CODE
from domain.entities import User
from domain.logout import end_session
from domain.sessions import Session, amr_of, open_session
from entrypoints.app import create_app
from entrypoints.container import build_container
from entrypoints.http.services import Services
from entrypoints.http.session_cookie import session_cookie_name
from entrypoints.settings import load_settings
from tests.doubles import FakeClock
from tests.e2e.conftest import StoreBackend
from tests.e2e.ops_support import metric
from tests.e2e.session_support import call, ensure_user, session_of, sign_in_browser
from tests.e2e.signin_flow import HASHER, SIGNER, T0, Form, submit

ISSUER = "http://auth.test"
CLI_SECRET = "cli-device-secret-0123456789abcdefghij"
STRANGER_SECRET = "stranger-secret-0123456789abcdefghijkl"
DEVICE_SCOPE = "openid profile offline_access read"

CLIENTS_TOML = f"""
[[clients]]
client_id = "tv"
name = "Living-room <TV>"
public = true
grant_types = ["{GRANT_DEVICE_CODE}", "refresh_token"]
scopes = ["openid", "profile", "offline_access", "read", "scim:read"]

[[clients]]
client_id = "cli"
name = "Deploy CLI"
secret = "{CLI_SECRET}"
first_party = true
grant_types = ["{GRANT_DEVICE_CODE}"]
scopes = ["read"]

[[clients]]
client_id = "strict"
name = "Bank TV"
public = true
require_mfa = true
grant_types = ["{GRANT_DEVICE_CODE}"]
scopes = ["openid", "read"]

[[clients]]
client_id = "web"
name = "Web"
public = true
redirect_uris = ["https://web.example.test/cb"]
grant_types = ["authorization_code"]
scopes = ["openid", "read"]

[[clients]]
client_id = "stranger"
name = "Introspecting API"
secret = "{STRANGER_SECRET}"
grant_types = ["client_credentials"]
scopes = ["read"]
# Tokens without an audience are shown only to their client and to gateways.
introspect_any_token = true
"""


class Device:
    """The app, its fake clock, and a browser (the test client, with its cookies)."""

    def __init__(self, client: TestClient[Any], clock: FakeClock) -> None:
        self.client = client
        self.clock = clock

    def start(self, client_id: str = "tv", scope: str | None = DEVICE_SCOPE,
              auth: tuple[str, str] | None = None, **extra: Any) -> httpx.Response:
        data: dict[str, Any] = {**extra}
        if scope is not None:
            data["scope"] = scope
        if auth is None:
            data["client_id"] = client_id
        return self.client.post("/oauth/device_authorization", data=data, auth=auth)

    def started(self, client_id: str = "tv", scope: str = DEVICE_SCOPE,
                auth: tuple[str, str] | None = None) -> dict[str, Any]:
        response = self.start(client_id, scope, auth)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def poll(self, device_code: str, client_id: str = "tv",
             auth: tuple[str, str] | None = None) -> httpx.Response:
        data = {"grant_type": GRANT_DEVICE_CODE, "device_code": device_code}
        if auth is None:
            data["client_id"] = client_id
        return self.client.post("/oauth/token", data=data, auth=auth)

    def poll_error(self, device_code: str, client_id: str = "tv",
                   auth: tuple[str, str] | None = None) -> str:
        response = self.poll(device_code, client_id, auth)
        assert response.status_code == 400, response.text
        assert response.headers["cache-control"] == "no-store"
        error: str = response.json()["error"]
        return error

    def signed_in(self, user_name: str = "alice", *, mfa: bool = False) -> Session:
        user = ensure_user(self.client, user_name)
        amr = amr_of(second_factor="otp" if mfa else None)
        return sign_in_browser(self.client, user.id, amr=amr)[1]

    def code_page(self, user_code: str | None = None) -> httpx.Response:
        params = {"user_code": user_code} if user_code is not None else None
        return self.client.get("/device", params=params, follow_redirects=False)

    def confirm_page(self, user_code: str, typed: str | None = None) -> httpx.Response:
        page = self.code_page(user_code)
        assert page.status_code == 200, page.text
        return submit(self.client, page, user_code=typed if typed is not None else user_code)

    def decide(self, user_code: str, action: str = "approve") -> httpx.Response:
        confirm = self.confirm_page(user_code)
        assert confirm.status_code == 200, confirm.text
        return submit(self.client, confirm, action=action)

    def services(self) -> Services:
        services: Services = self.client.app.state.services
        return services

    def introspect(self, token: str) -> dict[str, Any]:
        response = self.client.post("/oauth/introspect", data={"token": token},
                                    auth=("stranger", STRANGER_SECRET))
        body: dict[str, Any] = response.json()
        return body


def build_app(store: StoreBackend, tmp_path: Path, clock: FakeClock, **env: str) -> Litestar:
    clients_file = tmp_path / "device-clients.toml"
    clients_file.write_text(CLIENTS_TOML)
    settings = load_settings({"EXTERNAL_BASE_URL": ISSUER, "CLIENTS_FILE": str(clients_file),
                              **store.env, **env})
    container = build_container(settings)
    container.clock.override(providers.Object(clock))
    container.password_hasher.override(providers.Object(HASHER))
    container.signer.override(providers.Object(SIGNER))
    return create_app(settings, store=store.instance, container=container)


@contextmanager
def device_app(store: StoreBackend, tmp_path: Path, **env: str) -> Iterator[Device]:
    clock = FakeClock(T0)
    with TestClient(build_app(store, tmp_path, clock, **env), base_url=ISSUER) as client:
        yield Device(client, clock)


@pytest.fixture
def d(store: StoreBackend, tmp_path: Path) -> Iterator[Device]:
    with device_app(store, tmp_path) as running:
        yield running


def signin_redirect(response: httpx.Response) -> str:
    assert response.status_code == 303, (response.status_code, response.text)
    location: str = response.headers["location"]
    assert location.startswith("/signin?")
    [return_to] = parse_qs(urlsplit(location).query)["return_to"]
    return return_to


# The whole flow


def test_the_whole_flow_through_the_verification_page(d: Device) -> None:
    response = d.start()
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    started = response.json()
    user_code = started["user_code"]
    assert started["device_code"].startswith("dc_")
    assert started["verification_uri"] == f"{ISSUER}/device"
    assert started["verification_uri_complete"] == f"{ISSUER}/device?user_code={user_code}"
    assert (started["expires_in"], started["interval"]) == (600, 5)
    assert d.poll_error(started["device_code"]) == "authorization_pending"

    # Not signed in: to the sign-in page, which comes back here with the code.
    redirect = d.code_page(user_code)
    assert redirect.headers["location"] == (
        f"/signin?return_to={quote(f'/device?user_code={user_code}', safe='')}")
    assert signin_redirect(redirect) == f"/device?user_code={user_code}"

    session = d.signed_in(mfa=True)
    page = d.code_page(user_code)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    form = Form(page.text)
    assert form.fields["user_code"] == user_code  # prefilled from verification_uri_complete
    assert "user_code" in form.labels and "autofocus" in page.text
    assert "alice" in page.text

    confirm = submit(d.client, page)
    assert confirm.status_code == 200, confirm.text
    assert "Living-room &lt;TV&gt;" in confirm.text  # the client's name, escaped
    assert user_code in confirm.text
    for description in ("Confirm your identity", "Your user name and display name",
                        "Access while you are not signed in", "Access to read"):
        assert description in confirm.text
    assert Form(confirm.text).buttons["action"] == ["approve", "deny"]

    done = submit(d.client, confirm, action="approve")
    assert done.status_code == 200 and "Device connected" in done.text

    d.clock.advance(5)
    tokens = d.poll(started["device_code"])
    assert tokens.status_code == 200, tokens.text
    assert tokens.headers["cache-control"] == "no-store"
    body = tokens.json()
    assert body["token_type"] == "Bearer" and body["scope"] == DEVICE_SCOPE
    assert body["refresh_token"].startswith("rt_")
    claims = jwt.decode(body["id_token"],
                        KeySet.import_key_set(d.client.get("/jwks.json").json())).claims
    assert (claims["iss"], claims["aud"], claims["sub"]) == (ISSUER, "tv", session.user_id)
    assert (claims["sid"], claims["auth_time"], claims["acr"], claims["amr"]) == (
        session.sid, session.auth_time, "mfa", ["pwd", "otp", "mfa"])
    info = d.introspect(body["access_token"])
    assert info["active"] is True and info["sub"] == session.user_id
    assert info["client_id"] == "tv" and info["mfa_verified"] is True

    assert metric(d.client.get("/metrics").text, "auth_tokens_issued_total",
                  grant_type=GRANT_DEVICE_CODE) == 1

    # Redeemed once; the refresh token works like any other.
    d.clock.advance(5)
    assert d.poll_error(started["device_code"]) == "invalid_grant"
    refreshed = d.client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"],
        "client_id": "tv"})
    assert refreshed.status_code == 200, refreshed.text

    # The grant was recorded in the session and the consent: the logout revokes it.
    live = session_of(d.client, session.id_hash)
    assert live is not None and live.clients == ("tv",)
    consent = call(d.client, d.services().store.get_consent, session.user_id, "tv")
    assert consent is not None and consent.scopes == ("offline_access", "openid", "profile",
                                                      "read")
    logout = d.services().logout

    async def sign_out() -> None:
        await end_session(logout, session.id_hash, reason="logout")

    call(d.client, sign_out)
    assert d.introspect(refreshed.json()["access_token"]) == {"active": False}


def test_a_confidential_first_party_client_and_a_code_typed_loosely(d: Device) -> None:
    started = d.started("cli", "read", auth=("cli", CLI_SECRET))
    session = d.signed_in()
    typed = started["user_code"].lower().replace("-", " - ")
    confirm = d.confirm_page(started["user_code"], typed=typed)
    assert confirm.status_code == 200 and "Deploy CLI" in confirm.text
    assert submit(d.client, confirm).status_code == 200
    body = d.poll(started["device_code"], auth=("cli", CLI_SECRET)).json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    # First party: no consent is kept, and none was needed.
    assert call(d.client, d.services().store.get_consent, session.user_id, "cli") is None


# Every RFC 8628 error that applies


def test_slow_down_lengthens_the_interval(d: Device) -> None:
    started = d.started()
    assert d.poll_error(started["device_code"]) == "authorization_pending"
    d.clock.advance(4)
    response = d.poll(started["device_code"])
    assert response.json()["error"] == "slow_down"
    assert "10 seconds" in response.json()["error_description"]
    d.clock.advance(10)
    assert d.poll_error(started["device_code"]) == "authorization_pending"


def test_an_expired_device_code_is_expired_token(d: Device) -> None:
    started = d.started()
    d.clock.advance(600)
    assert d.poll_error(started["device_code"]) == "expired_token"
    d.signed_in()
    confirm = d.confirm_page(started["user_code"])
    assert confirm.status_code == 400 and 'role="alert"' in confirm.text


def test_a_denial_is_access_denied(d: Device) -> None:
    started = d.started()
    d.signed_in()
    done = d.decide(started["user_code"], "deny")
    assert done.status_code == 200 and "Request denied" in done.text
    assert d.poll_error(started["device_code"]) == "access_denied"
    d.clock.advance(5)
    assert d.poll_error(started["device_code"]) == "invalid_grant"


def test_another_clients_device_code_is_invalid_grant(d: Device) -> None:
    started = d.started()
    d.signed_in()
    d.decide(started["user_code"])
    assert d.poll_error(started["device_code"], auth=("cli", CLI_SECRET)) == "invalid_grant"
    # The stranger's attempt neither took the tokens nor slowed the device down.
    assert d.poll(started["device_code"]).status_code == 200


@pytest.mark.parametrize(("path", "data"), [
    ("/oauth/device_authorization", {"scope": "read"}),
    ("/oauth/token", {"grant_type": GRANT_DEVICE_CODE, "device_code": "dc_x.1.0123456789abcdef"}),
])
def test_a_client_without_the_device_grant_is_unauthorized_client(
    d: Device, path: str, data: dict[str, str]
) -> None:
    response = d.client.post(path, data={**data, "client_id": "web"})
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


@pytest.mark.parametrize("scope", [None, "read scim:read", "read email", "read\\x"])
def test_a_scope_the_client_may_not_get_is_invalid_scope(d: Device, scope: str | None) -> None:
    response = d.start(scope=scope)
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(("client_id", "auth"), [
    ("nobody", None), ("cli", None), ("cli", ("cli", "wrong-secret-0123456789abcdefghijkl")),
])
def test_a_failed_client_authentication_is_invalid_client(
    d: Device, client_id: str, auth: tuple[str, str] | None
) -> None:
    response = d.start(client_id, "read", auth=auth)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"] == 'Basic realm="auth-service"'


def test_resources_are_kept_and_must_be_absolute_uris(d: Device) -> None:
    response = d.start(resource=["https://api.example.test/", "urn:example:billing"])
    assert response.status_code == 200, response.text
    records = call(d.client, d.services().store.export_device_authorizations, None, 10,
                   d.clock.now()).records
    assert records[0].resources == ("https://api.example.test/", "urn:example:billing")
    refused = d.start(resource="https://api.example.test/#part")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"


def test_device_authorization_requests_are_limited_per_address(
    store: StoreBackend, tmp_path: Path
) -> None:
    with device_app(store, tmp_path, RATE_LIMIT_DEVICE_AUTHORIZATION_PER_MINUTE="2") as d:
        assert [d.start().status_code for _ in range(2)] == [200, 200]
        refused = d.start()
        assert refused.status_code == 429 and refused.json()["error"] == "too_many_requests"
        assert 0 < int(refused.headers["retry-after"]) <= 60


# The verification page


def test_wrong_codes_are_throttled_per_address(
    store: StoreBackend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with device_app(store, tmp_path, RATE_LIMIT_DEVICE_CODE_FAILURES_PER_ADDRESS="2") as d:
        started = d.started()
        d.signed_in()
        for _ in range(2):
            wrong = d.confirm_page(started["user_code"], typed="BCDF-GHJK")
            assert wrong.status_code == 400 and 'role="alert"' in wrong.text
            assert "not valid" in wrong.text
        refused = d.confirm_page(started["user_code"])
        assert refused.status_code == 429 and 'role="alert"' in refused.text
        assert 0 < int(refused.headers["retry-after"]) <= 900
        warnings = [r.getMessage() for r in caplog.records
                    if r.name == "auth_service.events" and r.levelno == logging.WARNING]
        assert warnings.count("device_user_code_rejected") == 2
        assert warnings.count("device_user_code_throttled") == 1
        assert metric(d.client.get("/metrics").text, "auth_rate_limited_total",
                      rule="device_code") == 1
        d.clock.advance(900)
        fresh = d.started()
        assert d.confirm_page(fresh["user_code"]).status_code == 200


def test_a_forged_form_is_refused(d: Device) -> None:
    started = d.started()
    d.signed_in()
    confirm = d.confirm_page(started["user_code"])
    forged = d.client.post("/device", data={**Form(confirm.text).fields, "action": "approve",
                                            "csrf_token": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    # Without the sealed cookie (another browser), the form starts again.
    fields = Form(confirm.text).fields
    d.client.cookies.delete("device")
    again = d.client.post("/device", data={**fields, "action": "approve"},
                          follow_redirects=False)
    assert again.status_code == 400 and Form(again.text).fields.get("user_code") == ""
    assert d.poll_error(started["device_code"]) == "authorization_pending"


def test_a_form_shown_to_another_session_is_refused(d: Device) -> None:
    started = d.started()
    d.signed_in("alice")
    confirm = d.confirm_page(started["user_code"])
    d.signed_in("mallory")  # the browser now holds another session
    response = submit(d.client, confirm, action="approve")
    assert response.status_code == 400
    assert d.poll_error(started["device_code"]) == "authorization_pending"


def test_a_post_without_session_goes_to_sign_in_with_the_code(d: Device) -> None:
    started = d.started()
    response = d.client.post("/device", data={"user_code": started["user_code"].lower()},
                             follow_redirects=False)
    assert signin_redirect(response) == f"/device?user_code={started['user_code']}"
    assert signin_redirect(d.code_page()) == "/device"


def test_a_client_requiring_mfa_needs_a_second_factor(d: Device) -> None:
    started = d.started("strict", "openid read")
    d.signed_in()
    confirm = d.confirm_page(started["user_code"])
    assert confirm.status_code == 200 and "two-factor" in confirm.text
    assert Form(confirm.text).buttons["action"] == ["deny"]
    assert f"/signin?return_to={quote('/device?user_code=', safe='')}" in confirm.text
    forced = submit(d.client, confirm, action="approve")
    assert forced.status_code == 403
    assert d.poll_error(started["device_code"], "strict") == "authorization_pending"

    d.signed_in(mfa=True)
    assert d.decide(started["user_code"]).status_code == 200
    d.clock.advance(5)
    assert d.poll(started["device_code"], "strict").status_code == 200


# Hostile input


@pytest.mark.parametrize(("path", "content"), [
    ("/oauth/device_authorization", b"client_id=tv&scope=read%00"),
    ("/oauth/device_authorization", b"client_id=tv&scope=read&scope=openid"),
    ("/oauth/device_authorization", b"client_id=tv&scope=\xff\xfe"),
    ("/oauth/device_authorization", b"client_id=tv&resource=https://a/%00"),
    ("/oauth/device_authorization", b"client_id=tv&scope=" + b"r" * 5000),
    ("/oauth/device_authorization",
     b"client_id=tv&scope=read&resource=https://api.example.test/" + b"x" * 5000),
    ("/oauth/token", b"client_id=tv&grant_type=" + GRANT_DEVICE_CODE.encode()
     + b"&device_code=dc_%00"),
    ("/oauth/token", b"client_id=tv&grant_type=" + GRANT_DEVICE_CODE.encode()
     + b"&device_code=dc_" + b"x" * 5000),
    ("/oauth/token", b"client_id=tv&grant_type=" + GRANT_DEVICE_CODE.encode()),
])
def test_hostile_requests_are_400(d: Device, path: str, content: bytes) -> None:
    response = d.client.post(path, content=content,
                             headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] in ("invalid_request", "invalid_scope", "invalid_target",
                                        "invalid_grant")
    assert "asyncpg" not in response.text and "Traceback" not in response.text


def test_a_json_body_is_refused(d: Device) -> None:
    response = d.client.post("/oauth/device_authorization",
                             json={"client_id": "tv", "scope": "read"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("user_code", ["BCDF\x00GHJK", "B" * 65])
def test_hostile_user_codes_are_400(d: Device, user_code: str) -> None:
    d.signed_in()
    assert d.code_page(user_code).status_code == 400
    page = d.code_page()
    response = submit(d.client, page, user_code=user_code)
    assert response.status_code == 400
    assert "asyncpg" not in response.text and "Traceback" not in response.text


# Many instances, one store


async def test_concurrent_polls_redeem_the_device_code_once(
    store: StoreBackend, tmp_path: Path
) -> None:
    # The app runs on this event loop behind httpx's ASGI transport, so the polls really
    # interleave at every await (Litestar's test clients serialise requests).
    clock = FakeClock(T0)
    app = build_app(store, tmp_path, clock)
    async with app.lifespan(), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url=ISSUER,
    ) as client:
        started = (await client.post("/oauth/device_authorization", data={
            "client_id": "tv", "scope": DEVICE_SCOPE})).json()
        services: Services = app.state.services
        carol = await services.store.create_user(User(user_name="carol"))
        value, _ = await open_session(services.store, services.token_generator,
                                      user_id=carol.id, auth_time=clock.now(), amr=("pwd",),
                                      now=clock.now(), policy=services.session_policy)
        client.cookies.set(session_cookie_name(services), value)
        page = await client.get("/device", params={"user_code": started["user_code"]})
        confirm = await client.post("/device", data=Form(page.text).fields | {
            "action": "lookup"})
        done = await client.post("/device", data=Form(confirm.text).fields | {
            "action": "approve"})
        assert done.status_code == 200, done.text

        responses = await asyncio.gather(*(
            client.post("/oauth/token", data={
                "grant_type": GRANT_DEVICE_CODE, "device_code": started["device_code"],
                "client_id": "tv"})
            for _ in range(30)
        ))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] + [400] * 29, [r.text for r in responses]
        assert {r.json()["error"] for r in responses if r.status_code == 400} == {
            "invalid_grant"}

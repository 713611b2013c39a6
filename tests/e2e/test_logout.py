"""Logout (issue 14, item 4) through the real app, on every backend:

- RP-Initiated Logout 1.0 at ``/oauth/logout``: GET and POST, ``id_token_hint`` (expired
  allowed), ``client_id``, ``post_logout_redirect_uri`` (registered: redirect with
  ``state``; unregistered: never redirected to), the confirmation page and its CSRF
  protection, idempotence;
- Back-Channel Logout 1.0: each client of the session with a ``backchannel_logout_uri``
  receives a logout token, verified here with joserfc against ``/jwks.json``;
- the session is gone everywhere afterwards, and refresh tokens issued in it are revoked
  per client (``revoke_tokens_on_logout``).

Sessions are made with tests/e2e/session_support.py until the authorize endpoint opens
them. The relying parties' back-channel endpoints are a local listener
(tests/logout_listener.py), allowed by ``OUTBOUND_ALLOW_LOOPBACK=1``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from dependency_injector import providers
from joserfc import jws, jwt
from joserfc.jwk import KeySet
from litestar.testing import TestClient

from domain.logout import BACKCHANNEL_LOGOUT_EVENT
from domain.sessions import Session
from entrypoints.app import create_app
from entrypoints.container import build_container
from entrypoints.settings import load_settings
from tests.doubles import FakeClock, RecordingEvents
from tests.e2e.conftest import StoreBackend
from tests.e2e.ops_support import metric
from tests.e2e.session_support import (
    IssuedTokens,
    ensure_user,
    refresh,
    session_of,
    sign_in_browser,
    tokens_in_session,
)
from tests.e2e.signin_flow import HASHER, SIGNER, T0, Form
from tests.logout_listener import LogoutListener, logout_listener

ISSUER = "http://auth.test"
A_CALLBACK = "https://a.example.test/cb"
A_BYE = "https://a.example.test/bye"
A_BYE_QUERY = "https://a.example.test/bye?tenant=7"
B_CALLBACK = "https://b.example.test/cb"
B_BYE = "https://b.example.test/bye"


def clients_toml(listener: LogoutListener) -> str:
    # rp-a revokes on logout (the default); rp-b keeps its tokens (offline access).
    return f"""
[[clients]]
client_id = "rp-a"
name = "App A"
public = true
redirect_uris = ["{A_CALLBACK}"]
post_logout_redirect_uris = ["{A_BYE}", "{A_BYE_QUERY}"]
backchannel_logout_uri = "{listener.url('/a')}"
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid", "profile", "offline_access"]

[[clients]]
client_id = "rp-b"
name = "App B"
public = true
redirect_uris = ["{B_CALLBACK}"]
post_logout_redirect_uris = ["{B_BYE}"]
backchannel_logout_uri = "{listener.url('/b')}"
revoke_tokens_on_logout = false
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid", "profile", "offline_access"]

[[clients]]
client_id = "rp-c"
name = "App C"
public = true
redirect_uris = ["https://c.example.test/cb"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid", "offline_access"]
"""


class Browser:
    def __init__(self, client: TestClient[Any], clock: FakeClock,
                 listener: LogoutListener) -> None:
        self.client = client
        self.clock = clock
        self.listener = listener

    def signed_in(self, user_name: str = "alice") -> Session:
        user = ensure_user(self.client, user_name)
        return sign_in_browser(self.client, user.id)[1]

    def tokens(self, session: Session, client_id: str = "rp-a") -> IssuedTokens:
        redirect = {"rp-a": A_CALLBACK, "rp-b": B_CALLBACK}.get(client_id,
                                                                "https://c.example.test/cb")
        return tokens_in_session(self.client, session, client_id, redirect)

    def logout(self, **params: str) -> httpx.Response:
        return self.client.get("/oauth/logout", params=params, follow_redirects=False)

    def logout_post(self, **params: str) -> httpx.Response:
        return self.client.post("/oauth/logout", data=params, follow_redirects=False)

    def live(self, session: Session) -> bool:
        return session_of(self.client, session.id_hash) is not None

    def metrics(self) -> str:
        return self.client.get("/metrics").text


@pytest.fixture
def listener() -> Iterator[LogoutListener]:
    with logout_listener() as running:
        yield running


@contextmanager
def logout_app(
    store: StoreBackend, tmp_path: Path, listener: LogoutListener, *,
    events: RecordingEvents | None = None, clock: FakeClock | None = None,
) -> Iterator[Browser]:
    """The app with rp-a, rp-b and rp-c; ``events`` replaces the telemetry (no metrics)."""
    clients_file = tmp_path / "logout-clients.toml"
    clients_file.write_text(clients_toml(listener))
    settings = load_settings({"EXTERNAL_BASE_URL": ISSUER, "CLIENTS_FILE": str(clients_file),
                              "OUTBOUND_ALLOW_LOOPBACK": "1", **store.env})
    container = build_container(settings)
    clock = clock or FakeClock(T0)
    container.clock.override(providers.Object(clock))
    container.password_hasher.override(providers.Object(HASHER))
    container.signer.override(providers.Object(SIGNER))
    if events is not None:
        container.events.override(providers.Object(events))
    app = create_app(settings, store=store.instance, container=container)
    with TestClient(app, base_url=ISSUER) as client:
        yield Browser(client, clock, listener)


@pytest.fixture
def browser(store: StoreBackend, tmp_path: Path, listener: LogoutListener) -> Iterator[Browser]:
    with logout_app(store, tmp_path, listener) as running:
        yield running


def location(response: httpx.Response) -> str:
    assert response.status_code == 303, (response.status_code, response.text)
    value: str = response.headers["location"]
    return value


def cleared(response: httpx.Response, name: str = "session") -> bool:
    """Whether the response removes cookie ``name``."""
    return any(h.startswith(f"{name}=") and "Max-Age=0" in h
               for h in response.headers.get_list("set-cookie"))


def confirm(b: Browser, page: httpx.Response, action: str = "logout") -> httpx.Response:
    form = Form(page.text)
    assert form.method == "post" and form.action == "/oauth/logout", page.text
    assert "logout" in form.buttons["action"] and "cancel" in form.buttons["action"]
    return b.client.post(form.action, data={**form.fields, "action": action},
                         follow_redirects=False)


def test_discovery_names_the_end_session_endpoint_and_back_channel_support(
    browser: Browser
) -> None:
    meta = browser.client.get("/.well-known/openid-configuration").json()
    assert meta["end_session_endpoint"] == f"{ISSUER}/oauth/logout"
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True


@pytest.mark.parametrize(("registered", "expected"), [
    (A_BYE, f"{A_BYE}?state=st-9"),
    (A_BYE_QUERY, f"{A_BYE_QUERY}&state=st-9"),
])
def test_a_hinted_logout_ends_the_session_and_returns_with_state(
    browser: Browser, registered: str, expected: str
) -> None:
    session = browser.signed_in()
    hint = browser.tokens(session).id_token
    browser.clock.advance(2 * 3600)  # the ID token has expired: still a fine hint

    response = browser.logout(id_token_hint=hint, post_logout_redirect_uri=registered,
                              state="st-9", ui_locales="fr-CA")

    assert location(response) == expected
    assert response.headers["cache-control"] == "no-store"
    assert cleared(response)
    assert not browser.live(session)


def test_a_logout_request_by_post_works_the_same(browser: Browser) -> None:
    session = browser.signed_in()
    hint = browser.tokens(session).id_token

    response = browser.logout_post(id_token_hint=hint, client_id="rp-a",
                                   post_logout_redirect_uri=A_BYE, state="s-post")

    assert location(response) == f"{A_BYE}?state=s-post"
    assert not browser.live(session)


def test_a_post_without_the_session_cookie_is_asked_again_by_get(browser: Browser) -> None:
    # A cross-site form POST does not carry the SameSite=Lax session cookie.
    session = browser.signed_in()
    hint = browser.tokens(session).id_token
    cookie = browser.client.cookies.get("session")
    browser.client.cookies.delete("session")

    response = browser.logout_post(id_token_hint=hint, post_logout_redirect_uri=A_BYE,
                                   state="s1")

    target = urlsplit(location(response))
    assert target.path == "/oauth/logout" and not target.netloc
    assert parse_qs(target.query) == {"id_token_hint": [hint],
                                      "post_logout_redirect_uri": [A_BYE], "state": ["s1"]}
    assert browser.live(session)
    browser.client.cookies.set("session", cookie or "")
    assert location(browser.client.get(location(response), follow_redirects=False)) == (
        f"{A_BYE}?state=s1")
    assert not browser.live(session)


@pytest.mark.parametrize("uri", [
    "https://evil.example/bye",
    A_BYE + "/more",           # not a prefix match
    A_BYE.upper(),             # not a case-insensitive match
    B_BYE,                     # registered, but for another client
])
def test_an_unregistered_post_logout_redirect_uri_is_never_redirected_to(
    browser: Browser, uri: str
) -> None:
    session = browser.signed_in()
    hint = browser.tokens(session).id_token

    response = browser.logout(id_token_hint=hint, post_logout_redirect_uri=uri, state="s")

    assert response.status_code == 200
    assert "location" not in response.headers
    assert "You are signed out" in response.text
    assert 'role="alert"' in response.text and "not registered" in response.text
    assert uri not in response.text
    assert not browser.live(session)
    assert cleared(response)


def test_a_hint_of_another_user_asks_first(browser: Browser) -> None:
    alice_hint = browser.tokens(browser.signed_in("alice")).id_token
    bob = browser.signed_in("bob")  # the browser is now bob's

    page = browser.logout(id_token_hint=alice_hint, post_logout_redirect_uri=A_BYE,
                          state="s-other")

    assert page.status_code == 200
    assert f"Sign out of {ISSUER}?" in page.text
    assert "bob" in page.text and "different account" in page.text
    assert "location" not in page.headers
    assert browser.live(bob)
    # The form ends in a redirect to the client: the page's CSP allows that origin.
    assert "form-action 'self' https://a.example.test" in page.headers[
        "content-security-policy"]

    response = confirm(browser, page)
    assert location(response) == f"{A_BYE}?state=s-other"
    assert not browser.live(bob)


def test_without_hint_or_client_the_user_confirms_then_is_signed_out(browser: Browser) -> None:
    session = browser.signed_in()

    page = browser.logout()
    assert page.status_code == 200 and f"Sign out of {ISSUER}?" in page.text
    assert "alice" in page.text
    assert browser.live(session)

    response = confirm(browser, page)
    assert response.status_code == 200 and "You are signed out" in response.text
    assert 'role="alert"' not in response.text
    assert cleared(response) and cleared(response, "logout")
    assert not browser.live(session)


def test_a_client_id_alone_asks_first_then_returns(browser: Browser) -> None:
    session = browser.signed_in()

    page = browser.logout(client_id="rp-a", post_logout_redirect_uri=A_BYE, state="s2")
    assert page.status_code == 200 and "App A asked to sign you out" in page.text
    assert browser.live(session)

    assert location(confirm(browser, page)) == f"{A_BYE}?state=s2"
    assert not browser.live(session)


@pytest.mark.parametrize("hint", ["not-a-jwt", "eyJhbGciOiJub25lIn0.e30."])
def test_a_hint_that_does_not_verify_attributes_nothing(browser: Browser, hint: str) -> None:
    session = browser.signed_in()
    page = browser.logout(id_token_hint=hint, post_logout_redirect_uri=A_BYE)
    assert page.status_code == 200 and "Sign out of" in page.text
    assert browser.live(session)
    response = confirm(browser, page)
    assert "location" not in response.headers and "could not tell" in response.text
    assert not browser.live(session)


def test_staying_signed_in_ends_nothing(browser: Browser) -> None:
    session = browser.signed_in()
    response = confirm(browser, browser.logout(), action="cancel")
    assert response.status_code == 200 and "You are still signed in" in response.text
    assert browser.live(session)


def test_the_confirmation_needs_the_token_bound_to_this_browser(browser: Browser) -> None:
    session = browser.signed_in()
    page = browser.logout(client_id="rp-a", post_logout_redirect_uri=A_BYE)
    form = Form(page.text)

    forged = browser.client.post("/oauth/logout", data={"csrf_token": "guess",
                                                        "action": "logout"})
    assert forged.status_code == 403
    assert browser.live(session)

    # The right token, but without the confirmation cookie (another browser, a cross-site
    # POST): nothing ends, and no redirect.
    browser.client.cookies.delete("logout")
    replayed = browser.client.post("/oauth/logout", data={**form.fields, "action": "logout"},
                                   follow_redirects=False)
    assert replayed.status_code == 400 and "location" not in replayed.headers
    assert f"Sign out of {ISSUER}?" in replayed.text
    assert browser.live(session)


def test_a_get_never_ends_an_unattributed_session(browser: Browser) -> None:
    session = browser.signed_in()
    for params in ({}, {"client_id": "rp-a"}, {"client_id": "rp-a", "csrf_token": "x"},
                   {"post_logout_redirect_uri": A_BYE}):
        assert browser.logout(**params).status_code == 200
    assert browser.live(session)


def test_signing_out_twice_ends_in_the_same_place(browser: Browser) -> None:
    session = browser.signed_in()
    hint = browser.tokens(session).id_token
    params = {"id_token_hint": hint, "post_logout_redirect_uri": A_BYE, "state": "again"}

    first = browser.logout(**params)
    second = browser.logout(**params)
    assert location(first) == location(second) == f"{A_BYE}?state=again"
    browser.client.cookies.clear()
    assert location(browser.logout(**params)) == f"{A_BYE}?state=again"
    plain = browser.logout()
    assert plain.status_code == 200 and "You are signed out" in plain.text


def test_a_client_id_other_than_the_hints_audience_is_refused(browser: Browser) -> None:
    session = browser.signed_in()
    hint = browser.tokens(session).id_token
    response = browser.logout(id_token_hint=hint, client_id="rp-b",
                              post_logout_redirect_uri=B_BYE)
    assert response.status_code == 400 and "location" not in response.headers
    assert "client_id" in response.text
    assert browser.live(session)


@pytest.mark.parametrize("params", [
    [("state", "a"), ("state", "b")],
    [("client_id", "rp-a\x00")],
    [("post_logout_redirect_uri", "https://a.example.test/" + "x" * 5000)],
])
def test_malformed_requests_are_a_400_page(browser: Browser, params: list[tuple[str, str]]
                                          ) -> None:
    session = browser.signed_in()
    response = browser.client.get("/oauth/logout", params=params, follow_redirects=False)
    assert response.status_code == 400
    assert "text/html" in response.headers["content-type"]
    assert browser.live(session)


def verify_logout_token(b: Browser, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = KeySet.import_key_set(b.client.get("/jwks.json").json())
    header = dict(jws.extract_compact(token.encode()).protected)
    return header, dict(jwt.decode(token, keys, algorithms=["RS256"]).claims)


def wait_for_metric(b: Browser, outcome: str, value: float) -> float:
    deadline = time.monotonic() + 10
    found = 0.0
    while time.monotonic() < deadline:
        found = metric(b.metrics(), "auth_backchannel_logout_total", outcome=outcome)
        if found >= value:
            break
        time.sleep(0.05)
    return found


def test_every_client_of_the_session_receives_a_verifiable_logout_token(
    browser: Browser
) -> None:
    session = browser.signed_in()
    a = browser.tokens(session, "rp-a")
    browser.tokens(session, "rp-b")
    browser.tokens(session, "rp-c")  # no backchannel_logout_uri: nothing sent

    started = time.monotonic()
    response = browser.logout(id_token_hint=a.id_token, post_logout_redirect_uri=A_BYE)
    assert location(response) == A_BYE
    assert time.monotonic() - started < 2

    [to_a] = browser.listener.wait_for(1, "/a")
    [to_b] = browser.listener.wait_for(1, "/b")
    id_claims = dict(jwt.decode(a.id_token, KeySet.import_key_set(
        browser.client.get("/jwks.json").json())).claims)
    jtis = set()
    for received, client_id in ((to_a, "rp-a"), (to_b, "rp-b")):
        assert received.content_type == "application/x-www-form-urlencoded"
        [token] = received.form["logout_token"]
        header, claims = verify_logout_token(browser, token)
        assert header["typ"] == "logout+jwt"
        assert claims["iss"] == ISSUER and claims["aud"] == client_id
        assert claims["sub"] == session.user_id == id_claims["sub"]
        # The ID token carries sid once the authorize branch lands; the session's until then.
        assert claims["sid"] == id_claims.get("sid", session.sid) == session.sid
        assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
        assert "nonce" not in claims
        assert isinstance(claims["jti"], str) and claims["jti"]
        assert claims["iat"] <= claims["exp"] <= claims["iat"] + 300
        jtis.add(claims["jti"])
    assert len(jtis) == 2
    assert browser.listener.at("/c") == []
    assert wait_for_metric(browser, "delivered", 2) == 2
    assert metric(browser.metrics(), "auth_security_events_total",
                  event="backchannel_logout_delivered") == 2


def test_a_failed_delivery_is_counted_and_does_not_hold_the_response(
    browser: Browser
) -> None:
    browser.listener.answers["/a"] = [400]
    session = browser.signed_in()
    hint = browser.tokens(session, "rp-a").id_token

    assert location(browser.logout(id_token_hint=hint, post_logout_redirect_uri=A_BYE)) == A_BYE
    browser.listener.wait_for(1, "/a")
    assert wait_for_metric(browser, "rejected", 1) == 1
    assert metric(browser.metrics(), "auth_backchannel_logout_total", outcome="delivered") == 0


def test_logout_ends_the_session_and_revokes_per_client_policy(browser: Browser) -> None:
    session = browser.signed_in()
    revoked = browser.tokens(session, "rp-a")
    kept = browser.tokens(session, "rp-b")

    response = browser.logout(id_token_hint=revoked.id_token)
    assert response.status_code == 200 and "You are signed out" in response.text

    # The session is gone from the store, not only from this browser.
    assert not browser.live(session)
    refused = refresh(browser.client, "rp-a", revoked.refresh_token)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    still = refresh(browser.client, "rp-b", kept.refresh_token)
    assert still.status_code == 200, still.text

    # A new authorization request asks for the password again.
    page = browser.client.get("/oauth/authorize", params={
        "response_type": "code", "client_id": "rp-a", "redirect_uri": A_CALLBACK,
        "scope": "openid", "state": "s", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8"
        "URWbuGJSstw-cM", "code_challenge_method": "S256"}, follow_redirects=False)
    assert page.status_code == 200 and 'name="password"' in page.text


def test_a_session_ended_on_one_instance_is_gone_on_the_other(
    store: StoreBackend, tmp_path: Path, listener: LogoutListener
) -> None:
    clock = FakeClock(T0)
    with logout_app(store, tmp_path, listener, clock=clock) as first, \
            logout_app(store, tmp_path, listener, clock=clock) as second:
        session = first.signed_in()
        hint = first.tokens(session).id_token
        second.client.cookies.set("session", first.client.cookies.get("session") or "")
        assert second.live(session)

        assert location(second.logout(id_token_hint=hint, post_logout_redirect_uri=A_BYE)
                        ) == A_BYE
        assert not first.live(session)
        assert first.logout().status_code == 200  # no session left to confirm
        assert "You are signed out" in first.logout().text


def test_shutdown_waits_a_bounded_time_for_deliveries_and_logs_what_it_drops(
    store: StoreBackend, tmp_path: Path, listener: LogoutListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("entrypoints.app.LOGOUT_DRAIN_SECONDS", 0.3)
    listener.delay = 5.0  # rp-a hangs
    events = RecordingEvents()
    with logout_app(store, tmp_path, listener, events=events) as b:
        session = b.signed_in()
        hint = b.tokens(session).id_token
        assert location(b.logout(id_token_hint=hint, post_logout_redirect_uri=A_BYE))
        b.listener.wait_for(1, "/a")
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 3
    [failed] = events.named("backchannel_logout_failed")
    assert failed["reason"] == "abandoned" and failed["client_id"] == "rp-a"
    assert failed["sid"] == session.sid

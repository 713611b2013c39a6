"""Single sign-on, consent and logout in a real browser (headless Chromium, Playwright).

- Sign in to client A through the real pages (a wrong password first: the error is announced),
  reach client B without any page of ours being shown, sign out from B with its ID token as
  ``id_token_hint``: the browser lands on B's ``post_logout_redirect_uri`` with the ``state``,
  A's back-channel listener receives a logout token (verified against ``/jwks.json``), and A
  asks for the password again.
- A third-party client shows the consent page once; allowed, it is not asked again.

The app runs under uvicorn on a loopback port (tests/browser/browser_support.py); the relying
parties' pages are one small http server, A's ``backchannel_logout_uri`` another
(tests/e2e/backchannel_support.py), allowed by ``OUTBOUND_ALLOW_LOOPBACK=1``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from adapters.memory.store import MemoryStore
from adapters.passwords import Argon2PasswordHasher
from domain.entities import User
from tests.browser.browser_support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    RelyingParty,
    relying_party,
    require_chromium,
    served_app,
)
from tests.e2e.backchannel_support import BackchannelListener, backchannel_listener, logout_claims

if TYPE_CHECKING:
    from playwright.sync_api import Page

PASSWORD = "browser-test password 1"
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Setup:
    base: str
    store: MemoryStore
    rp: RelyingParty
    listener: BackchannelListener

    def uri(self, path: str) -> str:
        return self.rp.base + path


def _clients_toml(rp: RelyingParty, listener: BackchannelListener) -> str:
    return f"""
[[clients]]
client_id = "app-a"
name = "App A"
public = true
first_party = true
redirect_uris = ["{rp.base}/a/cb"]
post_logout_redirect_uris = ["{rp.base}/a/bye"]
backchannel_logout_uri = "{listener.uri}"
scopes = ["openid", "profile"]

[[clients]]
client_id = "app-b"
name = "App B"
public = true
first_party = true
redirect_uris = ["{rp.base}/b/cb"]
post_logout_redirect_uris = ["{rp.base}/b/bye"]
scopes = ["openid", "profile"]

[[clients]]
client_id = "partner-c"
name = "Partner C"
public = true
redirect_uris = ["{rp.base}/c/cb"]
scopes = ["openid", "profile", "email"]
"""


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    require_chromium()
    with relying_party() as rp, backchannel_listener() as listener:
        clients = tmp_path / "clients.toml"
        clients.write_text(_clients_toml(rp, listener))
        with served_app(clients, {"OUTBOUND_ALLOW_LOOPBACK": "1"}) as (base, store):
            async def add_user() -> None:
                await store.create_user(
                    User(user_name="grace", display_name="Grace Hopper"),
                    password_hash=await Argon2PasswordHasher().hash(PASSWORD))

            asyncio.run(add_user())
            yield Setup(base, store, rp, listener)


@dataclass(frozen=True)
class Authorization:
    url: str
    client_id: str
    redirect_uri: str
    state: str
    verifier: str


def _authorization(s: Setup, client_id: str, redirect_path: str, scope: str = "openid profile"
                   ) -> Authorization:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(8)
    redirect_uri = s.uri(redirect_path)
    query = urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": scope, "state": state, "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge.rstrip(b"=").decode(), "code_challenge_method": "S256",
    })
    return Authorization(f"{s.base}/oauth/authorize?{query}", client_id, redirect_uri, state,
                         verifier)


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _code_from(s: Setup, page: Page, auth: Authorization) -> str:
    """Waits for the browser to reach ``auth``'s redirect URI; the code it brought."""
    page.wait_for_url(f"{auth.redirect_uri}?**", timeout=10_000)
    params = _query(page.url)
    assert params["state"] == auth.state and params["iss"] == s.base, params
    return params["code"]


def _id_token(s: Setup, auth: Authorization, code: str) -> str:
    response = httpx.post(f"{s.base}/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": auth.client_id,
        "redirect_uri": auth.redirect_uri, "code_verifier": auth.verifier,
    })
    assert response.status_code == 200, response.text
    token: str = response.json()["id_token"]
    return token


def _claims(s: Setup, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(httpx.get(f"{s.base}/jwks.json").json())
    return dict(jwt.decode(token, keys, algorithms=["RS256"]).claims)


def _sign_in(page: Page, password: str = PASSWORD) -> None:
    page.get_by_label("User name").fill("grace")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def _documents(page: Page) -> list[str]:
    """The URL of every document the page shows from now on (redirects are not shown)."""
    shown: list[str] = []
    page.on("framenavigated",
            lambda frame: shown.append(frame.url) if frame == page.main_frame else None)
    return shown


def _launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                      headless=True)


def test_sign_in_to_a_reach_b_without_typing_sign_out_from_b_and_a_hears_of_it(
    setup: Setup
) -> None:
    from playwright.sync_api import expect, sync_playwright

    s = setup
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page()
            shown = _documents(page)

            # A: the sign-in page; a wrong password is announced and described on the field.
            a = _authorization(s, "app-a", "/a/cb")
            page.goto(a.url)
            expect(page.get_by_role("heading", level=1)).to_have_text(
                "Sign in to continue to App A")
            _sign_in(page, "not the password")
            alert = page.get_by_role("alert")
            expect(alert).to_be_visible()
            expect(alert).not_to_be_empty()
            error = alert.inner_text()
            expect(page.get_by_label("User name")).to_have_value("grace")
            expect(page.get_by_label("User name")).to_have_accessible_description(error)
            # The cursor waits in the password field; a screen reader reads the error there.
            expect(page.get_by_label("Password")).to_be_focused()
            expect(page.get_by_label("Password")).to_have_accessible_description(error)
            page.screenshot(path=str(ARTIFACTS / "sso-1-wrong-password.png"), full_page=True)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in", exact=True).click()
            a_claims = _claims(s, _id_token(s, a, _code_from(s, page, a)))

            # B: straight to its redirect URI; no page of ours, so nothing to type.
            shown.clear()
            b = _authorization(s, "app-b", "/b/cb")
            page.goto(b.url)
            b_code = _code_from(s, page, b)
            assert shown == [page.url], shown
            b_id_token = _id_token(s, b, b_code)
            b_claims = _claims(s, b_id_token)
            assert b_claims["sub"] == a_claims["sub"]
            assert b_claims["sid"] == a_claims["sid"]

            # Sign out from B: back at B's registered URI with the state, no page in between.
            shown.clear()
            state = secrets.token_urlsafe(8)
            page.goto(f"{s.base}/oauth/logout?" + urlencode({
                "id_token_hint": b_id_token, "post_logout_redirect_uri": s.uri("/b/bye"),
                "state": state}))
            page.wait_for_url(f"{s.uri('/b/bye')}?**", timeout=10_000)
            assert _query(page.url) == {"state": state}
            assert shown == [page.url], shown

            # A's listener: a logout token for A's session.
            [token] = s.listener.wait_for(1)
            claims = logout_claims(httpx.get(f"{s.base}/jwks.json").json(), token)
            assert claims["iss"] == s.base and claims["aud"] == "app-a"
            assert claims["sub"] == a_claims["sub"] and claims["sid"] == a_claims["sid"]
            assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
            assert "nonce" not in claims

            # A again: the session is gone, the password form is back.
            again = _authorization(s, "app-a", "/a/cb")
            page.goto(again.url)
            expect(page.get_by_label("Password")).to_be_visible()
            expect(page.get_by_label("Password")).to_have_value("")
            page.screenshot(path=str(ARTIFACTS / "sso-2-signed-out.png"), full_page=True)
        finally:
            browser.close()


def test_a_third_party_client_asks_for_consent_once(setup: Setup) -> None:
    from playwright.sync_api import expect, sync_playwright

    s = setup
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page()
            c = _authorization(s, "partner-c", "/c/cb", "openid profile email")
            page.goto(c.url)
            _sign_in(page)

            expect(page.get_by_role("heading", level=1)).to_have_text(
                "Allow Partner C to access your account?")
            scopes = page.get_by_role("list", name="Partner C is asking for:")
            expect(scopes.get_by_role("listitem")).to_have_count(3)
            expect(scopes).to_contain_text("email")
            expect(page.get_by_role("button", name="Allow")).to_be_focused()
            expect(page.get_by_role("button", name="not you?")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "sso-3-consent.png"), full_page=True)
            page.get_by_role("button", name="Allow").click()
            _code_from(s, page, c)

            # Asked once: the same request again goes straight back, no page shown.
            shown = _documents(page)
            again = _authorization(s, "partner-c", "/c/cb", "openid profile email")
            page.goto(again.url)
            _code_from(s, page, again)
            assert shown == [page.url], shown
        finally:
            browser.close()

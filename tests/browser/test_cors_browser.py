"""A browser app in real Chromium: a native-style loopback redirect on a port the
registration does not name, then ``fetch()`` from the app's origin to the token and userinfo
endpoints (the latter with a preflight, for its ``Authorization`` header), and the same
calls refused from another origin.

The app's pages are served by a small HTTP server on a loopback port: its origin
``http://127.0.0.1:PORT`` is the client's allowed origin, while the same server reached as
``http://localhost:PORT`` is a foreign origin.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from adapters.memory.store import MemoryStore
from adapters.passwords import Argon2PasswordHasher
from domain.entities import User
from tests.browser.browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    relying_party,
    require_chromium,
    served_app,
)
from tests.browser.test_signin_browser import PASSWORD

pytestmark = pytest.mark.browser

#: Runs in the app's page: the code exchange, then userinfo with a bearer header.
FETCH_TOKENS = """async ([base, body]) => {
  const token = await fetch(base + "/oauth/token",
                            {method: "POST", body: new URLSearchParams(body)});
  const tokens = await token.json();
  const info = await fetch(base + "/oauth/userinfo",
                           {headers: {Authorization: "Bearer " + tokens.access_token}});
  return {status: token.status, expires_in: tokens.expires_in, userinfo: await info.json(),
          access_token: tokens.access_token};
}"""
#: Runs in a page of another origin: every call must be blocked by the browser.
FETCH_FOREIGN = """async ([base, token, body]) => {
  const outcomes = [];
  for (const call of [
      () => fetch(base + "/oauth/userinfo", {headers: {Authorization: "Bearer " + token}}),
      () => fetch(base + "/oauth/token", {method: "POST", body: new URLSearchParams(body)})]) {
    try { const r = await call(); outcomes.push("read " + r.status); }
    catch (e) { outcomes.push("blocked"); }
  }
  return outcomes;
}"""


@pytest.fixture
def app_server() -> Iterator[int]:
    with relying_party() as party:
        yield party.port


@pytest.fixture
def auth_server(tmp_path: Path, app_server: int) -> Iterator[tuple[str, MemoryStore]]:
    clients = tmp_path / "clients.toml"
    clients.write_text(
        '[[clients]]\nclient_id = "spa"\nname = "Browser App"\n'
        'token_endpoint_auth_method = "none"\n'
        'redirect_uris = ["http://127.0.0.1/callback"]\nscope = "openid profile"\n'
        f'allowed_cors_origins = ["http://127.0.0.1:{app_server}"]\n'
        "access_token_lifetime = 600\nfirst_party = true\n")
    with served_app(clients) as running:
        yield running


def test_a_browser_app_reads_the_token_and_userinfo_answers_only_from_its_origin(
    auth_server: tuple[str, MemoryStore], app_server: int
) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    base, store = auth_server

    async def add_user() -> None:
        await store.create_user(User(user_name="ada"),
                                password_hash=await Argon2PasswordHasher().hash(PASSWORD))

    asyncio.run(add_user())
    redirect_uri = f"http://127.0.0.1:{app_server}/callback"  # a port not registered
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = urlencode({
        "response_type": "code", "client_id": "spa", "redirect_uri": redirect_uri,
        "scope": "openid profile", "state": "s1",
        "code_challenge": challenge.rstrip(b"=").decode(), "code_challenge_method": "S256",
    })
    outcome: dict[str, Any]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            page = browser.new_page()
            page.goto(f"{base}/oauth/authorize?{query}")
            page.get_by_label("User name").fill("ada")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in", exact=True).click()
            page.wait_for_url(f"{redirect_uri}?**", timeout=10_000)
            code = page.evaluate("new URLSearchParams(location.search).get('code')")
            outcome = page.evaluate(FETCH_TOKENS, [base, {
                "grant_type": "authorization_code", "code": code, "client_id": "spa",
                "redirect_uri": redirect_uri, "code_verifier": verifier}])
            foreign = browser.new_page()
            foreign.goto(f"http://localhost:{app_server}/elsewhere")
            # Even with the real token, and as the client itself (its error would be
            # readable from its own origin), the other origin reads nothing.
            blocked = foreign.evaluate(FETCH_FOREIGN, [base, outcome["access_token"], {
                "grant_type": "authorization_code", "code": code, "client_id": "spa",
                "redirect_uri": redirect_uri, "code_verifier": verifier}])
        finally:
            browser.close()

    assert outcome["status"] == 200 and outcome["expires_in"] == 600
    assert outcome["userinfo"]["preferred_username"] == "ada"
    assert blocked == ["blocked", "blocked"]

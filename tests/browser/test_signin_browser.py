"""One sign-in in a real browser: headless Chromium (Debian's package) driven by Playwright.

The app runs under uvicorn on a loopback port; a tiny HTTP server on another port plays the
client's redirect URI. The user signs in with password and TOTP; each page is saved as a
screenshot under ``test-artifacts/``. In CI (``CI=true``) a missing browser fails the test.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pyotp
import pytest

from adapters.memory.store import MemoryStore
from adapters.passwords import Argon2PasswordHasher
from domain.entities import User
from tests.browser.browser_support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    relying_party,
    require_chromium,
    served_app,
)

PASSWORD = "browser-test password 1"

pytestmark = pytest.mark.browser


@pytest.fixture
def callback() -> Iterator[tuple[str, list[str]]]:
    with relying_party() as party:
        yield f"{party.base}/callback", party.received


@pytest.fixture
def server(tmp_path: Path, callback: tuple[str, list[str]]) -> Iterator[tuple[str, MemoryStore]]:
    redirect_uri, _ = callback
    clients = tmp_path / "clients.toml"
    clients.write_text(
        '[[clients]]\nclient_id = "browser-app"\nname = "Browser Test App"\npublic = true\n'
        f'redirect_uris = ["{redirect_uri}"]\nscopes = ["openid", "profile"]\n'
        "first_party = true\n"
    )
    with served_app(clients) as running:
        yield running


def test_sign_in_with_password_and_totp_in_chromium(
    server: tuple[str, MemoryStore], callback: tuple[str, list[str]]
) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    base, store = server
    redirect_uri, received = callback
    secret = pyotp.random_base32()

    async def add_user() -> None:
        user = await store.create_user(User(user_name="grace", display_name="Grace Hopper"),
                                       password_hash=await Argon2PasswordHasher().hash(PASSWORD))
        await store.set_totp(user.id, secret, confirmed=True)

    asyncio.run(add_user())

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(8)
    query = urlencode({
        "response_type": "code", "client_id": "browser-app", "redirect_uri": redirect_uri,
        "scope": "openid profile", "state": state, "nonce": "browser-nonce",
        "code_challenge": challenge.rstrip(b"=").decode(), "code_challenge_method": "S256",
    })
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            page = browser.new_page()
            response = page.goto(f"{base}/oauth/authorize?{query}")
            assert response is not None and response.status == 200
            assert "Browser Test App" in page.content()
            page.screenshot(path=str(ARTIFACTS / "signin-1-password.png"), full_page=True)
            page.get_by_label("User name").fill("grace")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in", exact=True).click()
            page.get_by_label("Verification code").wait_for()
            page.screenshot(path=str(ARTIFACTS / "signin-2-totp.png"), full_page=True)
            page.get_by_label("Verification code").fill(pyotp.TOTP(secret).now())
            page.get_by_role("button", name="Verify").click()
            page.wait_for_url(f"{redirect_uri}?**", timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "signin-3-callback.png"), full_page=True)
            final_url = page.url
        finally:
            browser.close()

    assert any(path.startswith("/callback?code=") for path in received)
    params = {k: v[0] for k, v in parse_qs(urlsplit(final_url).query).items()}
    assert params["state"] == state and params["iss"] == base
    token = httpx.post(f"{base}/oauth/token", data={
        "grant_type": "authorization_code", "code": params["code"], "client_id": "browser-app",
        "redirect_uri": redirect_uri, "code_verifier": verifier,
    })
    assert token.status_code == 200, token.text
    introspected = token.json()
    assert "id_token" in introspected
    for name in ("signin-1-password.png", "signin-2-totp.png", "signin-3-callback.png"):
        assert (ARTIFACTS / name).stat().st_size > 0

"""One sign-in in a real browser: headless Chromium (Debian's package) driven by Playwright.

The app runs under uvicorn on a loopback port; a tiny HTTP server on another port plays the
client's redirect URI. The user signs in with password and TOTP; each page is saved as a
screenshot under ``test-artifacts/``. In CI (``CI=true``) a missing browser fails the test.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pyotp
import pytest
import uvicorn

from adapters.memory.store import MemoryStore
from adapters.passwords import Argon2PasswordHasher
from domain.entities import User
from entrypoints.app import create_app
from entrypoints.settings import load_settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "browser-test password 1"

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Callback(BaseHTTPRequestHandler):
    received: list[str] = []

    def do_GET(self) -> None:
        type(self).received.append(self.path)
        body = b"<!doctype html><html lang=en><title>Callback</title><h1>Signed in</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def callback() -> Iterator[tuple[str, list[str]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Callback)
    _Callback.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/callback", _Callback.received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server(tmp_path: Path, callback: tuple[str, list[str]]) -> Iterator[tuple[str, MemoryStore]]:
    redirect_uri, _ = callback
    clients = tmp_path / "clients.toml"
    clients.write_text(
        '[[clients]]\nclient_id = "browser-app"\nname = "Browser Test App"\npublic = true\n'
        f'redirect_uris = ["{redirect_uri}"]\nscopes = ["openid", "profile"]\n'
        "first_party = true\n"
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = load_settings({"CLIENTS_FILE": str(clients), "EXTERNAL_BASE_URL": base,
                              "BIND_ADDR": f"127.0.0.1:{port}"})
    store = MemoryStore()
    config = uvicorn.Config(create_app(settings, store=store), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the app did not start")
        time.sleep(0.05)
    try:
        yield base, store
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def _require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def test_sign_in_with_password_and_totp_in_chromium(
    server: tuple[str, MemoryStore], callback: tuple[str, list[str]]
) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    base, store = server
    redirect_uri, received = callback
    secret = pyotp.random_base32()

    async def add_user() -> None:
        user = await store.create_user(User(user_name="grace", display_name="Grace Hopper"),
                                       password_hash=await Argon2PasswordHasher().hash(PASSWORD))
        await store.set_totp(user.id, secret, confirmed=True)

    import asyncio
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
            page.get_by_role("button", name="Sign in").click()
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

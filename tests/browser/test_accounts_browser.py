"""Accounts people run themselves, in a real browser (headless Chromium, Playwright).

- Passkeys, with the Chrome DevTools Protocol's virtual authenticator
  (``WebAuthn.addVirtualAuthenticator``; a CTAP2 platform authenticator with user
  verification): a user signs in with a password, adds a passkey on ``/account`` (the first
  second factor: the recovery codes are shown once), signs out, signs in with the passkey
  alone (no user name typed; the ID token of an application says ``hwk`` and ``mfa``),
  signs out, signs in with the password and then the passkey as second factor. A copy of the
  passkey whose signature counter went back (a cloned authenticator) is refused.
- Password reset, through a real SMTP server (aiosmtpd): "Forgot password?", the mailed
  link, a new password, and signing in with it.

WebAuthn needs a relying party id that is a host name, not an IP address, so the app is
served as ``http://localhost:PORT``. Every page is saved as a screenshot under
``test-artifacts/accounts/`` (the pictures of docs/accounts.md come from there).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
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

from adapters.passwords import Argon2PasswordHasher
from domain.entities import Email, User
from tests.browser.browser_support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    RelyingParty,
    relying_party,
    require_chromium,
    served_app,
)
from tests.services.smtp import LocalSmtp

if TYPE_CHECKING:
    from playwright.sync_api import CDPSession, Page

PASSWORD = "browser-test password 1"
NEW_PASSWORD = "a brand new passphrase 2"
SHOTS = ARTIFACTS / "accounts"

pytestmark = pytest.mark.browser

#: A platform authenticator (like a laptop's) that verifies its user and keeps discoverable
#: credentials; presence is confirmed without a click.
AUTHENTICATOR = {
    "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
    "hasUserVerification": True, "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


@dataclass(frozen=True)
class Setup:
    base: str
    rp: RelyingParty
    smtp: LocalSmtp


def _clients_toml(rp: RelyingParty) -> str:
    return f"""
[[clients]]
client_id = "app"
name = "Photo App"
public = true
first_party = true
require_mfa = true
redirect_uris = ["{rp.base}/cb"]
scopes = ["openid", "profile"]
"""


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    require_chromium()
    smtp = LocalSmtp()
    smtp.start()
    try:
        with relying_party() as rp:
            clients = tmp_path / "clients.toml"
            clients.write_text(_clients_toml(rp))
            env = {"SMTP_URL": smtp.url, "SMTP_FROM": "accounts@localhost"}
            with served_app(clients, env, host_name="localhost") as (base, store):
                async def add_user() -> None:
                    await store.create_user(
                        User(user_name="grace", display_name="Grace Hopper",
                             emails=(Email(value="grace@example.test", primary=True),)),
                        password_hash=await Argon2PasswordHasher().hash(PASSWORD))

                asyncio.run(add_user())
                yield Setup(base, rp, smtp)
    finally:
        smtp.stop()


def _launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                      headless=True)


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _sign_in_with_password(page: Page, password: str = PASSWORD) -> None:
    page.get_by_label("User name").fill("grace")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def _sign_out(page: Page, s: Setup) -> None:
    page.goto(f"{s.base}/account")
    page.get_by_role("button", name="Sign out of this browser").first.click()
    page.wait_for_url(f"{s.base}/account?done=signed_out")


def _authorization_url(s: Setup) -> tuple[str, str]:
    """An authorization request of the app (which requires MFA), and its PKCE verifier."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = urlencode({
        "response_type": "code", "client_id": "app", "redirect_uri": f"{s.rp.base}/cb",
        "scope": "openid profile", "state": "st", "nonce": "n",
        "code_challenge": challenge.rstrip(b"=").decode(), "code_challenge_method": "S256",
    })
    return f"{s.base}/oauth/authorize?{query}", verifier


def _id_token_claims(s: Setup, page: Page, verifier: str) -> dict[str, Any]:
    page.wait_for_url(f"{s.rp.base}/cb?**", timeout=10_000)
    code = parse_qs(urlsplit(page.url).query)["code"][0]
    response = httpx.post(f"{s.base}/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": "app",
        "redirect_uri": f"{s.rp.base}/cb", "code_verifier": verifier,
    })
    assert response.status_code == 200, response.text
    keys = KeySet.import_key_set(httpx.get(f"{s.base}/jwks.json").json())
    return dict(jwt.decode(response.json()["id_token"], keys, algorithms=["RS256"]).claims)


def _virtual_authenticator(page: Page) -> tuple[CDPSession, str]:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    return cdp, added["authenticatorId"]


def test_a_passkey_is_added_then_signs_in_alone_and_as_second_factor(setup: Setup) -> None:
    from playwright.sync_api import expect, sync_playwright

    s = setup
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page()
            cdp, authenticator = _virtual_authenticator(page)

            # Signed in with the password, the account page offers to add a passkey.
            page.goto(f"{s.base}/signin?return_to=/account")
            _sign_in_with_password(page)
            page.wait_for_url(f"{s.base}/account")
            expect(page.locator("#passkey-none")).to_be_visible()
            _shot(page, "account")

            page.locator("#passkey-add-link").click()
            page.wait_for_url(f"{s.base}/account/passkeys/new")
            page.locator("#passkey-name").fill("Grace's laptop")
            _shot(page, "passkey-new")
            page.locator("#passkey-register-button").click()

            # The first second factor: ten recovery codes, shown this once.
            expect(page.get_by_role("heading", level=1)).to_have_text(
                "Save your recovery codes")
            codes = page.locator("ol.codes li code").all_inner_texts()
            assert len(codes) == 10 and all(re.fullmatch(r"([a-z2-7]{4}-){3}[a-z2-7]{4}", c)
                                            for c in codes)
            _shot(page, "recovery-codes")
            [credential] = cdp.send("WebAuthn.getCredentials",
                                    {"authenticatorId": authenticator})["credentials"]
            assert credential["isResidentCredential"] is True

            page.get_by_role("link", name="back to your account").click()
            expect(page.locator("#passkey-name-1")).to_have_text("Grace's laptop")
            expect(page.get_by_text("You have 10 unused recovery codes.")).to_be_visible()
            _shot(page, "account-passkey")
            _sign_out(page, s)

            # The passkey alone: no user name typed, and the application that requires
            # MFA gets its code without another step.
            url, verifier = _authorization_url(s)
            page.goto(url)
            expect(page.locator("#passkey-signin-button")).to_be_visible()
            _shot(page, "signin")
            page.locator("#passkey-signin-button").click()
            claims = _id_token_claims(s, page, verifier)
            assert claims["amr"] == ["hwk", "mfa"] and claims["acr"] == "mfa", claims
            page.goto(f"{s.base}/account")
            expect(page.get_by_text("with passkey").first).to_be_visible()
            _sign_out(page, s)

            # The password, then the passkey as the second factor.
            page.goto(f"{s.base}/signin?return_to=/account")
            _sign_in_with_password(page)
            expect(page.locator("#passkey-verify-button")).to_be_visible()
            _shot(page, "second-factor")
            page.locator("#passkey-verify-button").click()
            page.wait_for_url(f"{s.base}/account")
            expect(page.get_by_text("with password and passkey").first).to_be_visible()
            _sign_out(page, s)

            # A clone of the passkey whose counter went back is refused.
            [used] = cdp.send("WebAuthn.getCredentials",
                              {"authenticatorId": authenticator})["credentials"]
            assert used["signCount"] >= 2
            cdp.send("WebAuthn.removeCredential", {"authenticatorId": authenticator,
                                                   "credentialId": used["credentialId"]})
            cdp.send("WebAuthn.addCredential", {"authenticatorId": authenticator,
                                                "credential": {**used, "signCount": 0}})
            page.goto(f"{s.base}/signin?return_to=/account")
            page.locator("#passkey-signin-button").click()
            alert = page.get_by_role("alert")
            expect(alert).to_be_visible()
            assert page.url.startswith(f"{s.base}/signin")
            _shot(page, "passkey-refused")
            # Still signed out.
            page.goto(f"{s.base}/account")
            expect(page.get_by_role("link", name="Sign in")).to_be_visible()
        finally:
            browser.close()


_RESET_LINK = re.compile(r"(http://localhost:\d+/signin/reset\?token=[A-Za-z0-9_\-]+)")


def test_a_forgotten_password_is_reset_with_the_mailed_link(setup: Setup) -> None:
    from playwright.sync_api import expect, sync_playwright

    s = setup
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page()
            page.goto(f"{s.base}/signin?return_to=/account")
            page.get_by_role("link", name="Forgot password?").click()
            page.get_by_label(re.compile("User name or email", re.I)).fill("grace@example.test")
            _shot(page, "forgot")
            page.get_by_role("button", name=re.compile("link", re.I)).click()
            _shot(page, "forgot-sent")

            [mail] = s.smtp.wait_for(1)
            assert mail.rcpt_tos == ["grace@example.test"]
            found = _RESET_LINK.search(mail.text)
            assert found is not None, mail.text
            page.goto(found.group(1))
            page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
            page.get_by_label(re.compile("again|repeat|confirm", re.I)).fill(NEW_PASSWORD)
            _shot(page, "reset")
            page.get_by_role("button", name=re.compile("password", re.I)).click()

            # Back on the sign-in page: the old password is refused, the new one works.
            page.wait_for_url(re.compile(r".*/signin.*"))
            _sign_in_with_password(page, PASSWORD)
            expect(page.get_by_role("alert")).to_be_visible()
            _sign_in_with_password(page, NEW_PASSWORD)
            page.wait_for_url(f"{s.base}/account")

            # The link was single use.
            page.goto(found.group(1))
            page.get_by_label("New password", exact=True).fill(PASSWORD + " again")
            page.get_by_label(re.compile("again|repeat|confirm", re.I)).fill(
                PASSWORD + " again")
            page.get_by_role("button", name=re.compile("password", re.I)).click()
            expect(page.get_by_role("heading", level=1)).to_contain_text(
                re.compile("no longer works|expired|used", re.I))
        finally:
            browser.close()

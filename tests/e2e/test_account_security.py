"""``/account``'s sign-in methods: recovery codes (at sign-in, at a step-up, on the page,
regenerated), changing the password, and setting up, replacing and removing TOTP; and the
recovery codes ``POST /mfa/totp/verify`` hands out.

The browser signs in through the real pages (``/signin``), over a memory store with a fake
clock (tests/e2e/signin_flow.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from domain.entities import User
from domain.recovery import issue_recovery_codes, recovery_code_hash
from domain.sessions import AMR_MFA, AMR_OTP, AMR_PASSWORD, hash_session_id, open_session
from domain.tokens import hash_token
from tests.e2e.signin_flow import (
    PASSWORD,
    SECURE_ID,
    SECURE_REDIRECT,
    Form,
    Harness,
    auth_params,
    full_flow,
    harness,
    submit,
    visit,
)

SECRET = pyotp.random_base32()
NEW_PASSWORD = "a new and longer passphrase"
_CODE = re.compile(r"<code>([a-z2-7]{4}(?:-[a-z2-7]{4}){3})</code>")


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with harness(tmp_path) as running:
        yield running


def _form(html: str, action: str) -> Form:
    """The form of the page that posts to ``action`` (exactly one)."""
    found = []
    for index in range(html.count("<form")):
        form = Form(html, index)
        if form.action == action:
            found.append(form)
    assert len(found) == 1, (action, html)
    return found[0]


def _has_form(html: str, action: str) -> bool:
    return f'action="{action}"' in html


def _post(h: Harness, html: str, action: str, **values: str) -> httpx.Response:
    """Fill the page's form for ``action`` (keeping its hidden fields) and post it."""
    form = _form(html, action)
    return h.client.post(action, data={**form.fields, **values}, follow_redirects=False)


def _sign_in(h: Harness, *, password: str = PASSWORD, totp_secret: str | None = None,
             recovery_code: str | None = None) -> httpx.Response:
    """Sign in through ``/signin`` (renewing the sign-in when the browser has a session)."""
    params = {"return_to": "/account"}
    if h.client.cookies.get("session"):
        params["prompt"] = "login"
    page = h.client.get("/signin", params=params)
    assert page.status_code == 200, page.text
    response = submit(h.client, page, username="alice", password=password)
    if totp_secret is not None:
        response = submit(h.client, response, code=pyotp.TOTP(totp_secret).at(h.clock.now()))
    elif recovery_code is not None:
        response = _use_recovery_code(h, response, recovery_code)
    return response


def _use_recovery_code(h: Harness, page: httpx.Response, code: str) -> httpx.Response:
    assert page.status_code == 200, page.text
    form = next(Form(page.text, i) for i in range(page.text.count("<form"))
                if "recovery_code" in Form(page.text, i).fields)
    return h.client.post(form.action or "", data={**form.fields, "recovery_code": code,
                                                  "action": "verify"},
                         follow_redirects=False)


def _signed_in(response: httpx.Response) -> None:
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/account"


def _page(h: Harness) -> str:
    response = h.client.get("/account")
    assert response.status_code == 200, response.text
    return response.text


def _done(response: httpx.Response, done: str) -> None:
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/account?done={done}"


def _codes(html: str) -> list[str]:
    return _CODE.findall(html)


def _issue(h: Harness, user: User) -> list[str]:
    return list(h.run(issue_recovery_codes(h.store, h.events, user.id, reason="enrolment")))


def _user_with_totp(h: Harness) -> tuple[User, list[str]]:
    user = h.add_user(totp_secret=SECRET)
    return user, _issue(h, user)


def _other_session(h: Harness, user: User) -> str:
    """A session of ``user`` in another browser; its cookie value."""
    async def make() -> str:
        now = h.clock.now()
        value, _ = await open_session(h.store, h.services.token_generator, user_id=user.id,
                                      auth_time=now, amr=(AMR_PASSWORD,), now=now)
        return value

    value: str = h.run(make())
    return value


def _live(h: Harness, cookie_value: str) -> bool:
    return h.run(h.store.get_session(hash_session_id(cookie_value), h.clock.now())) is not None


def _count(h: Harness, user: User) -> int:
    count: int = h.run(h.store.count_recovery_codes(user.id))
    return count


# --- recovery codes at sign-in and at a step-up ---------------------------------------


def test_a_recovery_code_signs_in_once_in_place_of_the_totp_code(h: Harness) -> None:
    user, codes = _user_with_totp(h)
    response = _sign_in(h, recovery_code=codes[0])
    _signed_in(response)
    session = h.session()
    assert session is not None and session.amr == (AMR_PASSWORD, AMR_OTP, AMR_MFA)
    assert h.events.named("recovery_code_used")[-1]["remaining"] == 9
    assert "You have 9 unused recovery codes." in _page(h)

    h.client.cookies.clear()
    again = _sign_in(h, recovery_code=codes[0])
    assert again.status_code == 200 and 'role="alert"' in again.text
    assert "The recovery code is incorrect or was already used." in again.text
    assert h.session() is None and _count(h, user) == 9
    # Typed in capitals, ungrouped, with spaces: the same code.
    typed = " ".join(codes[1].replace("-", "").upper()[i:i + 2] for i in range(0, 16, 2))
    _signed_in(_use_recovery_code(h, again, typed))
    assert _count(h, user) == 8


def test_a_recovery_code_does_the_step_up_a_client_asks_for(h: Harness) -> None:
    user = h.add_user()
    assert visit(h, {**auth_params()}).params["code"]
    h.run(h.store.set_totp(user.id, h.services.secret_sealer.seal(SECRET, f"totp:{user.id}"),
                           confirmed=True))
    codes = _issue(h, user)
    page = h.client.get("/oauth/authorize", params=auth_params(
        client_id=SECURE_ID, redirect_uri=SECURE_REDIRECT, scope="openid profile"))
    assert page.status_code == 200 and 'name="recovery_code"' in page.text
    response = _use_recovery_code(h, page, codes[3])
    assert response.status_code == 303, response.text
    assert "code=" in response.headers["location"]
    session = h.session()
    assert session is not None and session.mfa_verified
    assert _count(h, user) == 9


# --- recovery codes on /account --------------------------------------------------------


def test_the_page_shows_how_many_codes_are_left_and_warns_when_few(h: Harness) -> None:
    user, codes = _user_with_totp(h)
    _signed_in(_sign_in(h, totp_secret=SECRET))
    page = _page(h)
    assert "You have 10 unused recovery codes." in page and 'id="recovery-warning"' not in page
    for code in codes[:8]:
        assert h.run(h.store.use_recovery_code(user.id, recovery_code_hash(code)))
    page = _page(h)
    assert "You have 2 unused recovery codes." in page
    assert 'id="recovery-warning"' in page and "Only 2 left" in page
    # No code is ever on the page itself.
    assert not any(code in page for code in codes)


def test_regenerating_shows_a_new_set_once_and_ends_the_old_one(h: Harness) -> None:
    user, old = _user_with_totp(h)
    _signed_in(_sign_in(h, totp_secret=SECRET))
    response = _post(h, _page(h), "/account/recovery-codes")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    new = _codes(response.text)
    assert len(new) == 10 and len(set(new)) == 10 and not set(new) & set(old)
    assert "Your earlier codes no longer work." in response.text
    assert h.events.named("recovery_codes_generated")[-1]["reason"] == "regenerated"
    page = _page(h)
    assert "You have 10 unused recovery codes." in page and not _codes(page)

    h.client.cookies.clear()
    refused = _sign_in(h, recovery_code=old[0])
    assert "The recovery code is incorrect or was already used." in refused.text
    _signed_in(_use_recovery_code(h, refused, new[0]))
    assert _count(h, user) == 9


def test_regenerating_needs_a_recent_sign_in(h: Harness) -> None:
    user, _ = _user_with_totp(h)
    _signed_in(_sign_in(h, totp_secret=SECRET))
    page = _page(h)
    h.clock.advance(h.services.settings.mfa_recent_auth_seconds + 1)
    response = _post(h, page, "/account/recovery-codes")
    assert response.status_code == 403 and 'role="alert"' in response.text
    assert 'href="/signin?return_to=/account&amp;prompt=login"' in response.text
    assert not _codes(response.text)
    assert _count(h, user) == 10
    stale = _page(h)
    assert not _has_form(stale, "/account/recovery-codes")
    assert "To generate new codes" in stale
    # Signing in again (prompt=login) renews the sign-in: then it works.
    _signed_in(_sign_in(h, totp_secret=SECRET))
    renewed = _post(h, _page(h), "/account/recovery-codes")
    assert renewed.status_code == 200 and len(_codes(renewed.text)) == 10


def test_without_a_second_factor_there_is_nothing_to_regenerate(h: Harness) -> None:
    user = h.add_user()
    _signed_in(_sign_in(h))
    page = _page(h)
    assert "You have no recovery codes." in page
    assert not _has_form(page, "/account/recovery-codes")
    forged = h.client.post("/account/recovery-codes",
                           data=_form(page, "/account/signout").fields,
                           follow_redirects=False)
    assert forged.status_code == 409 and 'role="alert"' in forged.text
    assert "set up an authenticator app or a passkey first" in forged.text
    assert not _codes(forged.text) and _count(h, user) == 0


# --- /mfa/totp/verify hands out the first set -----------------------------------------


def test_the_verify_endpoint_returns_recovery_codes_with_the_first_factor_only(
    h: Harness,
) -> None:
    user = h.add_user()
    token = full_flow(h, scope="openid mfa")["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    registered = h.client.post("/mfa/totp/register", headers=bearer).json()
    code = pyotp.TOTP(registered["secret"]).at(h.clock.now())
    confirmed = h.client.post("/mfa/totp/verify", headers=bearer,
                              json={"enrollment": registered["enrollment"], "code": code})
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert body["confirmed"] is True and len(body["recovery_codes"]) == 10
    assert confirmed.headers["cache-control"] == "no-store"
    assert _count(h, user) == 10
    # Replacing the factor keeps the set: no codes in the answer.
    h.clock.advance(30)
    replaced = h.client.post("/mfa/totp/register", headers=bearer, json={
        "current_code": pyotp.TOTP(registered["secret"]).at(h.clock.now())}).json()
    h.clock.advance(30)  # codes are claimed per user and step
    again = h.client.post("/mfa/totp/verify", headers=bearer, json={
        "enrollment": replaced["enrollment"],
        "code": pyotp.TOTP(replaced["secret"]).at(h.clock.now())})
    assert again.status_code == 200 and again.json() == {"confirmed": True}
    # The codes it gave work at sign-in.
    h.client.cookies.clear()
    _signed_in(_sign_in(h, recovery_code=body["recovery_codes"][0]))


def test_the_openapi_document_describes_the_recovery_codes(h: Harness) -> None:
    document = h.client.get("/schema/openapi.json").json()
    schema = document["components"]["schemas"]["TotpConfirmation"]
    assert "shown this once" in schema["properties"]["recovery_codes"]["description"]
    assert schema["required"] == ["confirmed"]


# --- changing the password -------------------------------------------------------------


def _password_form(h: Harness) -> str:
    page = _page(h)
    assert _has_form(page, "/account/password")
    return page


def test_changing_the_password_ends_every_other_session_and_token(h: Harness) -> None:
    h.add_user()
    # An application's tokens, from a sign-in in another browser.
    tokens = full_flow(h, scope="openid offline_access")
    elsewhere = h.client.cookies.get("session")
    assert elsewhere is not None
    h.client.cookies.clear()
    _signed_in(_sign_in(h))
    here = h.client.cookies.get("session")
    assert here is not None
    response = _post(h, _password_form(h), "/account/password", current_password=PASSWORD,
                     new_password=NEW_PASSWORD, new_password_confirm=NEW_PASSWORD)
    _done(response, "password_changed")
    # This browser stays signed in, under a new cookie; the old value opens nothing.
    renewed = h.client.cookies.get("session")
    assert renewed and renewed != here and _live(h, renewed) and not _live(h, here)
    assert "Your password is changed." in h.client.get(response.headers["location"]).text
    assert not _live(h, elsewhere)
    ended = h.events.named("session_ended")
    assert [e["reason"] for e in ended] == ["password_changed"]
    refresh = h.client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": "spa"})
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    record = h.run(h.store.get_access_token(hash_token(tokens["access_token"]), h.clock.now()))
    assert record is None or not record.active
    assert h.events.named("password_changed")[-1]["sessions_ended"] == 1
    # The new password signs in; the old one does not.
    h.client.cookies.clear()
    assert _sign_in(h).status_code == 200
    _signed_in(_sign_in(h, password=NEW_PASSWORD))


@pytest.mark.parametrize(("values", "message"), [
    ({"current_password": "wrong password", "new_password": NEW_PASSWORD,
      "new_password_confirm": NEW_PASSWORD}, "The current password is incorrect."),
    ({"current_password": "", "new_password": NEW_PASSWORD,
      "new_password_confirm": NEW_PASSWORD}, "Type your current password to change it."),
    ({"current_password": PASSWORD, "new_password": "short",
      "new_password_confirm": "short"}, "it needs at least 8 characters"),
    ({"current_password": PASSWORD, "new_password": NEW_PASSWORD,
      "new_password_confirm": NEW_PASSWORD + "!"}, "The two new passwords are not the same."),
])
def test_a_refused_password_change_says_why_and_changes_nothing(
    h: Harness, values: dict[str, str], message: str
) -> None:
    user = h.add_user()
    elsewhere = _other_session(h, user)
    _signed_in(_sign_in(h))
    here = h.client.cookies.get("session")
    response = _post(h, _password_form(h), "/account/password", **values)
    assert response.status_code == 400, response.text
    assert 'role="alert"' in response.text and message in response.text
    # The form is there again to correct; no password is echoed back.
    assert _has_form(response.text, "/account/password")
    assert PASSWORD not in response.text and NEW_PASSWORD not in response.text
    assert h.client.cookies.get("session") == here and _live(h, elsewhere)
    h.client.cookies.clear()
    _signed_in(_sign_in(h))


def test_wrong_current_passwords_are_throttled_like_sign_ins(h: Harness) -> None:
    h.add_user()
    _signed_in(_sign_in(h))
    page = _password_form(h)
    statuses = []
    for _ in range(8):
        statuses.append(_post(h, page, "/account/password", current_password="guess",
                              new_password=NEW_PASSWORD,
                              new_password_confirm=NEW_PASSWORD).status_code)
    assert statuses[0] == 400 and statuses[-1] == 429
    # While paused, even the right password is not checked: no oracle.
    paused = _post(h, page, "/account/password", current_password=PASSWORD,
                   new_password=NEW_PASSWORD, new_password_confirm=NEW_PASSWORD)
    assert paused.status_code == 429 and "retry-after" in paused.headers
    assert "Too many wrong passwords" in paused.text
    h.client.cookies.clear()
    h.clock.advance(900)
    _signed_in(_sign_in(h))


def test_a_user_without_a_password_sets_one_after_a_recent_sign_in(h: Harness) -> None:
    user = h.add_user()
    _signed_in(_sign_in(h))
    # The account becomes passkey-only (as the passkeys' own flow would leave it).
    h.run(h.store.set_password_hash(user.id, None))
    page = _page(h)
    assert "You have no password" in page
    assert "current_password" not in _form(page, "/account/password").fields
    h.clock.advance(h.services.settings.mfa_recent_auth_seconds + 1)
    stale = h.client.post("/account/password", data={
        **_form(page, "/account/password").fields, "new_password": NEW_PASSWORD,
        "new_password_confirm": NEW_PASSWORD}, follow_redirects=False)
    assert stale.status_code == 403 and "prompt=login" in stale.text
    assert h.run(h.store.get_credentials(user.id)).password_hash is None
    assert not _has_form(_page(h), "/account/password")

    # A new sign-in (with a passkey: here, a session made as it would make one).
    h.client.cookies.set("session", _other_session(h, user))
    _done(_post(h, _page(h), "/account/password", new_password=NEW_PASSWORD,
                new_password_confirm=NEW_PASSWORD), "password_set")
    h.client.cookies.clear()
    _signed_in(_sign_in(h, password=NEW_PASSWORD))


# --- TOTP on /account ------------------------------------------------------------------


def _set_up(h: Harness, **values: str) -> tuple[httpx.Response, str]:
    """Start a set-up from the account page; the set-up page and its secret."""
    started = _post(h, _page(h), "/account/totp/setup", **values)
    assert started.status_code == 303, started.text
    assert started.headers["location"] == "/account/totp"
    setup = h.client.get("/account/totp")
    assert setup.status_code == 200, setup.text
    found = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', setup.text)
    assert found is not None
    return setup, found.group(1).replace(" ", "")


def test_setting_up_totp_on_the_account_page(h: Harness) -> None:
    user = h.add_user()
    _signed_in(_sign_in(h))
    assert "You have not set up an authenticator app." in _page(h)
    setup, secret = _set_up(h)
    assert "<svg" in setup.text and 'class="qr"' in setup.text
    assert "otpauth://totp/" in setup.text and f"secret={secret}" in setup.text
    assert "default-src 'none'" in setup.headers["content-security-policy"]
    assert h.run(h.store.get_credentials(user.id)).totp_secret is None

    wrong = _post(h, setup.text, "/account/totp/confirm", code="000000")
    assert wrong.status_code == 400 and 'role="alert"' in wrong.text
    # Nothing lost: the same set-up is shown again.
    assert secret in wrong.text.replace(" ", "")
    confirmed = _post(h, wrong.text, "/account/totp/confirm",
                      code=pyotp.TOTP(secret).at(h.clock.now()))
    assert confirmed.status_code == 200, confirmed.text
    codes = _codes(confirmed.text)
    assert len(codes) == 10 and "Your authenticator app is set up." in confirmed.text
    assert h.totp_seed(user.id) == secret and _count(h, user) == 10
    # The set-up is over: its page is gone.
    _done(h.client.get("/account/totp", follow_redirects=False), "totp_setup_expired")
    page = _page(h)
    assert "An authenticator app gives you one-time codes" in page
    # The next sign-in asks for a code of it.
    h.client.cookies.clear()
    h.clock.advance(30)
    _signed_in(_sign_in(h, totp_secret=secret))


def test_replacing_totp_needs_a_code_of_the_current_app(h: Harness) -> None:
    user, _ = _user_with_totp(h)
    _signed_in(_sign_in(h, totp_secret=SECRET))
    refused = _post(h, _page(h), "/account/totp/setup", current_code="000000")
    assert refused.status_code == 400 and "is incorrect" in refused.text
    h.clock.advance(30)
    setup, secret = _set_up(h, current_code=pyotp.TOTP(SECRET).at(h.clock.now()))
    assert "your current app keeps working" in setup.text
    h.clock.advance(30)  # codes are claimed per user and step
    _done(_post(h, setup.text, "/account/totp/confirm",
                code=pyotp.TOTP(secret).at(h.clock.now())), "totp_replaced")
    assert h.totp_seed(user.id) == secret and _count(h, user) == 10


def test_removing_the_last_factor_clears_the_recovery_codes(h: Harness) -> None:
    user, codes = _user_with_totp(h)
    _signed_in(_sign_in(h, totp_secret=SECRET))
    page = _page(h)
    wrong = _post(h, page, "/account/totp/remove", code="000000")
    assert wrong.status_code == 400 and "Nothing was changed" in wrong.text
    assert h.totp_seed(user.id) == SECRET
    # A recovery code removes it too (the phone is lost).
    _done(_post(h, page, "/account/totp/remove", code=codes[0]), "totp_removed_codes_cleared")
    assert h.totp_seed(user.id) is None and _count(h, user) == 0
    page = _page(h)
    assert "You have not set up an authenticator app." in page
    assert "your recovery codes no longer work" in h.client.get(
        "/account?done=totp_removed_codes_cleared").text
    h.client.cookies.clear()
    _signed_in(_sign_in(h))


def test_removing_totp_with_a_code_of_it(h: Harness) -> None:
    user, _ = _user_with_totp(h)
    _signed_in(_sign_in(h, totp_secret=SECRET))
    h.clock.advance(30)
    _done(_post(h, _page(h), "/account/totp/remove",
                code=pyotp.TOTP(SECRET).at(h.clock.now())), "totp_removed_codes_cleared")
    assert h.totp_seed(user.id) is None
    assert h.events.named("totp_removed")[-1]["user_id"] == user.id


@pytest.mark.parametrize("action", ["/account/totp/setup", "/account/totp/remove"])
def test_totp_changes_need_a_recent_sign_in(h: Harness, action: str) -> None:
    user, _ = _user_with_totp(h)
    _signed_in(_sign_in(h, totp_secret=SECRET))
    page = _page(h)
    h.clock.advance(h.services.settings.mfa_recent_auth_seconds + 1)
    response = _post(h, page, action, current_code=pyotp.TOTP(SECRET).at(h.clock.now()),
                     code=pyotp.TOTP(SECRET).at(h.clock.now()))
    assert response.status_code == 403 and "prompt=login" in response.text
    assert h.totp_seed(user.id) == SECRET
    stale = _page(h)
    assert not _has_form(stale, action) and "To replace or remove it" in stale


# --- every form: CSRF, hostile input ---------------------------------------------------


_FORMS = {
    "/account/password": {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                          "new_password_confirm": NEW_PASSWORD},
    "/account/totp/setup": {"current_code": "000000"},
    "/account/totp/remove": {"code": "000000"},
    "/account/recovery-codes": {},
}


@pytest.mark.parametrize("action", sorted(_FORMS))
@pytest.mark.parametrize("token", [None, "wrong-token", "nul\x00token"])
def test_a_form_without_this_sessions_token_changes_nothing(
    h: Harness, action: str, token: str | None
) -> None:
    user, _ = _user_with_totp(h)
    _signed_in(_sign_in(h, totp_secret=SECRET))
    data: dict[str, Any] = dict(_FORMS[action])
    if token is not None:
        data["csrf_token"] = token
    response = h.client.post(action, data=data, follow_redirects=False)
    assert response.status_code == 403, response.text
    assert "nothing was changed" in response.text and "set-cookie" not in response.headers
    assert not _codes(response.text) and _count(h, user) == 10
    assert h.totp_seed(user.id) == SECRET
    h.client.cookies.clear()
    h.clock.advance(30)
    _signed_in(_sign_in(h, totp_secret=SECRET))


def test_the_confirmation_refuses_a_form_of_another_session(h: Harness) -> None:
    h.add_user()
    _signed_in(_sign_in(h))
    setup, secret = _set_up(h)
    form = _form(setup.text, "/account/totp/confirm")
    response = h.client.post("/account/totp/confirm", data={
        **form.fields, "csrf_token": "forged", "code": pyotp.TOTP(secret).at(h.clock.now())},
        follow_redirects=False)
    assert response.status_code == 403


@pytest.mark.parametrize(("action", "values"), [
    ("/account/password", {"current_password": "pass\x00word", "new_password": NEW_PASSWORD,
                           "new_password_confirm": NEW_PASSWORD}),
    ("/account/password", {"current_password": PASSWORD, "new_password": "new\x00password!",
                           "new_password_confirm": "new\x00password!"}),
    ("/account/totp/setup", {"current_code": "12\x003456"}),
    ("/account/totp/remove", {"code": "12\x003456"}),
    ("/account/totp/remove", {"code": "1" * 5000}),
])
def test_hostile_input_is_a_bad_request(h: Harness, action: str, values: dict[str, str]) -> None:
    user, _ = _user_with_totp(h)
    _signed_in(_sign_in(h, totp_secret=SECRET))
    response = _post(h, _page(h), action, **values) if _has_form(_page(h), action) else None
    assert response is not None
    assert response.status_code == 400, response.text
    assert 'role="alert"' in response.text
    for leaked in ("Traceback", "asyncpg", "sqlalchemy", "redis"):
        assert leaked not in response.text
    assert h.totp_seed(user.id) == SECRET and _count(h, user) == 10
    h.client.cookies.clear()
    h.clock.advance(30)
    _signed_in(_sign_in(h, totp_secret=SECRET))

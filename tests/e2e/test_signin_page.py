"""The plain sign-in page ``/signin?return_to=/local/path``: the sign-in steps without an
authorization request, then back to a page of this server; on each backend."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from tests.e2e.conftest import StoreBackend
from tests.e2e.signin_flow import (
    PASSWORD,
    Form,
    Harness,
    auth_params,
    harness,
    submit,
    visit,
)

SECRET = pyotp.random_base32()


@pytest.fixture
def h(store: StoreBackend, tmp_path: Path) -> Iterator[Harness]:
    with harness(tmp_path, backend=store) as running:
        yield running


def test_signing_in_opens_a_session_and_goes_back(h: Harness) -> None:
    user = h.add_user()
    page = h.client.get("/signin", params={"return_to": "/account?tab=sessions"})
    assert page.status_code == 200 and "<h1>Sign in</h1>" in page.text
    form = Form(page.text)
    assert form.action == "/signin" and form.autofocus == ["username"]
    assert '<label for="username">' in page.text and '<label for="password">' in page.text
    assert "cancel" not in form.buttons.get("action", [])
    response = submit(h.client, page, username="alice", password=PASSWORD)
    assert response.status_code == 303
    assert response.headers["location"] == "/account?tab=sessions"
    session = h.session()
    assert session is not None and session.user_id == user.id and session.clients == ()
    # The session is single sign-on's: an application gets its code without a form.
    assert visit(h, auth_params()).pages == []


def test_a_user_with_totp_gives_a_code_too(h: Harness) -> None:
    h.add_user(totp_secret=SECRET)
    page = h.client.get("/signin", params={"return_to": "/account"})
    second = submit(h.client, page, username="alice", password=PASSWORD)
    assert second.status_code == 200 and 'name="code"' in second.text
    assert Form(second.text).action == "/signin"
    done = submit(h.client, second, code=pyotp.TOTP(SECRET).at(h.clock.now()))
    assert done.status_code == 303 and done.headers["location"] == "/account"
    session = h.session()
    assert session is not None and session.mfa_verified


def test_a_wrong_password_stays_on_the_page_with_an_alert(h: Harness) -> None:
    h.add_user()
    page = h.client.get("/signin", params={"return_to": "/account"})
    response = submit(h.client, page, username="alice", password="wrong")
    assert response.status_code == 200 and 'role="alert"' in response.text
    assert h.session() is None
    # The cursor goes to the password field: it must describe the error too, or a screen
    # reader user who lands there never hears why.
    assert Form(response.text).autofocus == ["password"]
    assert re.search(r'<input type="password"[^>]* aria-describedby="form-error"', response.text)


def test_signed_in_already_goes_straight_back(h: Harness) -> None:
    h.add_user()
    visit(h, auth_params())
    response = h.client.get("/signin", params={"return_to": "/account"},
                            follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/account"


def test_without_return_to_it_goes_to_the_account_page(h: Harness) -> None:
    h.add_user()
    page = h.client.get("/signin")
    response = submit(h.client, page, username="alice", password=PASSWORD)
    assert response.headers["location"] == "/account"


@pytest.mark.parametrize("return_to", [
    "https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)",
    "account", "", "/a\r\nSet-Cookie: x=1", "/a b",
])
def test_a_return_to_that_is_not_a_local_path_is_refused(h: Harness, return_to: str) -> None:
    response = h.client.get("/signin", params={"return_to": return_to},
                            follow_redirects=False)
    assert response.status_code == 400 and "location" not in response.headers
    assert 'role="alert"' in response.text and "return_to" in response.text


def test_a_repeated_return_to_is_refused(h: Harness) -> None:
    response = h.client.get("/signin?return_to=/account&return_to=//evil.example",
                            follow_redirects=False)
    assert response.status_code == 400 and "location" not in response.headers


def test_prompt_login_asks_a_signed_in_user_again_and_renews_the_sign_in(h: Harness) -> None:
    user = h.add_user()
    page = h.client.get("/signin", params={"return_to": "/account"})
    submit(h.client, page, username="alice", password=PASSWORD)
    first = h.session()
    assert first is not None
    # Without prompt, a signed-in browser goes straight back.
    straight = h.client.get("/signin", params={"return_to": "/account"},
                            follow_redirects=False)
    assert straight.status_code == 303 and straight.headers["location"] == "/account"

    h.clock.advance(120)
    again = h.client.get("/signin", params={"return_to": "/account", "prompt": "login"})
    assert again.status_code == 200 and "please sign in again" in again.text
    assert Form(again.text).fields["username"] == "alice"
    done = submit(h.client, again, username="alice", password=PASSWORD)
    assert done.status_code == 303 and done.headers["location"] == "/account"
    renewed = h.session()
    assert renewed is not None and renewed.user_id == user.id
    # The same session (sid), signed in again: a later auth_time, a new cookie value.
    assert renewed.sid == first.sid and renewed.auth_time == first.auth_time + 120
    assert renewed.id_hash != first.id_hash


@pytest.mark.parametrize("prompt", [["none"], ["consent"], ["login", "login"]])
def test_prompt_is_only_login_on_the_plain_page(h: Harness, prompt: list[str]) -> None:
    response = h.client.get("/signin", params={"return_to": "/account", "prompt": prompt})
    assert response.status_code == 400 and "prompt may only be login" in response.text

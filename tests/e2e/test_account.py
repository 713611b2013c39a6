"""``/account``: the signed-in user's sessions and consents, signing out, withdrawing.

Sessions and consents are made directly in the app's store (tests/e2e/session_support.py),
as a sign-in would make them; tokens come from the code flow of the non-first-party
``basic`` client (tests/e2e/oauth_setup.py).
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from domain.entities import User
from domain.sessions import AMR_MFA, AMR_OTP, AMR_PASSWORD
from domain.tokens import hash_token
from tests.e2e.account_support import (
    add_grant,
    give_consent,
    on_loop,
    open_browser_session,
    services_of,
    session_of,
)
from tests.e2e.conftest import StoreBackend
from tests.e2e.oauth_setup import (
    CLIENTS_TOML,
    FORM,
    USER_ID,
    basic,
    build_app,
    exchange,
    introspect,
    running,
)

PRINTER = """
[[clients]]
client_id = "printer"
name = "Photo <Printer>"
secret = "printer-secret-0123456789abcdefghijklmn"
redirect_uris = ["https://printer.example.test/cb"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid", "profile", "email", "offline_access"]
"""
OTHER_USER = "user-77"


class Forms(HTMLParser):
    """Every form of a page: (action, hidden fields, button text)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._button: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action"), "method": a.get("method"),
                               "fields": {}, "button": ""})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        elif tag == "button" and self.forms:
            self._button = []

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            self.forms[-1]["button"] = "".join(self._button).strip()
            self._button = None

    def named(self, action: str, **fields: str) -> dict[str, Any]:
        found = [f for f in self.forms if f["action"] == action
                 and all(f["fields"].get(k) == v for k, v in fields.items())]
        assert len(found) == 1, (action, fields, self.forms)
        return found[0]


def _app(store: StoreBackend, tmp_path: Path) -> Litestar:
    path = tmp_path / "with-printer.toml"
    path.write_text(CLIENTS_TOML + PRINTER)
    return build_app(store, tmp_path, CLIENTS_FILE=str(path))


def _create_user(client: TestClient[Any], app: Litestar, user_id: str, name: str) -> None:
    store = services_of(app).store

    async def create() -> None:
        await store.create_user(User(id=user_id, user_name=name.lower(),
                                     display_name=f"{name} <Doe>"))

    on_loop(client, create)


def _page(client: TestClient[Any]) -> httpx.Response:
    response = client.get("/account")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response


def _post(client: TestClient[Any], form: dict[str, Any], **override: str) -> httpx.Response:
    data = {**form["fields"], **override}
    return client.post(form["action"], data=data, follow_redirects=False)


def _done(response: httpx.Response, done: str) -> None:
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/account?done={done}"
    assert response.headers["cache-control"] == "no-store"


def _grant_of(client: TestClient[Any], app: Litestar, access_token: str) -> str:
    services = services_of(app)

    async def read() -> str:
        record = await services.store.get_access_token(hash_token(access_token),
                                                       services.clock.now())
        assert record is not None and record.grant_id is not None
        return record.grant_id

    return on_loop(client, read)


def _refresh(client: TestClient[Any], refresh_token: str) -> httpx.Response:
    return client.post("/oauth/token", headers={**FORM, **basic()},
                       data={"grant_type": "refresh_token", "refresh_token": refresh_token})


def test_without_a_session_the_page_links_to_sign_in(
    store: StoreBackend, tmp_path: Path
) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        for cookie in (None, "ses_never-issued", "not-a-session-id"):
            if cookie is not None:
                client.cookies.set("session", cookie)
            page = _page(client)
            assert 'href="/signin?return_to=/account"' in page.text
            assert "/account/signout" not in page.text
            assert "default-src 'none'" in page.headers["content-security-policy"]


def test_the_page_shows_the_users_sessions_and_consents(
    store: StoreBackend, tmp_path: Path
) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        _create_user(client, app, USER_ID, "Alice")
        _, elsewhere = open_browser_session(
            client, app, USER_ID, amr=(AMR_PASSWORD, AMR_OTP, AMR_MFA), use=False)
        here_value, here = open_browser_session(client, app, USER_ID)
        add_grant(client, app, here_value, "printer", "gr_printer-1")
        give_consent(client, app, USER_ID, "printer", "openid email")
        _create_user(client, app, OTHER_USER, "Mallory")
        open_browser_session(client, app, OTHER_USER, use=False)
        give_consent(client, app, OTHER_USER, "basic", "openid")

        page = _page(client)
        text = page.text
        assert "Alice &lt;Doe&gt;" in text and "Alice <Doe>" not in text
        assert "Mallory" not in text
        # Both of Alice's sessions, this browser marked; the other user's is not shown.
        assert text.count("/account/sessions/end") == 2
        assert "This browser" in text and "Another browser or device" in text
        assert "password and one-time code" in text
        assert "Photo &lt;Printer&gt;" in text
        assert "Your email address (<code>email</code>)" in text
        forms = Forms(text)
        assert forms.named("/account/sessions/end", sid=here.sid)["button"] == (
            "Sign out of this browser")
        assert forms.named("/account/sessions/end", sid=elsewhere.sid)["button"] == (
            "Sign out of this session")
        withdraw = forms.named("/account/consents/withdraw", client_id="printer")
        assert withdraw["button"].startswith("Withdraw")
        assert forms.named("/account/signout")["method"] == "post"
        # No consent of the other user's can be withdrawn from here.
        assert all(f["fields"].get("client_id") != "basic" for f in forms.forms)


def test_signing_out_another_session_then_this_browser(
    store: StoreBackend, tmp_path: Path
) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        _create_user(client, app, USER_ID, "Alice")
        give_consent(client, app, USER_ID, "basic", "openid offline_access read")
        tokens = exchange(client, app)
        elsewhere_value, elsewhere = open_browser_session(client, app, USER_ID, use=False)
        here_value, _ = open_browser_session(client, app, USER_ID)
        add_grant(client, app, here_value, "basic",
                  _grant_of(client, app, tokens["access_token"]))

        forms = Forms(_page(client).text)
        response = _post(client, forms.named("/account/sessions/end", sid=elsewhere.sid))
        _done(response, "session_ended")
        assert session_of(client, app, elsewhere_value) is None
        assert session_of(client, app, here_value) is not None
        page = client.get(response.headers["location"])
        assert 'role="status"' in page.text and "That session is signed out" in page.text
        assert elsewhere.sid not in page.text

        response = _post(client, Forms(page.text).named("/account/signout"))
        _done(response, "signed_out")
        assert 'session=""' in response.headers["set-cookie"]
        assert "Max-Age=0" in response.headers["set-cookie"]
        assert session_of(client, app, here_value) is None
        # The grant issued in the session is revoked (basic keeps the default policy).
        assert introspect(client, tokens["access_token"]) == {"active": False}
        assert _refresh(client, tokens["refresh_token"]).json()["error"] == "invalid_grant"
        client.cookies.clear()
        page = client.get("/account?done=signed_out")
        assert "You are signed out of this browser." in page.text
        assert 'href="/signin?return_to=/account"' in page.text


def test_withdrawing_a_consent_revokes_that_clients_tokens_for_the_user(
    store: StoreBackend, tmp_path: Path
) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        _create_user(client, app, USER_ID, "Alice")
        consent = give_consent(client, app, USER_ID, "basic", "openid offline_access read")
        # One grant recorded under the consent (as the authorization endpoint records it),
        # one that is not: the withdrawal revokes the first, the refresh check stops the
        # second.
        recorded = exchange(client, app)
        unrecorded = exchange(client, app)
        services = services_of(app)
        grant_id = _grant_of(client, app, recorded["access_token"])

        async def record() -> bool:
            return await services.store.record_consent_grant(
                USER_ID, "basic", grant_id, services.clock.now() + 86400, services.clock.now())

        assert on_loop(client, record)
        open_browser_session(client, app, USER_ID)
        form = Forms(_page(client).text).named("/account/consents/withdraw", client_id="basic")
        response = _post(client, form)
        _done(response, "consent_withdrawn")
        assert "Access withdrawn." in client.get(response.headers["location"]).text

        assert introspect(client, recorded["access_token"]) == {"active": False}
        for tokens in (recorded, unrecorded):
            refused = _refresh(client, tokens["refresh_token"])
            assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
        assert introspect(client, unrecorded["access_token"]) == {"active": False}
        assert "/account/consents/withdraw" not in _page(client).text

        async def held() -> Any:
            return await services.store.get_consent(USER_ID, "basic")

        assert on_loop(client, held) is None and consent.scopes
        # Withdrawing again finds nothing, and says so.
        _done(_post(client, form), "consent_gone")


@pytest.mark.parametrize("token", [None, "", "wrong-token", "nul\x00token", "other-session"])
@pytest.mark.parametrize("action", ["signout", "end", "withdraw"])
def test_a_form_without_this_sessions_token_changes_nothing(
    store: StoreBackend, tmp_path: Path, action: str, token: str | None
) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        _create_user(client, app, USER_ID, "Alice")
        give_consent(client, app, USER_ID, "printer", "openid")
        elsewhere_value, elsewhere = open_browser_session(client, app, USER_ID, use=False)
        other_page_token = ""
        if token == "other-session":
            # A genuine token, but of another session of the same user.
            open_browser_session(client, app, USER_ID)
            other_page_token = Forms(_page(client).text).named("/account/signout")[
                "fields"]["csrf_token"]
        here_value, _ = open_browser_session(client, app, USER_ID)
        forms = Forms(_page(client).text)
        form = {
            "signout": forms.named("/account/signout"),
            "end": forms.named("/account/sessions/end", sid=elsewhere.sid),
            "withdraw": forms.named("/account/consents/withdraw", client_id="printer"),
        }[action]
        data = dict(form["fields"])
        if token is None:
            del data["csrf_token"]
        else:
            data["csrf_token"] = other_page_token if token == "other-session" else token
        response = client.post(form["action"], data=data, follow_redirects=False)
        assert response.status_code == 403, response.text
        assert 'role="alert"' in response.text and "nothing was changed" in response.text
        assert response.headers["cache-control"] == "no-store"
        assert "set-cookie" not in response.headers
        assert session_of(client, app, here_value) is not None
        assert session_of(client, app, elsewhere_value) is not None
        assert "/account/consents/withdraw" in _page(client).text


def test_another_users_session_cannot_be_ended(store: StoreBackend, tmp_path: Path) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        _create_user(client, app, USER_ID, "Alice")
        _create_user(client, app, OTHER_USER, "Mallory")
        theirs_value, theirs = open_browser_session(client, app, OTHER_USER, use=False)
        give_consent(client, app, OTHER_USER, "printer", "openid")
        open_browser_session(client, app, USER_ID)
        form = Forms(_page(client).text).named("/account/signout")
        _done(_post(client, {**form, "action": "/account/sessions/end"}, sid=theirs.sid),
              "session_gone")
        assert session_of(client, app, theirs_value) is not None
        _done(_post(client, {**form, "action": "/account/consents/withdraw"},
                    client_id="printer"), "consent_gone")

        async def held() -> Any:
            return await services_of(app).store.get_consent(OTHER_USER, "printer")

        assert on_loop(client, held) is not None


@pytest.mark.parametrize(("action", "field", "value"), [
    ("/account/sessions/end", "sid", "sid_abc\x00def"),
    ("/account/sessions/end", "sid", "sid_" + "a" * 5000),
    ("/account/sessions/end", "sid", "not-a-sid"),
    ("/account/consents/withdraw", "client_id", "printer\x00"),
    ("/account/consents/withdraw", "client_id", "p" * 5000),
    ("/account/consents/withdraw", "client_id", ""),
])
def test_hostile_input_is_a_bad_request(
    store: StoreBackend, tmp_path: Path, action: str, field: str, value: str
) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        _create_user(client, app, USER_ID, "Alice")
        give_consent(client, app, USER_ID, "printer", "openid")
        here_value, _ = open_browser_session(client, app, USER_ID)
        form = Forms(_page(client).text).named("/account/signout")
        response = _post(client, {**form, "action": action}, **{field: value})
        assert response.status_code == 400, response.text
        assert 'role="alert"' in response.text
        for leaked in ("Traceback", "asyncpg", "sqlalchemy", "redis"):
            assert leaked not in response.text
        assert session_of(client, app, here_value) is not None
        assert "/account/consents/withdraw" in _page(client).text


def test_a_form_posted_after_the_session_ended_changes_nothing(
    store: StoreBackend, tmp_path: Path
) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        _create_user(client, app, USER_ID, "Alice")
        give_consent(client, app, USER_ID, "printer", "openid")
        here_value, _ = open_browser_session(client, app, USER_ID)
        forms = Forms(_page(client).text)
        _done(_post(client, forms.named("/account/signout")), "signed_out")
        # The browser kept the ended session's cookie (or replays the form without one).
        client.cookies.set("session", here_value)
        withdraw = forms.named("/account/consents/withdraw", client_id="printer")
        _done(_post(client, withdraw), "no_session")
        client.cookies.clear()
        _done(_post(client, withdraw), "no_session")

        async def held() -> Any:
            return await services_of(app).store.get_consent(USER_ID, "printer")

        assert on_loop(client, held) is not None

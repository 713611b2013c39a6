"""Passkeys end to end: registered on ``/account``, signing in alone (discoverable, through
``/signin`` and ``/oauth/authorize``) or as the second factor after a password, renamed and
removed, and every way a response is refused (a replay, another site, another user's
passkey, a counter that went back, garbage).

The browser's part is played by :class:`SoftwareAuthenticator`
(tests/e2e/passkey_authenticator.py): it reads the WebAuthn options the page carries for
``/static/passkeys.js`` (``data-passkey-options``) and the test posts its answer in the
form's ``passkey_response`` field, as the script does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from domain.entities import User
from domain.sessions import AMR_HWK, AMR_MFA, AMR_PASSWORD, AMR_SWK
from tests.e2e.account_support import open_browser_session
from tests.e2e.passkey_authenticator import SoftwareAuthenticator
from tests.e2e.signin_flow import (
    PASSWORD,
    SECURE_ID,
    SECURE_REDIRECT,
    Harness,
    auth_params,
    exchange,
    harness,
    pkce_pair,
    redirect_params,
    submit,
)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with harness(tmp_path) as running:
        yield running


class PageForms(HTMLParser):
    """The forms of a page by id: their attributes and named inputs."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, Any]] = {}
        self._current: dict[str, Any] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = {"attrs": a, "fields": {}}
            self.forms[a.get("id") or f"form-{len(self.forms)}"] = self._current
        elif tag == "input" and self._current is not None and a.get("name"):
            self._current["fields"][a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def passkey_form(page: httpx.Response, form_id: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The action, fields and WebAuthn options of the page's passkey form ``form_id``."""
    forms = PageForms(page.text).forms
    assert form_id in forms, (page.status_code, page.text)
    form = forms[form_id]
    return (form["attrs"]["action"], dict(form["fields"]),
            json.loads(form["attrs"]["data-passkey-options"]))


def post_passkey(h: Harness, page: httpx.Response, form_id: str, response: str,
                 **extra: str) -> httpx.Response:
    action, fields, _ = passkey_form(page, form_id)
    return h.client.post(action, data={**fields, "passkey_response": response, **extra},
                         follow_redirects=False)


def claims_of(h: Harness, id_token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(h.client.get("/jwks.json").json())
    claims: dict[str, Any] = jwt.decode(id_token, keys, algorithms=["RS256"]).claims
    return claims


def signed_in(h: Harness, user: User) -> None:
    """The browser holds a fresh session of ``user`` (a recent password sign-in)."""
    open_browser_session(h.client, h.client.app, user.id)


def register(h: Harness, authenticator: SoftwareAuthenticator, name: str = "Laptop",
             **create: Any) -> httpx.Response:
    """Add a passkey on the account page (the browser is signed in recently)."""
    page = h.client.get("/account/passkeys/new", follow_redirects=False)
    assert page.status_code == 200, page.text
    _, _, options = passkey_form(page, "passkey-register-form")
    return post_passkey(h, page, "passkey-register-form",
                        authenticator.create(options, **create), name=name)


def user_with_passkey(h: Harness, authenticator: SoftwareAuthenticator,
                      user_name: str = "alice", **add: Any) -> User:
    """A user who registered a passkey with ``authenticator``, then signed out."""
    user = h.add_user(user_name, email=f"{user_name}@example.test", **add)
    signed_in(h, user)
    added = register(h, authenticator)
    assert added.status_code in (200, 303), added.text
    h.client.cookies.clear()
    return user


def passkey_signin_page(h: Harness, **params: str) -> httpx.Response:
    page = h.client.get("/oauth/authorize", params=auth_params(**params),
                        follow_redirects=False)
    assert page.status_code == 200, page.text
    return page


# Registration ---------------------------------------------------------------------------


def test_a_passkey_is_added_on_the_account_page_with_recovery_codes_the_first_time(
        h: Harness) -> None:
    user = h.add_user()
    signed_in(h, user)
    account = h.client.get("/account")
    assert 'id="passkey-add-link"' in account.text and "You have no passkeys." in account.text
    page = h.client.get("/account/passkeys/new")
    assert page.headers["content-security-policy"].startswith(
        "default-src 'none'; script-src 'self';")
    _, _, options = passkey_form(page, "passkey-register-form")
    assert options["rp"]["id"] == "auth.test"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["excludeCredentials"] == []
    authenticator = SoftwareAuthenticator(synced=True)
    added = post_passkey(h, page, "passkey-register-form", authenticator.create(options),
                         name="  Work   laptop ")
    # The first second factor: recovery codes, shown once.
    assert added.status_code == 200 and "Save your recovery codes" in added.text
    assert "Passkey “Work laptop” added." in added.text
    assert h.run(h.store.count_recovery_codes(user.id)) == 10
    [stored] = h.run(h.store.list_passkeys(user.id))
    assert (stored.name, stored.synced, stored.user_id) == ("Work laptop", True, user.id)
    assert stored.credential_id == authenticator.credentials[0].id
    assert stored.transports == ("internal", "hybrid")
    assert h.events.named("passkey_registered")[0]["synced"] is True
    listed = h.client.get("/account")
    assert "Work laptop" in listed.text and "Synced passkey" in listed.text

    # A second one: no new codes, and the first is excluded from the options.
    h.clock.advance(1)
    page = h.client.get("/account/passkeys/new")
    _, _, options = passkey_form(page, "passkey-register-form")
    assert [d["id"] for d in options["excludeCredentials"]] == [stored.credential_id]
    second = post_passkey(h, page, "passkey-register-form",
                          SoftwareAuthenticator().create(options), name="Key")
    assert second.status_code == 303
    assert second.headers["location"] == "/account?done=passkey_added"
    assert [p.synced for p in h.run(h.store.list_passkeys(user.id))] == [True, False]


def test_adding_a_passkey_needs_a_recent_sign_in(h: Harness) -> None:
    user = h.add_user()
    signed_in(h, user)
    page = h.client.get("/account/passkeys/new")
    h.clock.advance(h.services.settings.mfa_recent_auth_seconds + 1)
    again = h.client.get("/account/passkeys/new", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == (
        "/signin?return_to=/account/passkeys/new&prompt=login")
    # The page opened before is no good any more either.
    _, _, options = passkey_form(page, "passkey-register-form")
    late = post_passkey(h, page, "passkey-register-form",
                        SoftwareAuthenticator().create(options), name="Laptop")
    assert late.status_code == 303 and "prompt=login" in late.headers["location"]
    assert h.run(h.store.list_passkeys(user.id)) == []
    h.client.cookies.clear()
    signed_out = h.client.get("/account/passkeys/new", follow_redirects=False)
    assert signed_out.headers["location"] == "/signin?return_to=/account/passkeys/new"


def test_a_registration_is_refused_from_another_origin_or_twice(h: Harness) -> None:
    user = h.add_user()
    signed_in(h, user)
    page = h.client.get("/account/passkeys/new")
    _, _, options = passkey_form(page, "passkey-register-form")
    phished = post_passkey(h, page, "passkey-register-form", SoftwareAuthenticator(
        origin="https://auth.test.evil.example").create(options), name="Laptop")
    assert phished.status_code == 400 and "could not be verified" in phished.text
    page = h.client.get("/account/passkeys/new")
    _, _, options = passkey_form(page, "passkey-register-form")
    response = SoftwareAuthenticator().create(options)
    assert post_passkey(h, page, "passkey-register-form", response,
                        name="Laptop").status_code == 200
    # The same answer again (the cookie of that page kept): its challenge is spent.
    action, fields, _ = passkey_form(page, "passkey-register-form")
    h.client.cookies.set("passkey_registration", page.cookies["passkey_registration"])
    replay = h.client.post(action, data={**fields, "passkey_response": response,
                                         "name": "Again"}, follow_redirects=False)
    assert replay.status_code == 400 and "already used" in replay.text
    assert len(h.run(h.store.list_passkeys(user.id))) == 1


@pytest.mark.parametrize("response, name", [
    ("{not json", "Laptop"), ("[]", "Laptop"), ('{"id": "x"}', "Laptop"), ("", "Laptop"),
    ("{}", ""), ("{}", "x" * 65), ("{}", "bad\x00name"),
])
def test_bad_registration_input_is_a_clear_400(h: Harness, response: str, name: str) -> None:
    user = h.add_user()
    signed_in(h, user)
    page = h.client.get("/account/passkeys/new")
    answer = post_passkey(h, page, "passkey-register-form", response, name=name)
    assert answer.status_code == 400, answer.text
    assert 'role="alert"' in answer.text and "Traceback" not in answer.text
    assert h.run(h.store.list_passkeys(user.id)) == []


def test_a_registration_page_is_bound_to_its_session(h: Harness) -> None:
    alice, bob = h.add_user("alice"), h.add_user("bob", email="bob@example.test")
    signed_in(h, alice)
    page = h.client.get("/account/passkeys/new")
    _, _, options = passkey_form(page, "passkey-register-form")
    signed_in(h, bob)  # another session in the same browser, the page's cookie kept
    token = _account_form(h, "/account/signout")["csrf_token"]
    answer = post_passkey(h, page, "passkey-register-form",
                          SoftwareAuthenticator().create(options), name="Laptop",
                          csrf_token=token)
    assert answer.status_code == 400 and "expired" in answer.text
    assert h.run(h.store.list_passkeys(bob.id)) == []


# Sign-in with a passkey alone --------------------------------------------------------------


@pytest.mark.parametrize("synced, method", [(True, AMR_SWK), (False, AMR_HWK)])
def test_a_passkey_alone_signs_in_to_an_application_as_two_factors(
        h: Harness, synced: bool, method: str) -> None:
    authenticator = SoftwareAuthenticator(synced=synced)
    user = user_with_passkey(h, authenticator)
    verifier, challenge = pkce_pair()
    page = passkey_signin_page(h, code_challenge=challenge, acr_values="mfa")
    _, _, options = passkey_form(page, "passkey-signin-form")
    # Discoverable: no user name typed, any of the site's passkeys, the user verified.
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    assert options["rpId"] == "auth.test"
    answer = post_passkey(h, page, "passkey-signin-form", authenticator.get(options))
    params = redirect_params(answer)
    token = exchange(h, params["code"], verifier)
    assert token.status_code == 200, token.text
    claims = claims_of(h, token.json()["id_token"])
    assert claims["sub"] == user.id
    assert claims["amr"] == [method, AMR_MFA] and claims["acr"] == "mfa"
    session = h.session()
    assert session is not None and session.mfa_verified and session.user_id == user.id
    [stored] = h.run(h.store.list_passkeys(user.id))
    assert stored.last_used_at == h.clock.now() and stored.sign_count == 1
    assert h.events.named("signin_succeeded")[-1] == {"user_id": user.id, "amr": method}


def test_a_passkey_sign_in_satisfies_a_client_that_requires_mfa(h: Harness) -> None:
    authenticator = SoftwareAuthenticator()
    user_with_passkey(h, authenticator)
    verifier, challenge = pkce_pair()
    page = passkey_signin_page(h, client_id=SECURE_ID, redirect_uri=SECURE_REDIRECT,
                               scope="openid", code_challenge=challenge)
    _, _, options = passkey_form(page, "passkey-signin-form")
    answer = post_passkey(h, page, "passkey-signin-form", authenticator.get(options))
    # No second-factor page: the passkey was both factors.
    params = redirect_params(answer)
    assert answer.headers["location"].startswith(SECURE_REDIRECT)
    token = exchange(h, params["code"], verifier, client_id=SECURE_ID,
                     redirect_uri=SECURE_REDIRECT)
    assert claims_of(h, token.json()["id_token"])["amr"] == [AMR_HWK, AMR_MFA]


def test_the_plain_sign_in_page_signs_in_with_a_passkey_and_renews_a_sign_in(
        h: Harness) -> None:
    authenticator = SoftwareAuthenticator()
    user = user_with_passkey(h, authenticator)
    page = h.client.get("/signin?return_to=/account")
    assert 'id="passkey-signin-button"' in page.text
    _, _, options = passkey_form(page, "passkey-signin-form")
    answer = post_passkey(h, page, "passkey-signin-form", authenticator.get(options))
    assert answer.status_code == 303 and answer.headers["location"] == "/account"
    first = h.session()
    assert first is not None and first.amr == (AMR_HWK, AMR_MFA)
    # Later, /account asks for a recent sign-in: the passkey renews it too.
    h.clock.advance(3600)
    page = h.client.get("/signin?return_to=/account/passkeys/new&prompt=login")
    _, _, options = passkey_form(page, "passkey-signin-form")
    answer = post_passkey(h, page, "passkey-signin-form", authenticator.get(options))
    assert answer.headers["location"] == "/account/passkeys/new"
    renewed = h.session()
    assert renewed is not None and renewed.user_id == user.id
    assert renewed.auth_time == h.clock.now()
    assert h.client.get("/account/passkeys/new").status_code == 200


# The second factor after a password -------------------------------------------------------


def test_a_passkey_is_the_second_factor_after_the_password(h: Harness) -> None:
    authenticator = SoftwareAuthenticator(synced=True)
    user = user_with_passkey(h, authenticator)
    verifier, challenge = pkce_pair()
    page = passkey_signin_page(h, code_challenge=challenge)
    second = submit(h.client, page, username="alice", password=PASSWORD)
    assert second.status_code == 200 and "Use your passkey" in second.text
    assert 'name="code"' not in second.text  # no TOTP: the user has none
    assert 'id="recovery_code"' in second.text
    _, _, options = passkey_form(second, "passkey-verify-form")
    [stored] = h.run(h.store.list_passkeys(user.id))
    assert [d["id"] for d in options["allowCredentials"]] == [stored.credential_id]
    assert options["allowCredentials"][0]["transports"] == ["internal", "hybrid"]
    assert options["userVerification"] == "preferred"
    answer = post_passkey(h, second, "passkey-verify-form",
                          authenticator.get(options, user_verified=False))
    token = exchange(h, redirect_params(answer)["code"], verifier)
    claims = claims_of(h, token.json()["id_token"])
    assert claims["amr"] == [AMR_PASSWORD, AMR_SWK, AMR_MFA] and claims["acr"] == "mfa"


def test_a_passkey_answers_the_step_up_of_a_password_session(h: Harness) -> None:
    authenticator = SoftwareAuthenticator()
    user = user_with_passkey(h, authenticator)
    open_browser_session(h.client, h.client.app, user.id)  # a password-only session
    verifier, challenge = pkce_pair()
    page = h.client.get("/oauth/authorize", params=auth_params(
        acr_values="mfa", code_challenge=challenge), follow_redirects=False)
    assert page.status_code == 200 and "asks for a second verification step" in page.text
    _, _, options = passkey_form(page, "passkey-verify-form")
    answer = post_passkey(h, page, "passkey-verify-form", authenticator.get(options))
    token = exchange(h, redirect_params(answer)["code"], verifier)
    assert claims_of(h, token.json()["id_token"])["amr"] == [AMR_PASSWORD, AMR_HWK, AMR_MFA]
    [renewed] = h.events.named("session_reauthenticated")
    assert renewed["amr"] == "pwd hwk mfa"


def test_another_users_passkey_is_no_second_factor(h: Harness) -> None:
    alices, bobs = SoftwareAuthenticator(), SoftwareAuthenticator()
    user_with_passkey(h, alices, "alice")
    user_with_passkey(h, bobs, "bob")
    page = passkey_signin_page(h)
    second = submit(h.client, page, username="alice", password=PASSWORD)
    _, _, options = passkey_form(second, "passkey-verify-form")
    answer = post_passkey(h, second, "passkey-verify-form",
                          bobs.get(options, credential=bobs.credentials[0]))
    assert answer.status_code == 400 and "belongs to another account" in answer.text
    assert h.session() is None
    # The page is shown again, with a fresh challenge, and alice's own passkey works.
    _, _, retry = passkey_form(answer, "passkey-verify-form")
    assert retry["challenge"] != options["challenge"]
    assert "code" in redirect_params(post_passkey(h, answer, "passkey-verify-form",
                                                  alices.get(retry)))


# Refusals ----------------------------------------------------------------------------------


def test_a_counter_that_goes_back_is_refused_and_logged(h: Harness) -> None:
    authenticator = SoftwareAuthenticator()
    user = user_with_passkey(h, authenticator)
    page = passkey_signin_page(h)
    _, _, options = passkey_form(page, "passkey-signin-form")
    assert post_passkey(h, page, "passkey-signin-form",
                        authenticator.get(options, sign_count=5)).status_code == 303
    h.client.cookies.clear()
    page = passkey_signin_page(h)
    _, _, options = passkey_form(page, "passkey-signin-form")
    # A clone of the authenticator, made when its counter was at 3.
    cloned = post_passkey(h, page, "passkey-signin-form",
                          authenticator.get(options, sign_count=3))
    assert cloned.status_code == 400 and "may have been copied" in cloned.text
    assert h.session() is None
    [event] = h.events.named("passkey_sign_count_regressed")
    assert (event["user_id"], event["stored"], event["received"]) == (user.id, 5, 3)
    assert h.run(h.store.list_passkeys(user.id))[0].sign_count == 5


def test_a_replayed_response_is_refused_its_challenge_is_single_use(h: Harness) -> None:
    # No counter (as most synced passkeys): only the challenge stops a replay.
    authenticator = SoftwareAuthenticator(synced=True, counter=False)
    user_with_passkey(h, authenticator)
    page = h.client.get("/signin?return_to=/account")
    _, _, options = passkey_form(page, "passkey-signin-form")
    response = authenticator.get(options)
    transaction = page.cookies["signin"]
    assert post_passkey(h, page, "passkey-signin-form", response).status_code == 303
    # An attacker who captured the whole request (cookie and form) sends it again.
    h.client.cookies.clear()
    h.client.cookies.set("signin", transaction)
    replay = post_passkey(h, page, "passkey-signin-form", response)
    assert replay.status_code == 400 and "already used" in replay.text
    assert h.session() is None
    assert h.events.named("signin_failed")[-1]["reason"] == "passkey_replayed"


@pytest.mark.parametrize("knob", [{"origin": "http://evil.test"}, {"rp_id": "evil.test"},
                                  {"user_verified": False}])
def test_a_response_for_another_site_or_without_user_verification_is_refused(
        h: Harness, knob: dict[str, Any]) -> None:
    authenticator = SoftwareAuthenticator()
    user_with_passkey(h, authenticator)
    page = passkey_signin_page(h)
    _, _, options = passkey_form(page, "passkey-signin-form")
    answer = post_passkey(h, page, "passkey-signin-form", authenticator.get(options, **knob))
    assert answer.status_code == 400 and "could not be verified" in answer.text
    assert h.session() is None
    assert h.events.named("signin_failed")[-1]["reason"] == "passkey_not_verified"


def test_a_user_handle_of_another_user_is_refused(h: Harness) -> None:
    authenticator = SoftwareAuthenticator()
    user_with_passkey(h, authenticator, "alice")
    bob = h.add_user("bob", email="bob@example.test")
    page = passkey_signin_page(h)
    _, _, options = passkey_form(page, "passkey-signin-form")
    answer = post_passkey(h, page, "passkey-signin-form",
                          authenticator.get(options, user_handle=bob.id.encode()))
    assert answer.status_code == 400 and "belongs to another account" in answer.text
    assert h.session() is None


def test_an_inactive_user_or_a_removed_passkey_signs_in_no_more(h: Harness) -> None:
    authenticator = SoftwareAuthenticator()
    user = user_with_passkey(h, authenticator)
    [stored] = h.run(h.store.list_passkeys(user.id))
    h.run(h.store.replace_user(msgspec.structs.replace(user, active=False)))
    page = passkey_signin_page(h)
    _, _, options = passkey_form(page, "passkey-signin-form")
    answer = post_passkey(h, page, "passkey-signin-form", authenticator.get(options))
    assert answer.status_code == 400 and "disabled" in answer.text
    h.run(h.store.remove_passkey(user.id, stored.credential_id))
    _, _, options = passkey_form(answer, "passkey-signin-form")
    gone = post_passkey(h, answer, "passkey-signin-form", authenticator.get(options))
    assert gone.status_code == 400 and "not registered here" in gone.text


@pytest.mark.parametrize("response", [
    "{", "null", '{"id": 1}', '{"id": "a", "rawId": "b", "type": "public-key", "response": {}}',
    json.dumps({"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {
        "clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA",
        "userHandle": "!!"}}),
    "x" * 70_000,
])
def test_malformed_responses_are_a_clear_400(h: Harness, response: str) -> None:
    authenticator = SoftwareAuthenticator()
    user_with_passkey(h, authenticator)
    page = passkey_signin_page(h)
    answer = post_passkey(h, page, "passkey-signin-form", response)
    assert answer.status_code == 400, answer.text
    assert 'role="alert"' in answer.text and "Traceback" not in answer.text
    assert h.session() is None


def test_the_page_script_is_served_and_the_pages_allow_only_it(h: Harness) -> None:
    script = h.client.get("/static/passkeys.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "navigator.credentials.get" in script.text
    page = passkey_signin_page(h)
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy.split(
        "style-src")[0]
    # The account page itself runs no script.
    user = h.add_user()
    signed_in(h, user)
    assert "script-src" not in h.client.get("/account").headers["content-security-policy"]


# Managing passkeys -------------------------------------------------------------------------


def _account_form(h: Harness, action: str, index: int = 0) -> dict[str, str]:
    forms = [f for f in PageForms(h.client.get("/account").text).forms.values()
             if f["attrs"].get("action") == action]
    fields: dict[str, str] = forms[index]["fields"]
    return fields


def test_a_passkey_is_renamed_and_removed_on_the_account_page(h: Harness) -> None:
    authenticator = SoftwareAuthenticator()
    user = h.add_user()
    signed_in(h, user)
    register(h, authenticator, name="Laptop")
    fields = _account_form(h, "/account/passkeys/rename")
    renamed = h.client.post("/account/passkeys/rename", data={**fields, "name": "Old laptop"},
                            follow_redirects=False)
    assert renamed.headers["location"] == "/account?done=passkey_renamed"
    assert h.run(h.store.list_passkeys(user.id))[0].name == "Old laptop"
    bad = h.client.post("/account/passkeys/rename", data={**fields, "name": " "})
    assert bad.status_code == 400
    fields = _account_form(h, "/account/passkeys/remove")
    # Removing needs a recent sign-in.
    h.clock.advance(h.services.settings.mfa_recent_auth_seconds + 1)
    stale = h.client.post("/account/passkeys/remove", data=fields, follow_redirects=False)
    assert stale.status_code == 303 and "prompt=login" in stale.headers["location"]
    signed_in(h, user)  # a new session: its own form token
    fields = _account_form(h, "/account/passkeys/remove")
    removed = h.client.post("/account/passkeys/remove", data=fields, follow_redirects=False)
    assert removed.headers["location"] == "/account?done=passkey_removed"
    assert h.run(h.store.list_passkeys(user.id)) == []
    assert h.events.named("passkey_removed")[0]["user_id"] == user.id
    again = h.client.post("/account/passkeys/remove", data=fields, follow_redirects=False)
    assert again.status_code == 303, again.text
    assert again.headers["location"] == "/account?done=passkey_gone"


def test_another_users_passkey_cannot_be_renamed_or_removed(h: Harness) -> None:
    bobs = SoftwareAuthenticator()
    bob = user_with_passkey(h, bobs, "bob")
    [stored] = h.run(h.store.list_passkeys(bob.id))
    alice = h.add_user("alice")
    signed_in(h, alice)
    token = _account_form(h, "/account/signout")["csrf_token"]
    for action in ("/account/passkeys/rename", "/account/passkeys/remove"):
        answer = h.client.post(action, data={"csrf_token": token, "name": "Mine",
                                             "credential_id": stored.credential_id},
                               follow_redirects=False)
        assert answer.headers["location"] == "/account?done=passkey_gone"
    assert h.run(h.store.list_passkeys(bob.id)) == [stored]
    forged = h.client.post("/account/passkeys/remove", data={
        "csrf_token": "forged", "credential_id": stored.credential_id})
    assert forged.status_code == 403


def test_the_only_passkey_of_a_user_without_a_password_stays(h: Harness) -> None:
    authenticator = SoftwareAuthenticator()
    user = h.add_user(password=None)
    signed_in(h, user)
    register(h, authenticator)
    fields = _account_form(h, "/account/passkeys/remove")
    answer = h.client.post("/account/passkeys/remove", data=fields)
    assert answer.status_code == 409 and "only way to sign in" in answer.text
    assert len(h.run(h.store.list_passkeys(user.id))) == 1

"""Single sign-on at ``/oauth/authorize``: the session after a sign-in, and the OpenID
Connect parameters that steer it (``prompt``, ``max_age``, ``id_token_hint``,
``login_hint``, ``acr_values``), on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pyotp
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from adapters.jose_signer import JoseSigner
from domain.mfa import seal_factor
from domain.sessions import hash_session_id
from domain.tokens import hash_token
from tests.e2e.conftest import StoreBackend
from tests.e2e.signin_flow import (
    CONFIDENTIAL_ID,
    CONFIDENTIAL_REDIRECT,
    CONFIDENTIAL_SECRET,
    ISSUER,
    PARTNER_ID,
    PARTNER_REDIRECT,
    PASSWORD,
    PUBLIC_REDIRECT,
    SECURE_ID,
    SECURE_REDIRECT,
    Form,
    Harness,
    Visit,
    auth_params,
    exchange,
    harness,
    pkce_pair,
    redirect_params,
    submit,
    visit,
)

SECRET = pyotp.random_base32()


@pytest.fixture
def h(store: StoreBackend, tmp_path: Path) -> Iterator[Harness]:
    with harness(tmp_path, backend=store) as running:
        yield running


def _claims(h: Harness, id_token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(h.client.get("/jwks.json").json())
    claims: dict[str, Any] = jwt.decode(id_token, keys, algorithms=["RS256"]).claims
    return claims


def _tokens(h: Harness, **overrides: str | None) -> tuple[Visit, dict[str, Any]]:
    """An authorization of the public client (signing in only if asked), exchanged."""
    verifier, challenge = pkce_pair()
    seen = visit(h, auth_params(code_challenge=challenge, **overrides), totp_secret=SECRET)
    response = exchange(h, seen.params["code"], verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return seen, body


def _web_code(h: Harness, **overrides: str | None) -> Visit:
    return visit(h, auth_params(client_id=CONFIDENTIAL_ID, redirect_uri=CONFIDENTIAL_REDIRECT,
                                code_challenge=None, code_challenge_method=None, **overrides))


def test_a_second_application_gets_its_code_without_a_password_form(h: Harness) -> None:
    user = h.add_user()
    first, first_tokens = _tokens(h)
    assert first.pages == ["password"]
    session = h.session()
    assert session is not None and session.user_id == user.id
    cookie = first.response.headers["set-cookie"].lower()
    assert "session=ses_" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "session_started" in h.events.names()

    second = _web_code(h)
    assert second.pages == [] and not second.password_form_shown
    params = second.params
    assert params["state"] == "st-123" and params["iss"] == ISSUER
    token = h.client.post("/oauth/token", auth=(CONFIDENTIAL_ID, CONFIDENTIAL_SECRET), data={
        "grant_type": "authorization_code", "code": params["code"],
        "redirect_uri": CONFIDENTIAL_REDIRECT})
    assert token.status_code == 200, token.text
    claims = _claims(h, token.json()["id_token"])
    # One session, one sign-in: the same sid and auth_time in both applications' ID tokens.
    first_claims = _claims(h, first_tokens["id_token"])
    assert claims["sub"] == user.id and claims["sid"] == first_claims["sid"] == session.sid
    assert claims["auth_time"] == first_claims["auth_time"] == session.auth_time

    # The same application again: no form either, and both clients are in the session.
    again = visit(h, auth_params())
    assert again.pages == [] and "code" in again.params
    ended = h.session()
    assert ended is not None and set(ended.clients) == {"spa", CONFIDENTIAL_ID}


def test_the_sid_of_the_id_token_is_the_sessions(h: Harness) -> None:
    h.add_user()
    _, tokens = _tokens(h)
    session = h.session()
    assert session is not None
    claims = _claims(h, tokens["id_token"])
    assert claims["sid"] == session.sid and claims["sid"].startswith("sid_")
    assert claims["amr"] == ["pwd"] and claims["acr"] == "pwd"


def test_a_session_that_proved_totp_gives_mfa_codes_without_asking_again(h: Harness) -> None:
    h.add_user(totp_secret=SECRET)
    first, _ = _tokens(h)
    assert first.pages == ["password", "totp"]
    second, tokens = _tokens(h)
    assert second.pages == []
    claims = _claims(h, tokens["id_token"])
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == "mfa"
    services = h.services
    record = h.run(services.store.get_access_token(hash_token(tokens["access_token"]),
                                                   services.clock.now()))
    assert record is not None and record.mfa_verified


def test_prompt_none_answers_from_the_session(h: Harness) -> None:
    h.add_user()
    visit(h, auth_params())
    silent = visit(h, auth_params(prompt="none"))
    assert silent.pages == [] and "code" in silent.params


@pytest.mark.parametrize("case", ["no_session", "max_age", "id_token_hint"])
def test_prompt_none_without_a_usable_session_is_login_required(h: Harness, case: str) -> None:
    other = h.add_user("bob", email="bob@example.test")
    h.add_user()
    extra: dict[str, str] = {}
    if case != "no_session":
        _tokens(h)
        h.clock.advance(120)
        if case == "max_age":
            extra["max_age"] = "60"
        else:
            # A hint for bob, while alice is signed in.
            hint = h.services.signer.sign({"iss": ISSUER, "sub": other.id, "aud": "spa",
                                           "exp": h.clock.now() - 10})
            extra["id_token_hint"] = hint
    response = h.client.get("/oauth/authorize", params=auth_params(prompt="none", **extra),
                            follow_redirects=False)
    params = redirect_params(response)
    assert response.headers["location"].startswith(PUBLIC_REDIRECT + "?")
    assert params["error"] == "login_required"
    assert params["state"] == "st-123" and params["iss"] == ISSUER and "code" not in params


def test_prompt_none_with_a_step_up_to_do_is_interaction_required(h: Harness) -> None:
    user = h.add_user()
    visit(h, auth_params())  # a password-only session
    h.run(h.store.set_totp(user.id, _sealed(h, user.id), confirmed=True))
    params = redirect_params(h.client.get("/oauth/authorize", params=auth_params(
        prompt="none", acr_values="mfa"), follow_redirects=False))
    assert params["error"] == "interaction_required" and params["state"] == "st-123"


def _sealed(h: Harness, user_id: str) -> str:
    return seal_factor(h.services.secret_sealer, user_id, SECRET)


def test_prompt_none_with_scopes_to_consent_to_is_consent_required(h: Harness) -> None:
    h.add_user()
    visit(h, auth_params())
    response = h.client.get("/oauth/authorize", params=auth_params(
        client_id=PARTNER_ID, redirect_uri=PARTNER_REDIRECT, prompt="none"),
        follow_redirects=False)
    params = redirect_params(response)
    assert response.headers["location"].startswith(PARTNER_REDIRECT + "?")
    assert params["error"] == "consent_required" and params["iss"] == ISSUER


def test_prompt_login_signs_the_same_user_in_again_in_the_same_session(h: Harness) -> None:
    h.add_user()
    _tokens(h)
    before = h.session()
    assert before is not None
    h.clock.advance(300)
    again, tokens = _tokens(h, prompt="login")
    assert again.pages == ["password"]
    after = h.session()
    assert after is not None
    # The same session (sid, clients) with a new sign-in time.
    assert after.sid == before.sid and after.auth_time == before.auth_time + 300
    claims = _claims(h, tokens["id_token"])
    assert claims["sid"] == before.sid and claims["auth_time"] == after.auth_time
    assert "session_reauthenticated" in h.events.names()


def test_prompt_login_as_another_user_ends_the_old_session(h: Harness) -> None:
    alice = h.add_user()
    bob = h.add_user("bob", email="bob@example.test")
    _, alice_tokens = _tokens(h)
    alice_session = h.session()
    assert alice_session is not None
    page = h.client.get("/oauth/authorize", params=auth_params(prompt="login"))
    assert Form(page.text).fields["username"] == "alice"  # prefilled: a re-authentication
    switched = visit(h, auth_params(prompt="login"), username="bob")
    assert switched.pages == ["password"] and "code" in switched.params
    bob_session = h.session()
    assert bob_session is not None and bob_session.user_id == bob.id
    assert bob_session.sid != alice_session.sid
    ended = h.events.named("session_ended")
    assert [(e["sid"], e["reason"]) for e in ended] == [(alice_session.sid, "switch_user")]
    # alice's grants in that session were revoked with it.
    introspected = h.client.post("/oauth/introspect", auth=(CONFIDENTIAL_ID, CONFIDENTIAL_SECRET),
                                 data={"token": alice_tokens["access_token"]}).json()
    assert introspected == {"active": False}
    assert alice.id != bob.id


def test_prompt_select_account_falls_back_to_a_sign_in(h: Harness) -> None:
    h.add_user()
    visit(h, auth_params())
    seen = visit(h, auth_params(prompt="select_account"))
    assert seen.pages == ["password"] and "code" in seen.params


def test_max_age_forces_a_sign_in_and_the_id_token_says_when(h: Harness) -> None:
    h.add_user()
    visit(h, auth_params())
    signed_in_at = h.clock.now()
    h.clock.advance(50)
    fresh_enough, tokens = _tokens(h, max_age="60")
    assert fresh_enough.pages == []
    assert _claims(h, tokens["id_token"])["auth_time"] == signed_in_at
    h.clock.advance(20)  # 70 s since the sign-in
    page = h.client.get("/oauth/authorize", params=auth_params(max_age="60"))
    assert page.status_code == 200 and "too old" in page.text
    too_old, tokens = _tokens(h, max_age="60")
    assert too_old.pages == ["password"]
    assert _claims(h, tokens["id_token"])["auth_time"] == h.clock.now()


def test_max_age_zero_always_signs_in_again(h: Harness) -> None:
    h.add_user()
    visit(h, auth_params())
    assert visit(h, auth_params(max_age="0")).pages == ["password"]


def test_an_id_token_hint_of_the_signed_in_user_is_answered_from_the_session(
    h: Harness,
) -> None:
    h.add_user()
    _, tokens = _tokens(h)
    h.clock.advance(7200)  # the hint has expired: still a hint (OIDC Core 3.1.2.1)
    seen = visit(h, auth_params(id_token_hint=tokens["id_token"], prompt="none"))
    assert "code" in seen.params


def test_an_id_token_hint_of_another_user_asks_for_a_sign_in(h: Harness) -> None:
    bob = h.add_user("bob", email="bob@example.test")
    h.add_user()
    visit(h, auth_params())
    hint = h.services.signer.sign({"iss": ISSUER, "sub": bob.id, "aud": "spa"})
    seen = visit(h, auth_params(id_token_hint=hint), username="bob")
    assert seen.pages == ["password"] and "code" in seen.params
    session = h.session()
    assert session is not None and session.user_id == bob.id


@pytest.mark.parametrize("claims", [
    {"iss": "https://other.example", "sub": "someone"},
    {"iss": ISSUER},
    # A logout token is signed with the same key; it is no ID token.
    {"iss": ISSUER, "sub": "someone", "events": {"x": {}}},
])
def test_a_hint_that_is_not_our_id_token_is_invalid_request(
    h: Harness, claims: dict[str, Any]
) -> None:
    hint = h.services.signer.sign(claims)
    params = redirect_params(h.client.get("/oauth/authorize", params=auth_params(
        id_token_hint=hint), follow_redirects=False))
    assert params["error"] == "invalid_request" and params["state"] == "st-123"


def test_a_hint_signed_by_another_key_is_invalid_request(h: Harness) -> None:
    stranger = JoseSigner.generated().sign({"iss": ISSUER, "sub": "someone"})
    params = redirect_params(h.client.get("/oauth/authorize", params=auth_params(
        id_token_hint=stranger), follow_redirects=False))
    assert params["error"] == "invalid_request"


def test_login_hint_prefills_the_user_name(h: Harness) -> None:
    page = h.client.get("/oauth/authorize", params=auth_params(login_hint="carol<x>"))
    form = Form(page.text)
    assert form.fields["username"] == "carol<x>" and "carol&lt;x&gt;" in page.text
    # With the name filled in, the focus goes to the password.
    assert form.autofocus == ["password"]


def test_acr_values_mfa_steps_a_password_session_up_with_totp(h: Harness) -> None:
    user = h.add_user()
    visit(h, auth_params())  # signed in with the password: the user had no factor yet
    h.run(h.store.set_totp(user.id, _sealed(h, user.id), confirmed=True))
    before = h.session()
    assert before is not None and not before.mfa_verified
    stepped, tokens = _tokens(h, acr_values="mfa")
    assert stepped.pages == ["totp"]  # no password again: only the second factor
    claims = _claims(h, tokens["id_token"])
    assert claims["acr"] == "mfa" and claims["amr"] == ["pwd", "otp", "mfa"]
    after = h.session()
    assert after is not None and after.sid == before.sid and after.mfa_verified
    # From now on the session is a two-factor one, for every client.
    assert visit(h, auth_params(acr_values="mfa")).pages == []


def _cookie(h: Harness) -> str:
    value = h.client.cookies.get("session")
    assert value
    return value


def _set_cookie(h: Harness, value: str) -> None:
    """Replace the browser's session cookie as the server set it (same domain and path)."""
    held = next(c for c in h.client.cookies.jar if c.name == "session")
    h.client.cookies.delete("session")
    h.client.cookies.set("session", value, domain=held.domain, path=held.path)


def _assert_rekeyed(h: Harness, old_value: str, sid: str) -> None:
    """The session was moved to a new cookie value: the old one opens nothing any more."""
    new_value = _cookie(h)
    assert new_value != old_value
    assert h.run(h.store.get_session(hash_session_id(old_value), h.clock.now())) is None
    renewed = h.session()
    assert renewed is not None and renewed.sid == sid
    # A copy of the old cookie (taken while only the password was proved) is no session.
    _set_cookie(h, old_value)
    params = redirect_params(h.client.get("/oauth/authorize", params=auth_params(
        prompt="none"), follow_redirects=False))
    assert params["error"] == "login_required"
    _set_cookie(h, new_value)
    assert h.session() == renewed


def test_a_step_up_moves_the_session_to_a_new_cookie(h: Harness) -> None:
    user = h.add_user()
    visit(h, auth_params())
    h.run(h.store.set_totp(user.id, _sealed(h, user.id), confirmed=True))
    before = h.session()
    assert before is not None
    old_value = _cookie(h)
    stepped, _ = _tokens(h, acr_values="mfa")
    assert stepped.pages == ["totp"]
    _assert_rekeyed(h, old_value, before.sid)
    assert visit(h, auth_params(acr_values="mfa")).pages == []


def test_a_client_requiring_mfa_step_up_moves_the_session_to_a_new_cookie(
    h: Harness,
) -> None:
    user = h.add_user()
    visit(h, auth_params())
    h.run(h.store.set_totp(user.id, _sealed(h, user.id), confirmed=True))
    before = h.session()
    assert before is not None
    old_value = _cookie(h)
    seen = visit(h, auth_params(client_id=SECURE_ID, redirect_uri=SECURE_REDIRECT,
                                scope="openid profile"), totp_secret=SECRET)
    assert seen.pages == ["totp"] and "code" in seen.params
    _assert_rekeyed(h, old_value, before.sid)


def test_prompt_login_and_max_age_move_the_session_to_a_new_cookie(h: Harness) -> None:
    h.add_user()
    _tokens(h)
    before = h.session()
    assert before is not None
    old_value = _cookie(h)
    again, _ = _tokens(h, prompt="login")
    assert again.pages == ["password"]
    _assert_rekeyed(h, old_value, before.sid)
    old_value = _cookie(h)
    h.clock.advance(120)
    again, _ = _tokens(h, max_age="60")
    assert again.pages == ["password"]
    _assert_rekeyed(h, old_value, before.sid)


def test_acr_values_mfa_without_a_factor_is_answered_with_what_was_done(h: Harness) -> None:
    h.add_user()
    visit(h, auth_params())
    seen, tokens = _tokens(h, acr_values="mfa")
    assert seen.pages == []
    claims = _claims(h, tokens["id_token"])
    assert claims["acr"] == "pwd" and claims["amr"] == ["pwd"]


def test_a_client_requiring_mfa_steps_a_password_session_up(h: Harness) -> None:
    user = h.add_user()
    visit(h, auth_params())
    h.run(h.store.set_totp(user.id, _sealed(h, user.id), confirmed=True))
    seen = visit(h, auth_params(client_id=SECURE_ID, redirect_uri=SECURE_REDIRECT,
                                    scope="openid profile"),
                 totp_secret=SECRET)
    assert seen.pages == ["totp"] and "code" in seen.params


def test_a_client_requiring_mfa_refuses_a_user_without_a_factor(h: Harness) -> None:
    h.add_user()
    visit(h, auth_params())
    seen = visit(h, auth_params(client_id=SECURE_ID, redirect_uri=SECURE_REDIRECT,
                                    scope="openid profile"))
    assert seen.pages == [] and seen.params["error"] == "access_denied"
    assert "mfa_required" in h.events.names()


def test_a_step_up_counts_only_in_the_session_that_asked_for_it(h: Harness) -> None:
    user = h.add_user()
    visit(h, auth_params())
    h.run(h.store.set_totp(user.id, _sealed(h, user.id), confirmed=True))
    page = h.client.get("/oauth/authorize", params=auth_params(acr_values="mfa"))
    assert 'name="code"' in page.text
    h.client.cookies.delete("session")  # signed out meanwhile
    response = submit(h.client, page, code=pyotp.TOTP(SECRET).at(h.clock.now()))
    assert response.status_code == 400 and "location" not in response.headers


def test_a_deactivated_users_session_signs_in_no_more(h: Harness) -> None:
    user = h.add_user()
    visit(h, auth_params())
    stored = h.run(h.store.get_user(user.id))
    h.run(h.store.replace_user(msgspec.structs.replace(stored, active=False)))
    seen = visit(h, auth_params(), password=None)
    assert seen.pages == ["password"]
    params = redirect_params(h.client.get("/oauth/authorize", params=auth_params(
        prompt="none"), follow_redirects=False))
    assert params["error"] == "login_required"


def test_the_session_cookie_is_secure_and_host_only_behind_https(tmp_path: Path) -> None:
    with harness(tmp_path, EXTERNAL_BASE_URL="https://auth.test") as h:
        h.add_user()
        h.client.base_url = "https://auth.test"  # type: ignore[assignment]
        page = h.client.get("/oauth/authorize", params=auth_params())
        response = submit(h.client, page, username="alice", password=PASSWORD)
        cookies = response.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("__Host-session="))
        lowered = session.lower()
        assert "secure" in lowered and "path=/" in lowered and "domain=" not in lowered
        assert "httponly" in lowered and "samesite=lax" in lowered and "max-age" not in lowered

"""The authorization endpoint end to end: pages, redirects, errors, CSRF, throttling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from domain.oauth import at_hash
from domain.tokens import hash_token
from tests.e2e.signin_flow import (
    CONFIDENTIAL_ID,
    CONFIDENTIAL_REDIRECT,
    CONFIDENTIAL_SECRET,
    ISSUER,
    LOAD_BALANCER,
    PASSWORD,
    PUBLIC_ID,
    PUBLIC_REDIRECT,
    Form,
    Harness,
    auth_params,
    exchange,
    forwarded_for,
    full_flow,
    harness,
    pkce_pair,
    redirect_params,
    sign_in,
    submit,
)


@pytest.fixture
def h(tmp_path: Path) -> Any:
    with harness(tmp_path) as running:
        yield running


def test_sign_in_page_is_plain_accessible_html_with_security_headers(h: Harness) -> None:
    page = h.client.get("/oauth/authorize", params=auth_params(client_id=CONFIDENTIAL_ID,
                        redirect_uri=CONFIDENTIAL_REDIRECT, code_challenge=None,
                        code_challenge_method=None, scope="openid email"))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    # form-action also names the client's origin: browsers check it on the redirect that
    # follows the form, and would block the way back to the client otherwise.
    # script-src: the page's only script is this server's passkey script (no inline one).
    assert page.headers["content-security-policy"] == (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "form-action 'self' https://web.example.test; frame-ancestors 'none'")
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert '<html lang="en">' in page.text
    assert page.text.count("<script") == 1
    assert '<script src="/static/passkeys.js" defer></script>' in page.text
    # The client's name is shown, escaped; so are the requested scopes.
    assert "Web &lt;App&gt;" in page.text and "Web <App>" not in page.text
    assert "<code>openid</code>" in page.text and "<code>email</code>" in page.text
    form = Form(page.text)
    assert form.fields["csrf_token"] and len(form.fields["csrf_token"]) >= 32
    assert '<label for="username">' in page.text and '<label for="password">' in page.text
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_full_flow_with_pkce_and_nonce_gives_an_id_token_verified_against_jwks(
    h: Harness,
) -> None:
    user = h.add_user()
    body = full_flow(h, nonce="nonce-789")
    jwks = KeySet.import_key_set(h.client.get("/jwks.json").json())
    token = jwt.decode(body["id_token"], jwks, algorithms=["RS256"])
    claims = token.claims
    assert token.header["kid"] in {k["kid"] for k in h.client.get("/jwks.json").json()["keys"]}
    assert claims["iss"] == ISSUER
    assert claims["sub"] == user.id
    assert claims["aud"] == PUBLIC_ID
    assert claims["nonce"] == "nonce-789"
    assert claims["amr"] == ["pwd"]
    assert claims["auth_time"] == h.clock.now()
    assert claims["at_hash"] == at_hash(body["access_token"])
    assert claims["exp"] > claims["iat"]
    record = h.run(h.store.get_access_token(hash_token(body["access_token"]), h.clock.now()))
    assert record.sub == user.id and record.mfa_verified is False


def test_redirect_carries_code_state_and_issuer_and_clears_the_transaction(h: Harness) -> None:
    h.add_user()
    response = sign_in(h, auth_params(state="xyz/+="))
    params = redirect_params(response)
    assert response.headers["location"].startswith(PUBLIC_REDIRECT + "?")
    assert params["code"].startswith("ac_") and params["state"] == "xyz/+="
    assert params["iss"] == ISSUER
    assert "max-age=0" in response.headers["set-cookie"].lower()


def test_code_carries_the_pkce_challenge_so_a_wrong_verifier_is_refused(h: Harness) -> None:
    h.add_user()
    _, challenge = pkce_pair()
    code = redirect_params(sign_in(h, auth_params(code_challenge=challenge)))["code"]
    wrong_verifier, _ = pkce_pair()
    response = exchange(h, code, wrong_verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_confidential_client_keeps_the_query_of_its_registered_redirect_uri(h: Harness) -> None:
    h.add_user()
    response = sign_in(h, auth_params(client_id=CONFIDENTIAL_ID, redirect_uri=CONFIDENTIAL_REDIRECT,
                                      code_challenge=None, code_challenge_method=None))
    params = redirect_params(response)
    assert params["tenant"] == "1" and params["state"] == "st-123"
    token = h.client.post("/oauth/token", auth=(CONFIDENTIAL_ID, CONFIDENTIAL_SECRET), data={
        "grant_type": "authorization_code", "code": params["code"],
        "redirect_uri": CONFIDENTIAL_REDIRECT})
    assert token.status_code == 200, token.text
    assert "nonce" in jwt.decode(token.json()["id_token"], KeySet.import_key_set(
        h.client.get("/jwks.json").json())).claims


def test_authorization_request_by_post_is_accepted(h: Harness) -> None:
    page = h.client.post("/oauth/authorize", data=auth_params())
    assert page.status_code == 200 and 'name="password"' in page.text


@pytest.mark.parametrize("redirect_uri", [
    "https://evil.example/callback",
    PUBLIC_REDIRECT + "/../evil",
    PUBLIC_REDIRECT + "x",
    PUBLIC_REDIRECT + "?next=https://evil.example",
    PUBLIC_REDIRECT + "#frag",
    PUBLIC_REDIRECT[:-1],
    PUBLIC_REDIRECT.upper(),
    PUBLIC_REDIRECT.replace("127.0.0.1", "127.0.0.1.evil.example"),
    "",
])
def test_unregistered_redirect_uris_get_an_error_page_never_a_redirect(
    h: Harness, redirect_uri: str
) -> None:
    page = h.client.get("/oauth/authorize", params=auth_params(redirect_uri=redirect_uri),
                        follow_redirects=False)
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "redirect_uri" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["content-security-policy"] == (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'")


@pytest.mark.parametrize("params", [
    auth_params(client_id=None),
    auth_params(client_id="nobody"),
    auth_params(client_id=CONFIDENTIAL_ID),  # the public client's URI is not the web client's
])
def test_bad_client_gets_an_error_page(h: Harness, params: dict[str, str]) -> None:
    page = h.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert page.status_code == 400 and "location" not in page.headers


def test_repeated_redirect_uri_is_shown_not_redirected(h: Harness) -> None:
    query = "&".join(f"{k}={v}" for k, v in auth_params().items() if k != "redirect_uri")
    page = h.client.get(f"/oauth/authorize?{query}&redirect_uri={PUBLIC_REDIRECT}"
                        f"&redirect_uri=https://evil.example/", follow_redirects=False)
    assert page.status_code == 400 and "location" not in page.headers


@pytest.mark.parametrize(("overrides", "error"), [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": None}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),
    ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
    ({"scope": "openid admin"}, "invalid_scope"),
    ({"scope": None}, "invalid_scope"),
    ({"prompt": "none"}, "login_required"),  # no session yet
    ({"prompt": "none login"}, "invalid_request"),
    ({"prompt": "sometimes"}, "invalid_request"),
    ({"max_age": "-1"}, "invalid_request"),
    ({"id_token_hint": "not.a.token"}, "invalid_request"),
    ({"request": "eyJ..."}, "request_not_supported"),
])
def test_errors_after_the_redirect_uri_is_validated_are_redirected_with_state(
    h: Harness, overrides: dict[str, str | None], error: str
) -> None:
    response = h.client.get("/oauth/authorize", params=auth_params(**overrides),
                            follow_redirects=False)
    params = redirect_params(response)
    assert response.headers["location"].startswith(PUBLIC_REDIRECT + "?")
    assert params["error"] == error
    assert params["state"] == "st-123"
    assert params["iss"] == ISSUER
    assert "code" not in params


def test_wrong_password_unknown_and_inactive_users_get_the_same_message(h: Harness) -> None:
    h.add_user()
    h.add_user("bob", active=False)
    h.add_user("carol", password=None)
    for username, password in [("alice", "wrong"), ("mallory", PASSWORD), ("bob", PASSWORD),
                               ("carol", PASSWORD)]:
        page = h.client.get("/oauth/authorize", params=auth_params())
        response = submit(h.client, page, username=username, password=password)
        assert response.status_code == 200, username
        assert "The user name or password is incorrect." in response.text
        assert 'role="alert"' in response.text
        assert "location" not in response.headers
    assert h.events.names().count("signin_failed") == 4


def test_user_name_is_case_insensitive(h: Harness) -> None:
    h.add_user()
    assert "code" in redirect_params(sign_in(h, auth_params(), username="ALICE"))


def test_missing_or_wrong_csrf_token_is_refused(h: Harness) -> None:
    h.add_user()
    page = h.client.get("/oauth/authorize", params=auth_params())
    fields = Form(page.text).fields
    wrong = h.client.post("/oauth/authorize", data={**fields, "csrf_token": "x" * 43,
                          "username": "alice", "password": PASSWORD}, follow_redirects=False)
    assert wrong.status_code == 403 and "location" not in wrong.headers
    missing = h.client.post("/oauth/authorize", data={"step": "password", "username": "alice",
                            "password": PASSWORD}, follow_redirects=False)
    assert missing.status_code == 400 and "location" not in missing.headers
    # The right token still works: the refusals did not consume anything.
    assert "code" in redirect_params(submit(h.client, page, username="alice", password=PASSWORD))


def test_a_form_posted_without_the_transaction_cookie_is_refused(h: Harness) -> None:
    """A cross-site form (login CSRF) has the token of the attacker's own page but the
    victim's browser does not send the SameSite cookie, or sends another transaction's."""
    h.add_user()
    attacker_page = h.client.get("/oauth/authorize", params=auth_params())
    h.client.cookies.clear()
    response = submit(h.client, attacker_page, username="alice", password=PASSWORD)
    assert response.status_code == 400 and "expired" in response.text
    h.client.get("/oauth/authorize", params=auth_params())  # the victim's own transaction
    response = submit(h.client, attacker_page, username="alice", password=PASSWORD)
    assert response.status_code == 403


def test_tampered_or_expired_transaction_is_refused(h: Harness) -> None:
    h.add_user()
    page = h.client.get("/oauth/authorize", params=auth_params())
    sealed = h.client.cookies["signin"]
    h.client.cookies.set("signin", sealed[:-4] + "AAAA", path="/oauth/authorize")
    assert submit(h.client, page, username="alice", password=PASSWORD).status_code == 400
    page = h.client.get("/oauth/authorize", params=auth_params())
    h.clock.advance(601)
    response = submit(h.client, page, username="alice", password=PASSWORD)
    assert response.status_code == 400 and "location" not in response.headers


def test_cancel_redirects_with_access_denied(h: Harness) -> None:
    page = h.client.get("/oauth/authorize", params=auth_params())
    response = submit(h.client, page, action="cancel")
    params = redirect_params(response)
    assert params["error"] == "access_denied" and params["state"] == "st-123"


def test_failed_sign_ins_are_throttled_per_user_at_an_address(h: Harness) -> None:
    h.add_user()
    page = h.client.get("/oauth/authorize", params=auth_params())
    for _ in range(5):
        assert submit(h.client, page, username="alice", password="nope").status_code == 200
    locked = submit(h.client, page, username="alice", password=PASSWORD)
    assert locked.status_code == 429
    # The rest of the current 15-minute window.
    assert int(locked.headers["retry-after"]) == 900 - h.clock.now() % 900
    assert "Too many failed sign-in attempts" in locked.text
    assert "signin_locked" in h.events.names()
    # Another user from the same address is not locked out by alice's limit.
    h.add_user("dave")
    assert "code" in redirect_params(submit(h.client, page, username="dave", password=PASSWORD))
    h.clock.advance(int(locked.headers["retry-after"]))
    # prompt=login: dave's session would answer the request otherwise.
    page = h.client.get("/oauth/authorize", params=auth_params(prompt="login"))
    assert "code" in redirect_params(submit(h.client, page, username="alice", password=PASSWORD))


def test_failed_sign_ins_are_throttled_per_client_address(h: Harness) -> None:
    h.add_user()
    page = h.client.get("/oauth/authorize", params=auth_params())
    for attempt in range(20):
        response = submit(h.client, page, username=f"guess{attempt}", password="nope")
        assert response.status_code == 200
    locked = submit(h.client, page, username="alice", password=PASSWORD)
    assert locked.status_code == 429 and "retry-after" in locked.headers


@pytest.mark.parametrize(("limit", "refused_at"), [("3", 3), ("0", None)])
def test_the_failures_per_address_limit_is_configurable(
    tmp_path: Path, limit: str, refused_at: int | None
) -> None:
    with harness(tmp_path, RATE_LIMIT_SIGNIN_FAILURES_PER_ADDRESS=limit) as h:
        page = h.client.get("/oauth/authorize", params=auth_params())
        statuses = [submit(h.client, page, username=f"user{n}", password="x").status_code
                    for n in range(30)]
        expected = [200] * 30 if refused_at is None else [200] * refused_at + [429] * 27
        assert statuses == expected


def _behind_the_balancer(h: Harness, address: str, **fields: str) -> Any:
    """A sign-in page fetched, and submitted, by a browser at ``address``."""
    page = h.client.get("/oauth/authorize", params=auth_params(), headers=forwarded_for(address))
    return submit(h.client, page, forwarded_for(address), **fields)


def test_failures_from_one_address_behind_a_load_balancer_lock_out_no_one_else(
    tmp_path: Path,
) -> None:
    # The confirmed attack: 21 failures from one address blocked every user behind a load
    # balancer, since every request came from the balancer's address.
    with harness(tmp_path, peer=LOAD_BALANCER, TRUSTED_PROXIES=LOAD_BALANCER) as h:
        h.add_user()
        statuses = [_behind_the_balancer(h, "203.0.113.9", username=f"guess{n}",
                                         password="nope").status_code for n in range(21)]
        assert statuses == [200] * 20 + [429]
        victim = _behind_the_balancer(h, "198.51.100.7", username="alice", password=PASSWORD)
        assert "code" in redirect_params(victim)


def test_failures_naming_a_user_do_not_lock_that_user_out(tmp_path: Path) -> None:
    # The confirmed attack: six requests naming a user locked that user out.
    with harness(tmp_path, peer=LOAD_BALANCER, TRUSTED_PROXIES=LOAD_BALANCER) as h:
        h.add_user()
        statuses = [_behind_the_balancer(h, "203.0.113.9", username="alice",
                                         password="nope").status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        victim = _behind_the_balancer(h, "198.51.100.7", username="alice", password=PASSWORD)
        assert "code" in redirect_params(victim)


@pytest.mark.parametrize("env", [{}, {"TRUSTED_PROXIES": "192.0.2.1"}],
                         ids=["no-trusted-proxies", "peer-not-trusted"])
def test_a_forwarded_for_header_from_an_untrusted_peer_is_ignored(
    tmp_path: Path, env: dict[str, str]
) -> None:
    with harness(tmp_path, peer=LOAD_BALANCER, **env) as h:
        h.add_user()
        for n in range(5):
            _behind_the_balancer(h, f"203.0.113.{n}", username="alice", password="nope")
        # Every request is from the peer itself: no header buys a fresh address.
        spoofed = _behind_the_balancer(h, "198.51.100.7", username="alice", password=PASSWORD)
        assert spoofed.status_code == 429


def test_a_guesser_is_slowed_to_a_few_checks_and_told_when_to_retry(h: Harness) -> None:
    h.add_user()
    page = h.client.get("/oauth/authorize", params=auth_params())
    responses = []
    for n in range(30):  # one guess every two seconds for a minute
        responses.append(submit(h.client, page, username="alice", password=f"guess{n}"))
        h.clock.advance(2)
    assert h.events.names().count("signin_failed") == 5
    refused = responses[5:]
    assert {r.status_code for r in refused} == {429}
    assert all(0 < int(r.headers["retry-after"]) <= 900 for r in refused)
    # The page says why, where a screen reader announces it, next to the form.
    assert 'role="alert"' in refused[0].text
    assert "Too many failed sign-in attempts" in refused[0].text
    assert 'aria-describedby="form-error"' in refused[0].text


def test_guesses_from_many_addresses_are_delayed_and_the_owner_still_gets_in(
    tmp_path: Path,
) -> None:
    with harness(tmp_path, peer=LOAD_BALANCER, TRUSTED_PROXIES=LOAD_BALANCER) as h:
        h.add_user()
        bots = [f"203.0.113.{n}" for n in range(10)]
        first = [_behind_the_balancer(h, ip, username="alice", password="x") for ip in bots]
        assert {r.status_code for r in first} == {200}
        second = [_behind_the_balancer(h, ip, username="alice", password="y") for ip in bots]
        assert [r.status_code for r in second].count(200) == 1
        delayed = [r for r in second if r.status_code == 429]
        assert len(delayed) == 9
        assert all(0 < int(r.headers["retry-after"]) <= 60 for r in delayed)
        owner = _behind_the_balancer(h, "198.51.100.7", username="alice", password=PASSWORD)
        assert "code" in redirect_params(owner)


def test_throttling_is_shared_through_the_store_by_every_instance(tmp_path: Path) -> None:
    """Two app instances over one store: failures on one count on the other."""
    with harness(tmp_path) as first:
        first.add_user()
        page = first.client.get("/oauth/authorize", params=auth_params())
        for _ in range(5):
            submit(first.client, page, username="alice", password="nope")
        with harness(tmp_path, store=first.store, clock=first.clock) as second:
            page = second.client.get("/oauth/authorize", params=auth_params())
            assert submit(second.client, page, username="alice",
                          password=PASSWORD).status_code == 429


def test_a_sign_in_started_on_one_instance_finishes_on_another(tmp_path: Path) -> None:
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(RSAKey.generate_key(2048, private=True).as_pem(private=True))
    with harness(tmp_path, SIGNING_KEY_FILE=str(key_file)) as first:
        first.add_user()
        page = first.client.get("/oauth/authorize", params=auth_params())
        with harness(tmp_path, store=first.store, clock=first.clock,
                     SIGNING_KEY_FILE=str(key_file)) as second:
            second.client.cookies = first.client.cookies
            response = submit(second.client, page, username="alice", password=PASSWORD)
            assert "code" in redirect_params(response)
        # An instance with another key cannot open the transaction.
        with harness(tmp_path, store=first.store, clock=first.clock) as stranger:
            page = first.client.get("/oauth/authorize", params=auth_params())
            stranger.client.cookies = first.client.cookies
            response = submit(stranger.client, page, username="alice", password=PASSWORD)
            assert response.status_code == 400

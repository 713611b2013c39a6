"""Sign-in with a TOTP second factor: mfa_verified and amr follow the factor actually proved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgspec
import pyotp
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from domain.tokens import hash_token
from tests.e2e.signin_flow import (
    PASSWORD,
    PUBLIC_ID,
    Form,
    Harness,
    auth_params,
    full_flow,
    harness,
    redirect_params,
    sign_in,
    submit,
)

SECRET = pyotp.random_base32()


@pytest.fixture
def h(tmp_path: Path) -> Any:
    with harness(tmp_path) as running:
        yield running


def _claims(h: Harness, id_token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(h.client.get("/jwks.json").json())
    claims: dict[str, Any] = jwt.decode(id_token, keys, algorithms=["RS256"]).claims
    return claims


def _totp_page(h: Harness) -> Any:
    # prompt=login: a sign-in after the first one would otherwise be answered by the session.
    page = h.client.get("/oauth/authorize", params=auth_params(prompt="login"))
    response = submit(h.client, page, username="alice", password=PASSWORD)
    assert response.status_code == 200 and 'name="code"' in response.text
    assert 'autocomplete="one-time-code"' in response.text
    return response


def test_totp_sign_in_marks_tokens_mfa_verified_and_it_survives_refresh(h: Harness) -> None:
    h.add_user(totp_secret=SECRET)
    body = full_flow(h, totp_secret=SECRET)
    assert _claims(h, body["id_token"])["amr"] == ["pwd", "otp", "mfa"]
    now = h.clock.now()
    record = h.run(h.store.get_access_token(hash_token(body["access_token"]), now))
    assert record.mfa_verified is True
    refreshed = h.client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"],
        "client_id": PUBLIC_ID})
    assert refreshed.status_code == 200, refreshed.text
    new_record = h.run(h.store.get_access_token(hash_token(refreshed.json()["access_token"]), now))
    assert new_record.mfa_verified is True


def test_password_only_sign_in_is_not_mfa_verified(h: Harness) -> None:
    h.add_user()
    body = full_flow(h)
    assert _claims(h, body["id_token"])["amr"] == ["pwd"]
    record = h.run(h.store.get_access_token(hash_token(body["access_token"]), h.clock.now()))
    assert record.mfa_verified is False


def test_an_unconfirmed_factor_is_not_asked_for_and_proves_nothing(h: Harness) -> None:
    user = h.add_user()
    h.run(h.store.set_totp(user.id, SECRET, confirmed=False))
    params = redirect_params(sign_in(h, auth_params()))
    assert "code" in params


def test_the_password_alone_does_not_issue_a_code_when_totp_is_enrolled(h: Harness) -> None:
    h.add_user(totp_secret=SECRET)
    page = _totp_page(h)
    assert "location" not in page.headers
    # Re-posting the password step with the TOTP-step transaction is refused.
    response = submit(h.client, page, step="password", username="alice", password=PASSWORD)
    assert response.status_code == 409 and "location" not in response.headers


def test_a_replayed_totp_code_is_refused(h: Harness) -> None:
    h.add_user(totp_secret=SECRET)
    code = pyotp.TOTP(SECRET).at(h.clock.now())
    assert "code" in redirect_params(submit(h.client, _totp_page(h), code=code))
    replay = submit(h.client, _totp_page(h), code=code)
    assert replay.status_code == 200
    assert "The code is incorrect or was already used." in replay.text
    # Still refused from the next step, while the code would otherwise be valid (±1 step).
    h.clock.advance(30)
    assert submit(h.client, _totp_page(h), code=code).status_code == 200
    fresh = pyotp.TOTP(SECRET).at(h.clock.now())
    assert "code" in redirect_params(submit(h.client, _totp_page(h), code=fresh))


def test_codes_one_step_away_are_accepted_two_steps_are_not(h: Harness) -> None:
    h.add_user(totp_secret=SECRET)
    now = h.clock.now()
    assert submit(h.client, _totp_page(h), code=pyotp.TOTP(SECRET).at(now - 60)).status_code == 200
    assert submit(h.client, _totp_page(h), code=pyotp.TOTP(SECRET).at(now + 60)).status_code == 200
    previous = pyotp.TOTP(SECRET).at(now - 30)
    assert "code" in redirect_params(submit(h.client, _totp_page(h), code=previous))


def _wrong_code(h: Harness) -> str:
    valid = {pyotp.TOTP(SECRET).at(h.clock.now() + d) for d in (-30, 0, 30)}
    return next(f"{n:06d}" for n in range(10) if f"{n:06d}" not in valid)


def test_wrong_totp_codes_are_throttled(h: Harness) -> None:
    h.add_user(totp_secret=SECRET)
    page = _totp_page(h)
    current = pyotp.TOTP(SECRET).at(h.clock.now())
    for _ in range(5):
        page = submit(h.client, page, code=_wrong_code(h))
        assert page.status_code == 200
    locked = submit(h.client, page, code=current)
    assert locked.status_code == 429 and "retry-after" in locked.headers
    assert "location" not in locked.headers


def test_a_wrong_code_gives_a_fresh_totp_step_and_the_user_can_retry(h: Harness) -> None:
    h.add_user(totp_secret=SECRET)
    page = _totp_page(h)
    retry = submit(h.client, page, code=_wrong_code(h))
    assert retry.status_code == 200 and "The code is incorrect" in retry.text
    assert "set-cookie" in retry.headers
    assert Form(retry.text).fields["csrf_token"] != Form(page.text).fields["csrf_token"]
    assert "code" in redirect_params(
        submit(h.client, retry, code=pyotp.TOTP(SECRET).at(h.clock.now())))


def test_a_replayed_totp_step_cookie_is_refused(h: Harness) -> None:
    # The sealed cookie proves the password; replaying a copy of it must not buy more tries.
    h.add_user(totp_secret=SECRET)
    page = _totp_page(h)
    copied = httpx.Cookies(h.client.cookies)
    retry = submit(h.client, page, code=_wrong_code(h))
    assert retry.status_code == 200
    h.client.cookies = copied
    replay = submit(h.client, page, code=pyotp.TOTP(SECRET).at(h.clock.now()))
    assert replay.status_code == 409 and "location" not in replay.headers
    assert "already used. Please sign in again." in replay.text
    # The answer starts over from the password, with a transaction of its own.
    assert 'name="password"' in replay.text
    again = submit(h.client, replay, username="alice", password=PASSWORD)
    assert 'name="code"' in again.text
    assert "code" in redirect_params(
        submit(h.client, again, code=pyotp.TOTP(SECRET).at(h.clock.now())))


def test_the_cookie_of_a_finished_totp_step_cannot_sign_in_again(tmp_path: Path) -> None:
    with harness(tmp_path) as h:
        h.add_user(totp_secret=SECRET)
        page = _totp_page(h)
        copied = httpx.Cookies(h.client.cookies)
        assert "code" in redirect_params(
            submit(h.client, page, code=pyotp.TOTP(SECRET).at(h.clock.now())))
        h.clock.advance(30)  # a fresh, unused code
        # On another instance sharing the store, too.
        with harness(tmp_path, store=h.store, clock=h.clock) as other:
            other.client.cookies = copied
            replay = submit(other.client, page, code=pyotp.TOTP(SECRET).at(h.clock.now()))
            assert replay.status_code == 409 and "location" not in replay.headers


def test_a_user_deactivated_between_the_steps_cannot_finish(h: Harness) -> None:
    user = h.add_user(totp_secret=SECRET)
    page = _totp_page(h)
    stored = h.run(h.store.get_user(user.id))
    h.run(h.store.replace_user(msgspec.structs.replace(stored, active=False)))
    response = submit(h.client, page, code=pyotp.TOTP(SECRET).at(h.clock.now()))
    assert response.status_code == 200 and "location" not in response.headers

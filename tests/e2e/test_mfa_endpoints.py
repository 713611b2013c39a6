"""POST /mfa/totp/register and /mfa/totp/verify: enrolment with the user's bearer token."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from domain.tokens import hash_token
from tests.e2e.signin_flow import Harness, full_flow, harness


@pytest.fixture
def h(tmp_path: Path) -> Any:
    with harness(tmp_path) as running:
        yield running


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _register(h: Harness, token: str) -> Any:
    return h.client.post("/mfa/totp/register", headers=_bearer(token))


def test_enrolment_is_inactive_until_confirmed_then_sign_in_asks_for_it(h: Harness) -> None:
    h.add_user()
    token = full_flow(h)["access_token"]
    response = _register(h, token)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    uri = urlsplit(body["otpauth_uri"])
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    assert parse_qs(uri.query)["secret"] == [body["secret"]]
    assert body["confirmed"] is False
    # Not confirmed: signing in does not ask for a code, and proves no second factor.
    assert full_flow(h)["access_token"]
    user = h.run(h.store.find_user_by_name("alice"))
    assert h.run(h.store.get_credentials(user.id)).totp_confirmed is False

    wrong = h.client.post("/mfa/totp/verify", headers=_bearer(token), json={"code": "000000"})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_code"
    code = pyotp.TOTP(body["secret"]).at(h.clock.now())
    confirmed = h.client.post("/mfa/totp/verify", headers=_bearer(token), data={"code": code})
    assert confirmed.status_code == 200 and confirmed.json() == {"confirmed": True}
    assert h.run(h.store.get_credentials(user.id)).totp_confirmed is True
    # Confirming did not make the caller's token MFA-verified: only a sign-in does.
    record = h.run(h.store.get_access_token(hash_token(token), h.clock.now()))
    assert record.mfa_verified is False
    # The code used to confirm cannot be replayed at sign-in, a fresh one works.
    h.clock.advance(30)
    assert full_flow(h, totp_secret=body["secret"])["access_token"]


def test_a_code_used_for_confirmation_cannot_be_replayed(h: Harness) -> None:
    h.add_user()
    token = full_flow(h)["access_token"]
    secret = _register(h, token).json()["secret"]
    code = pyotp.TOTP(secret).at(h.clock.now())
    assert h.client.post("/mfa/totp/verify", headers=_bearer(token),
                         json={"code": code}).status_code == 200
    replay = h.client.post("/mfa/totp/verify", headers=_bearer(token), json={"code": code})
    assert replay.status_code == 400


def test_replacing_a_confirmed_factor_needs_an_mfa_verified_token(h: Harness) -> None:
    secret = pyotp.random_base32()
    h.add_user()
    user = h.run(h.store.find_user_by_name("alice"))
    password_only = full_flow(h)["access_token"]
    h.run(h.store.set_totp(user.id, secret, confirmed=True))
    refused = _register(h, password_only)
    assert refused.status_code == 409 and refused.json()["error"] == "factor_already_active"
    assert h.run(h.store.get_credentials(user.id)).totp_secret == secret
    with_mfa = full_flow(h, totp_secret=secret)["access_token"]
    assert _register(h, with_mfa).status_code == 200


def test_verify_without_registration_is_a_conflict(h: Harness) -> None:
    h.add_user()
    token = full_flow(h)["access_token"]
    response = h.client.post("/mfa/totp/verify", headers=_bearer(token), json={"code": "123456"})
    assert response.status_code == 409 and response.json()["error"] == "no_pending_factor"


def test_verify_without_code_is_a_bad_request(h: Harness) -> None:
    h.add_user()
    token = full_flow(h)["access_token"]
    _register(h, token)
    response = h.client.post("/mfa/totp/verify", headers=_bearer(token), json={})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/mfa/totp/register", "/mfa/totp/verify"])
def test_a_bearer_token_of_a_user_is_required(h: Harness, path: str) -> None:
    missing = h.client.post(path, json={"code": "123456"})
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    bad = h.client.post(path, headers=_bearer("tk_forged"), json={"code": "123456"})
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]

"""POST /mfa/totp/register and /mfa/totp/verify: enrolment with the user's bearer token.

Registering only hands out a sealed ``enrollment``; the stored factor changes when verify
accepts a code for it. So an abandoned re-enrolment leaves the old factor in force.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from domain.mfa import ENROLMENT_SECONDS, VERIFY_LIMIT
from domain.tokens import hash_token
from tests.e2e.signin_flow import (
    PASSWORD,
    Harness,
    auth_params,
    exchange,
    full_flow,
    harness,
    pkce_pair,
    redirect_params,
    sign_in,
    submit,
)

OLD = pyotp.random_base32()


@pytest.fixture
def h(tmp_path: Path) -> Any:
    with harness(tmp_path) as running:
        yield running


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _register(h: Harness, token: str) -> Any:
    return h.client.post("/mfa/totp/register", headers=_bearer(token))


def _verify(h: Harness, token: str, enrollment: str, code: str) -> Any:
    return h.client.post("/mfa/totp/verify", headers=_bearer(token),
                         json={"enrollment": enrollment, "code": code})


def _enrol(h: Harness, token: str) -> str:
    """Register and confirm a new factor; its secret."""
    body = _register(h, token).json()
    code = pyotp.TOTP(body["secret"]).at(h.clock.now())
    assert _verify(h, token, body["enrollment"], code).status_code == 200
    secret: str = body["secret"]
    return secret


def test_enrolment_is_inactive_until_confirmed_then_sign_in_asks_for_it(h: Harness) -> None:
    user = h.add_user()
    token = full_flow(h)["access_token"]
    response = _register(h, token)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    uri = urlsplit(body["otpauth_uri"])
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    assert parse_qs(uri.query)["secret"] == [body["secret"]]
    assert body["confirmed"] is False and body["expires_in"] == ENROLMENT_SECONDS
    assert body["enrollment"] and body["secret"] not in body["enrollment"]
    # Nothing is stored yet: signing in does not ask for a code, and proves no second factor.
    assert h.run(h.store.get_credentials(user.id)).totp_secret is None
    assert full_flow(h)["access_token"]

    wrong = _verify(h, token, body["enrollment"], "000000")
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_code"
    code = pyotp.TOTP(body["secret"]).at(h.clock.now())
    confirmed = h.client.post("/mfa/totp/verify", headers=_bearer(token),
                              data={"enrollment": body["enrollment"], "code": code})
    assert confirmed.status_code == 200 and confirmed.json() == {"confirmed": True}
    credentials = h.run(h.store.get_credentials(user.id))
    assert credentials.totp_secret == body["secret"] and credentials.totp_confirmed is True
    # Confirming did not make the caller's token MFA-verified: only a sign-in does.
    record = h.run(h.store.get_access_token(hash_token(token), h.clock.now()))
    assert record.mfa_verified is False
    # The code used to confirm cannot be replayed at sign-in, a fresh one works.
    h.clock.advance(30)
    assert full_flow(h, totp_secret=body["secret"])["access_token"]


def test_an_abandoned_re_enrolment_keeps_the_old_factor_required(h: Harness) -> None:
    h.add_user()
    old = _enrol(h, full_flow(h)["access_token"])
    h.clock.advance(30)
    with_mfa = full_flow(h, totp_secret=old)["access_token"]
    pending = _register(h, with_mfa)
    assert pending.status_code == 200
    new = pending.json()["secret"]
    h.clock.advance(30)
    # The password alone still leads to the code page, not to a code.
    page = h.client.get("/oauth/authorize", params=auth_params())
    asked = submit(h.client, page, username="alice", password=PASSWORD)
    assert asked.status_code == 200 and 'name="code"' in asked.text
    # The new, unconfirmed secret's code is refused; the old secret's code still signs in.
    refused = submit(h.client, asked, code=pyotp.TOTP(new).at(h.clock.now()))
    assert refused.status_code == 200 and "location" not in refused.headers
    h.clock.advance(30)
    assert full_flow(h, totp_secret=old)["access_token"]


def test_a_confirmed_re_enrolment_replaces_the_old_factor(h: Harness) -> None:
    h.add_user()
    old = _enrol(h, full_flow(h)["access_token"])
    h.clock.advance(30)
    with_mfa = full_flow(h, totp_secret=old)["access_token"]
    # Codes are claimed per user and time step, so the next code comes from the next step.
    h.clock.advance(30)
    new = _enrol(h, with_mfa)
    h.clock.advance(30)
    page = h.client.get("/oauth/authorize", params=auth_params())
    asked = submit(h.client, page, username="alice", password=PASSWORD)
    stale = submit(h.client, asked, code=pyotp.TOTP(old).at(h.clock.now()))
    assert stale.status_code == 200 and "location" not in stale.headers
    assert full_flow(h, totp_secret=new)["access_token"]


def test_a_code_used_for_confirmation_cannot_be_replayed(h: Harness) -> None:
    h.add_user(totp_secret=OLD)
    token = full_flow(h, totp_secret=OLD)["access_token"]
    h.clock.advance(30)
    body = _register(h, token).json()
    code = pyotp.TOTP(body["secret"]).at(h.clock.now())
    assert _verify(h, token, body["enrollment"], code).status_code == 200
    replay = _verify(h, token, body["enrollment"], code)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_code"


def test_a_password_only_token_cannot_confirm_twice(h: Harness) -> None:
    h.add_user()
    token = full_flow(h)["access_token"]
    body = _register(h, token).json()
    assert _verify(h, token, body["enrollment"],
                   pyotp.TOTP(body["secret"]).at(h.clock.now())).status_code == 200
    h.clock.advance(30)
    again = _verify(h, token, body["enrollment"], pyotp.TOTP(body["secret"]).at(h.clock.now()))
    assert again.status_code == 409 and again.json()["error"] == "factor_already_active"


def test_replacing_a_confirmed_factor_needs_an_mfa_verified_token(h: Harness) -> None:
    secret = pyotp.random_base32()
    user = h.add_user()
    password_only = full_flow(h)["access_token"]
    early = _register(h, password_only).json()  # made before the factor existed
    h.run(h.store.set_totp(user.id, secret, confirmed=True))
    refused = _register(h, password_only)
    assert refused.status_code == 409 and refused.json()["error"] == "factor_already_active"
    late = _verify(h, password_only, early["enrollment"],
                   pyotp.TOTP(early["secret"]).at(h.clock.now()))
    assert late.status_code == 409 and late.json()["error"] == "factor_already_active"
    assert h.run(h.store.get_credentials(user.id)).totp_secret == secret
    with_mfa = full_flow(h, totp_secret=secret)["access_token"]
    assert _register(h, with_mfa).status_code == 200


def _tamper(enrollment: str) -> str:
    parts = enrollment.split(".")
    parts[3] = ("A" if parts[3][0] != "A" else "B") + parts[3][1:]
    return ".".join(parts)


def test_tampered_expired_and_other_users_enrolments_are_refused(h: Harness) -> None:
    alice = h.add_user()
    h.add_user("bob", email="bob@example.test")
    alice_token = full_flow(h)["access_token"]
    body = _register(h, alice_token).json()
    code = pyotp.TOTP(body["secret"]).at(h.clock.now())

    tampered = _verify(h, alice_token, _tamper(body["enrollment"]), code)
    assert tampered.status_code == 400 and tampered.json()["error"] == "invalid_enrollment"

    bob_token = _bob_token(h)
    foreign = _verify(h, bob_token, body["enrollment"], code)
    assert foreign.status_code == 400 and foreign.json()["error"] == "invalid_enrollment"
    assert "another user" in foreign.json()["error_description"]

    h.clock.advance(ENROLMENT_SECONDS)
    expired = _verify(h, alice_token, body["enrollment"],
                      pyotp.TOTP(body["secret"]).at(h.clock.now()))
    assert expired.status_code == 400 and "expired" in expired.json()["error_description"]
    assert h.run(h.store.get_credentials(alice.id)).totp_secret is None


def _bob_token(h: Harness) -> str:
    verifier, challenge = pkce_pair()
    params = redirect_params(sign_in(h, auth_params(code_challenge=challenge), username="bob"))
    token: str = exchange(h, params["code"], verifier).json()["access_token"]
    return token


def test_wrong_codes_at_verify_are_throttled(h: Harness) -> None:
    h.add_user()
    token = full_flow(h)["access_token"]
    body = _register(h, token).json()
    for _ in range(VERIFY_LIMIT):
        assert _verify(h, token, body["enrollment"], "000000").status_code == 400
    throttled = _verify(h, token, body["enrollment"],
                        pyotp.TOTP(body["secret"]).at(h.clock.now()))
    assert throttled.status_code == 429 and throttled.json()["error"] == "too_many_attempts"
    assert int(throttled.headers["retry-after"]) > 0


@pytest.mark.parametrize("fields", [{}, {"code": "123456"}, {"enrollment": "x"}])
def test_verify_without_enrollment_or_code_is_a_bad_request(
    h: Harness, fields: dict[str, str]
) -> None:
    h.add_user()
    token = full_flow(h)["access_token"]
    response = h.client.post("/mfa/totp/verify", headers=_bearer(token), json=fields)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_the_openapi_document_shows_the_enrollment_fields(h: Harness) -> None:
    paths = h.client.get("/schema/openapi.json").json()["paths"]
    verify = paths["/mfa/totp/verify"]["post"]
    body = verify["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["enrollment", "code"]
    register = paths["/mfa/totp/register"]["post"]["responses"]["200"]["content"]
    assert register["application/json"]["schema"]["$ref"].endswith("/TotpRegistration")


@pytest.mark.parametrize("path", ["/mfa/totp/register", "/mfa/totp/verify"])
def test_a_bearer_token_of_a_user_is_required(h: Harness, path: str) -> None:
    missing = h.client.post(path, json={"code": "123456"})
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    bad = h.client.post(path, headers=_bearer("tk_forged"), json={"code": "123456"})
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]

"""POST /mfa/totp/register and /mfa/totp/verify: enrolment with the user's bearer token.

The token needs the ``mfa`` scope and a recent sign-in; replacing a confirmed factor needs
``current_code``. Registering only hands out a sealed ``enrollment``; the stored factor
changes when verify accepts a code for it, and is stored sealed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from adapters.secret_sealing import AesGcmSecretSealer, new_key_text
from domain.mfa import ENROLMENT_SECONDS, RECENT_AUTH_SECONDS, VERIFY_LIMIT
from domain.tokens import hash_token
from tests.e2e.signin_flow import (
    PASSWORD,
    PUBLIC_ID,
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
MFA = "openid offline_access mfa"


@pytest.fixture
def h(tmp_path: Path) -> Any:
    with harness(tmp_path) as running:
        yield running


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _mfa_token(h: Harness, totp_secret: str | None = None) -> str:
    """An access token with the ``mfa`` scope from a sign-in now."""
    token: str = full_flow(h, totp_secret=totp_secret, scope=MFA)["access_token"]
    return token


def _register(h: Harness, token: str, current_code: str | None = None) -> Any:
    body = {"current_code": current_code} if current_code is not None else None
    return h.client.post("/mfa/totp/register", headers=_bearer(token), json=body)


def _verify(h: Harness, token: str, enrollment: str, code: str) -> Any:
    return h.client.post("/mfa/totp/verify", headers=_bearer(token),
                         json={"enrollment": enrollment, "code": code})


def _enrol(h: Harness, token: str, current_code: str | None = None) -> str:
    """Register and confirm a new factor; its secret."""
    registered = _register(h, token, current_code)
    assert registered.status_code == 200, registered.text
    body = registered.json()
    code = pyotp.TOTP(body["secret"]).at(h.clock.now())
    assert _verify(h, token, body["enrollment"], code).status_code == 200
    secret: str = body["secret"]
    return secret


def _asks_for_a_code(h: Harness) -> bool:
    page = h.client.get("/oauth/authorize", params=auth_params(prompt="login"))
    return 'name="code"' in submit(h.client, page, username="alice", password=PASSWORD).text


def test_enrolment_is_inactive_until_confirmed_then_sign_in_asks_for_it(h: Harness) -> None:
    user = h.add_user()
    token = _mfa_token(h)
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
    assert confirmed.status_code == 200 and confirmed.json()["confirmed"] is True
    # The first factor comes with the user's first recovery codes (tests/e2e/
    # test_account_security.py has the rest).
    assert len(confirmed.json()["recovery_codes"]) == 10
    assert h.totp_seed(user.id) == body["secret"]
    # Confirming did not make the caller's token MFA-verified: only a sign-in does.
    record = h.run(h.store.get_access_token(hash_token(token), h.clock.now()))
    assert record.mfa_verified is False
    # The code used to confirm cannot be replayed at sign-in, a fresh one works.
    h.clock.advance(30)
    assert full_flow(h, totp_secret=body["secret"])["access_token"]


@pytest.mark.parametrize("scope", ["openid read", "openid profile email offline_access"])
def test_a_token_without_the_mfa_scope_cannot_enrol_a_seed(h: Harness, scope: str) -> None:
    # The attack: a token with scope read, from any client, enrolled the attacker's seed,
    # and the victim's next sign-in demanded it.
    user = h.add_user()
    any_token = full_flow(h, scope=scope)["access_token"]
    refused = _register(h, any_token)
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
    challenge = refused.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="mfa"' in challenge
    legitimate = _register(h, _mfa_token(h)).json()
    stolen = _verify(h, any_token, legitimate["enrollment"],
                     pyotp.TOTP(legitimate["secret"]).at(h.clock.now()))
    assert stolen.status_code == 403 and stolen.json()["error"] == "insufficient_scope"
    assert h.run(h.store.get_credentials(user.id)).totp_secret is None
    assert not _asks_for_a_code(h)


def test_a_token_from_an_old_sign_in_must_sign_in_again(h: Harness) -> None:
    user = h.add_user()
    body = full_flow(h, scope=MFA)
    pending = _register(h, body["access_token"]).json()
    h.clock.advance(RECENT_AUTH_SECONDS + 1)
    for response in (_register(h, body["access_token"]),
                     _verify(h, body["access_token"], pending["enrollment"],
                             pyotp.TOTP(pending["secret"]).at(h.clock.now()))):
        assert response.status_code == 401
        assert response.json()["error"] == "insufficient_user_authentication"
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_user_authentication"' in challenge
        assert f'max_age="{RECENT_AUTH_SECONDS}"' in challenge
    # Refreshing keeps the sign-in's auth_time: the new token is no fresher.
    refreshed = h.client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"],
        "client_id": PUBLIC_ID})
    assert refreshed.status_code == 200, refreshed.text
    assert _register(h, refreshed.json()["access_token"]).status_code == 401
    assert h.run(h.store.get_credentials(user.id)).totp_secret is None
    # Signing in again does it.
    assert _enrol(h, _mfa_token(h))


def test_mfa_recent_auth_seconds_sets_how_recent_the_sign_in_must_be(tmp_path: Path) -> None:
    with harness(tmp_path, MFA_RECENT_AUTH_SECONDS="60") as h:
        h.add_user()
        token = _mfa_token(h)
        h.clock.advance(60)
        assert _register(h, token).status_code == 200
        h.clock.advance(1)
        refused = _register(h, token)
        assert refused.status_code == 401 and 'max_age="60"' in refused.headers["www-authenticate"]


def test_an_abandoned_re_enrolment_keeps_the_old_factor_required(h: Harness) -> None:
    h.add_user()
    old = _enrol(h, _mfa_token(h))
    h.clock.advance(30)
    with_mfa = _mfa_token(h, totp_secret=old)
    h.clock.advance(30)
    pending = _register(h, with_mfa, pyotp.TOTP(old).at(h.clock.now()))
    assert pending.status_code == 200
    new = pending.json()["secret"]
    h.clock.advance(30)
    # The password alone still leads to the code page, not to a code.
    page = h.client.get("/oauth/authorize", params=auth_params(prompt="login"))
    asked = submit(h.client, page, username="alice", password=PASSWORD)
    assert asked.status_code == 200 and 'name="code"' in asked.text
    # The new, unconfirmed secret's code is refused; the old secret's code still signs in.
    refused = submit(h.client, asked, code=pyotp.TOTP(new).at(h.clock.now()))
    assert refused.status_code == 200 and "location" not in refused.headers
    h.clock.advance(30)
    assert full_flow(h, totp_secret=old)["access_token"]


def test_replacing_a_confirmed_factor_needs_a_code_of_it(h: Harness) -> None:
    user = h.add_user(totp_secret=OLD)
    # Even a token from a sign-in that proved the factor is not enough on its own.
    with_mfa = _mfa_token(h, totp_secret=OLD)
    h.clock.advance(30)
    missing = _register(h, with_mfa)
    assert missing.status_code == 409 and missing.json()["error"] == "factor_already_active"
    assert "current_code" in missing.json()["error_description"]
    wrong = _register(h, with_mfa, "000000")
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_code"
    current = pyotp.TOTP(OLD).at(h.clock.now())
    as_form = h.client.post("/mfa/totp/register", headers=_bearer(with_mfa),
                            data={"current_code": current})
    assert as_form.status_code == 200, as_form.text
    # The current code was claimed: it cannot be used again, to register or to sign in.
    replay = _register(h, with_mfa, current)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_code"
    assert h.totp_seed(user.id) == OLD
    # Codes are claimed per user and time step, so the next code comes from the next step.
    h.clock.advance(30)
    new_code = pyotp.TOTP(as_form.json()["secret"]).at(h.clock.now())
    assert _verify(h, with_mfa, as_form.json()["enrollment"], new_code).status_code == 200
    assert h.totp_seed(user.id) == as_form.json()["secret"]
    h.clock.advance(30)
    page = h.client.get("/oauth/authorize", params=auth_params(prompt="login"))
    asked = submit(h.client, page, username="alice", password=PASSWORD)
    stale = submit(h.client, asked, code=pyotp.TOTP(OLD).at(h.clock.now()))
    assert stale.status_code == 200 and "location" not in stale.headers
    assert full_flow(h, totp_secret=as_form.json()["secret"])["access_token"]


def test_an_enrolment_from_before_the_factor_cannot_replace_it(h: Harness) -> None:
    user = h.add_user()
    token = _mfa_token(h)
    early = _register(h, token).json()  # made before the factor existed
    secret = _enrol(h, token)
    late = _verify(h, token, early["enrollment"], pyotp.TOTP(early["secret"]).at(h.clock.now()))
    assert late.status_code == 409 and late.json()["error"] == "factor_already_active"
    assert h.totp_seed(user.id) == secret


def test_a_code_used_for_confirmation_cannot_be_replayed(h: Harness) -> None:
    h.add_user()
    token = _mfa_token(h)
    body = _register(h, token).json()
    code = pyotp.TOTP(body["secret"]).at(h.clock.now())
    assert _verify(h, token, body["enrollment"], code).status_code == 200
    replay = _verify(h, token, body["enrollment"], code)
    assert replay.status_code == 409 and replay.json()["error"] == "factor_already_active"
    h.clock.advance(1)
    page = h.client.get("/oauth/authorize", params=auth_params(prompt="login"))
    asked = submit(h.client, page, username="alice", password=PASSWORD)
    at_sign_in = submit(h.client, asked, code=code)
    assert at_sign_in.status_code == 200 and "location" not in at_sign_in.headers


def _tamper(enrollment: str) -> str:
    parts = enrollment.split(".")
    parts[3] = ("A" if parts[3][0] != "A" else "B") + parts[3][1:]
    return ".".join(parts)


def test_tampered_expired_and_other_users_enrolments_are_refused(h: Harness) -> None:
    alice = h.add_user()
    h.add_user("bob", email="bob@example.test")
    alice_token = _mfa_token(h)
    body = _register(h, alice_token).json()
    code = pyotp.TOTP(body["secret"]).at(h.clock.now())

    tampered = _verify(h, alice_token, _tamper(body["enrollment"]), code)
    assert tampered.status_code == 400 and tampered.json()["error"] == "invalid_enrollment"

    bob_token = _bob_token(h)
    foreign = _verify(h, bob_token, body["enrollment"], code)
    assert foreign.status_code == 400 and foreign.json()["error"] == "invalid_enrollment"
    assert "another user" in foreign.json()["error_description"]

    h.clock.advance(ENROLMENT_SECONDS)
    expired = _verify(h, _mfa_token(h), body["enrollment"],
                      pyotp.TOTP(body["secret"]).at(h.clock.now()))
    assert expired.status_code == 400 and "expired" in expired.json()["error_description"]
    assert h.run(h.store.get_credentials(alice.id)).totp_secret is None


def _bob_token(h: Harness) -> str:
    verifier, challenge = pkce_pair()
    params = redirect_params(sign_in(h, auth_params(code_challenge=challenge, scope=MFA),
                                     username="bob"))
    token: str = exchange(h, params["code"], verifier).json()["access_token"]
    return token


def test_wrong_codes_at_verify_are_throttled(h: Harness) -> None:
    h.add_user()
    token = _mfa_token(h)
    body = _register(h, token).json()
    for _ in range(VERIFY_LIMIT):
        assert _verify(h, token, body["enrollment"], "000000").status_code == 400
    throttled = _verify(h, token, body["enrollment"],
                        pyotp.TOTP(body["secret"]).at(h.clock.now()))
    assert throttled.status_code == 429 and throttled.json()["error"] == "too_many_attempts"
    assert int(throttled.headers["retry-after"]) > 0


def test_wrong_current_codes_at_register_are_throttled(h: Harness) -> None:
    h.add_user(totp_secret=OLD)
    token = _mfa_token(h, totp_secret=OLD)
    h.clock.advance(30)
    for _ in range(VERIFY_LIMIT):
        assert _register(h, token, "000000").status_code == 400
    throttled = _register(h, token, pyotp.TOTP(OLD).at(h.clock.now()))
    assert throttled.status_code == 429 and throttled.json()["error"] == "too_many_attempts"
    assert int(throttled.headers["retry-after"]) > 0


@pytest.mark.parametrize("fields", [{}, {"code": "123456"}, {"enrollment": "x"}])
def test_verify_without_enrollment_or_code_is_a_bad_request(
    h: Harness, fields: dict[str, str]
) -> None:
    h.add_user()
    token = _mfa_token(h)
    response = h.client.post("/mfa/totp/verify", headers=_bearer(token), json=fields)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_the_openapi_document_shows_the_enrollment_fields(h: Harness) -> None:
    paths = h.client.get("/schema/openapi.json").json()["paths"]
    verify = paths["/mfa/totp/verify"]["post"]
    body = verify["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["enrollment", "code"]
    register = paths["/mfa/totp/register"]["post"]
    assert register["responses"]["200"]["content"]["application/json"]["schema"][
        "$ref"].endswith("/TotpRegistration")
    register_body = register["requestBody"]
    assert register_body["required"] is False
    assert "current_code" in register_body["content"]["application/json"]["schema"][
        "properties"]


@pytest.mark.parametrize("path", ["/mfa/totp/register", "/mfa/totp/verify"])
def test_a_bearer_token_of_a_user_is_required(h: Harness, path: str) -> None:
    missing = h.client.post(path, json={"code": "123456"})
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    bad = h.client.post(path, headers=_bearer("tk_forged"), json={"code": "123456"})
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]


def _key(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_text(new_key_text())
    return str(path)


def test_seeds_are_sealed_under_the_sealing_key_file_and_survive_a_rotation(
    tmp_path: Path,
) -> None:
    first, second = _key(tmp_path, "first.key"), _key(tmp_path, "second.key")
    with harness(tmp_path, SEALING_KEY_FILE=first) as h:
        user = h.add_user()
        secret = _enrol(h, _mfa_token(h))
        stored = h.run(h.store.get_credentials(user.id)).totp_secret
        assert secret not in stored
        from_file = AesGcmSecretSealer.from_key_files([first])
        assert from_file.open(stored, f"totp:{user.id}").plaintext == secret
        store, clock = h.store, h.clock
    clock.advance(30)
    # A key that is not configured cannot open it: the sign-in fails closed.
    with harness(tmp_path, store=store, clock=clock, SEALING_KEY_FILE=second) as other:
        page = other.client.get("/oauth/authorize", params=auth_params())
        asked = submit(other.client, page, username="alice", password=PASSWORD)
        refused = submit(other.client, asked, code=pyotp.TOTP(secret).at(clock.now()))
        assert refused.status_code == 200 and "location" not in refused.headers
        assert "totp_seed_unreadable" in other.events.names()
    # Rotation: the new key first, the old one still listed; a sign-in seals it again.
    clock.advance(30)
    with harness(tmp_path, store=store, clock=clock,
                 SEALING_KEY_FILE=f"{second},{first}") as rotated:
        assert full_flow(rotated, totp_secret=secret)["access_token"]
        resealed = rotated.run(store.get_credentials(user.id)).totp_secret
        assert f".{AesGcmSecretSealer.from_key_files([second]).current_key_id}." in resealed
        assert f".{AesGcmSecretSealer.from_key_files([first]).current_key_id}." not in resealed
    # The first key can now be retired.
    clock.advance(30)
    with harness(tmp_path, store=store, clock=clock, SEALING_KEY_FILE=second) as retired:
        assert full_flow(retired, totp_secret=secret)["access_token"]


def test_a_clear_seed_stored_by_an_earlier_version_still_signs_in_and_is_sealed(
    h: Harness,
) -> None:
    user = h.add_user()
    h.run(h.store.set_totp(user.id, OLD, confirmed=True))
    assert full_flow(h, totp_secret=OLD)["access_token"]
    stored = h.run(h.store.get_credentials(user.id)).totp_secret
    assert stored != OLD and OLD not in stored
    assert h.totp_seed(user.id) == OLD

"""The admin API's account operations (issue 17, item 5) on each backend:
``/admin/users/{id}/passkeys`` (list, remove), ``/admin/users/{id}/mfa/reset`` and
``/admin/users/{id}/email/verify``: authorization (the ``admin`` service scope on a
client's own token only), 404s, a passkey of another user out of reach, the reset ending
sessions and tokens, and one security event per change naming the admin client.

The sql variants need the sql adapter's passkey, recovery-code and verified-email methods
(branch st-sql): they fail with AttributeError until it is merged.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.email_verification import email_verified
from domain.entities import AccessToken, Email, Passkey, User
from domain.recovery import recovery_code_hash
from domain.tokens import hash_token, token_display
from entrypoints.logging import configure_logging
from entrypoints.settings import load_settings
from tests.e2e.admin_support import (
    ADMIN_ID,
    ENV_ID,
    ENV_SECRET,
    PUBLIC_REDIRECT,
    AdminApp,
    admin_app,
)
from tests.e2e.conftest import StoreBackend
from tests.e2e.session_support import (
    refresh,
    session_of,
    sign_in_browser,
    tokens_in_session,
)

INTERNAL = ("asyncpg", "sqlalchemy", "redis", "Traceback", "domain.", "adapters.")
APP = {"client_id": "app", "token_endpoint_auth_method": "none",
       "redirect_uris": [PUBLIC_REDIRECT], "grant_types": ["authorization_code",
                                                           "refresh_token"],
       "scope": "openid offline_access", "first_party": True}


@pytest.fixture
def a(store: StoreBackend, tmp_path: Path) -> Iterator[AdminApp]:
    with admin_app(store, tmp_path) as running:
        yield running


@pytest.fixture
def logs(a: AdminApp) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging(load_settings({"LOG_FORMAT": "json"}), stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def events(logs: io.StringIO, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    return [line for line in lines
            if line.get("logger") == "auth_service.events" and line.get("event") == name]


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code, body
    assert set(body) == {"error", "error_description"}
    for internal in INTERNAL:
        assert internal not in response.text
    description: str = body["error_description"]
    return description


def user(a: AdminApp, name: str, *emails: Email) -> User:
    created: User = a.call(a.store.create_user, User(user_name=name, emails=emails))
    return created


def passkey(a: AdminApp, owner: User, credential_id: str, *, name: str = "Laptop",
            synced: bool = False, transports: tuple[str, ...] = ("internal",)) -> Passkey:
    key = Passkey(credential_id=credential_id, user_id=owner.id, public_key="pQECAyYgAS" * 8,
                  sign_count=7, transports=transports, name=name, synced=synced,
                  created_at=a.clock.now(), last_used_at=None)
    a.call(a.store.add_passkey, key)
    a.clock.advance(1)  # the next one is younger: list order is by created_at
    return key


def credential_ids(a: AdminApp, owner: User) -> list[str]:
    return [p.credential_id for p in a.call(a.store.list_passkeys, owner.id)]


def user_token(a: AdminApp, sub: str = "user-1") -> str:
    """A live token of a user carrying ``admin``: no service guard may accept it."""
    value = "tk_" + sub[:8].ljust(43, "u")
    now = a.clock.now()
    a.call(a.store.save_tokens, AccessToken(
        token_hash=hash_token(value), token_display=token_display(value), active=True,
        scope="openid admin", client_id=ADMIN_ID, exp=now + 600, iat=now, sub=sub),
        None, now)
    return value


# Authorization


def test_every_endpoint_needs_the_admin_scope_on_a_clients_own_token(a: AdminApp) -> None:
    alice = user(a, "alice", Email(value="alice@example.com", primary=True))
    key = passkey(a, alice, "Y3JlZC1h")
    a.call(a.store.set_totp, alice.id, "SEED", confirmed=True)
    read_only = a.client_token(ENV_ID, ENV_SECRET, "read").json()["access_token"]
    calls = (("GET", f"/admin/users/{alice.id}/passkeys"),
             ("DELETE", f"/admin/users/{alice.id}/passkeys/{key.credential_id}"),
             ("POST", f"/admin/users/{alice.id}/mfa/reset"),
             ("POST", f"/admin/users/{alice.id}/email/verify"))
    for method, path in calls:
        for headers, status, code in (
            ({}, 401, "invalid_token"),
            ({"Authorization": "Bearer tk_nope"}, 401, "invalid_token"),
            ({"Authorization": f"Bearer {user_token(a)}"}, 403, "insufficient_scope"),
            ({"Authorization": f"Bearer {read_only}"}, 403, "insufficient_scope"),
        ):
            response = a.client.request(method, path, headers=headers)
            error(response, status, code)
            assert response.headers["www-authenticate"].startswith('Bearer realm="admin"')
    # Nothing changed.
    assert credential_ids(a, alice) == [key.credential_id]
    credentials = a.call(a.store.get_credentials, alice.id)
    assert credentials.totp_confirmed and credentials.verified_email is None


# Passkeys


def test_a_users_passkeys_are_listed_oldest_first_without_their_public_keys(
    a: AdminApp,
) -> None:
    alice, bob = user(a, "alice"), user(a, "bob")
    laptop = passkey(a, alice, "bGFwdG9w", name="Laptop", transports=("internal", "hybrid"))
    phone = passkey(a, alice, "cGhvbmU", name="Phone", synced=True, transports=())
    passkey(a, bob, "Ym9icw")
    response = a.client.get(f"/admin/users/{alice.id}/passkeys", headers=a.admin())
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["user_id"] == alice.id
    assert body["passkeys"] == [
        {"credential_id": laptop.credential_id, "name": "Laptop",
         "created_at": laptop.created_at, "last_used_at": None, "synced": False,
         "transports": ["internal", "hybrid"], "sign_count": 7},
        {"credential_id": phone.credential_id, "name": "Phone",
         "created_at": phone.created_at, "last_used_at": None, "synced": True,
         "transports": [], "sign_count": 7},
    ]
    assert laptop.public_key not in response.text and "public_key" not in response.text
    none = a.client.get(f"/admin/users/{user(a, 'carol').id}/passkeys", headers=a.admin())
    assert none.status_code == 200 and none.json()["passkeys"] == []


def test_removing_a_passkey_keeps_the_others_and_the_sessions(
    a: AdminApp, logs: io.StringIO
) -> None:
    alice = user(a, "alice")
    laptop, phone = passkey(a, alice, "bGFwdG9w"), passkey(a, alice, "cGhvbmU")
    a.call(a.store.replace_recovery_codes, alice.id, [recovery_code_hash("aaaa-bbbb")])
    _, session = sign_in_browser(a.client, alice.id, amr=("hwk", "mfa"))
    response = a.client.delete(f"/admin/users/{alice.id}/passkeys/{laptop.credential_id}",
                               headers=a.admin())
    assert response.status_code == 204, response.text
    assert response.headers["cache-control"] == "no-store"
    assert credential_ids(a, alice) == [phone.credential_id]
    # Another passkey is left: the recovery codes still stand in for it; the session goes on.
    assert a.call(a.store.count_recovery_codes, alice.id) == 1
    assert session_of(a.client, session.id_hash) is not None
    (event,) = events(logs, "admin_passkey_removed")
    assert event["actor"] == ADMIN_ID and event["user_id"] == alice.id
    assert event["credential_id"] == laptop.credential_id and event["passkeys_left"] == 1
    again = a.client.delete(f"/admin/users/{alice.id}/passkeys/{laptop.credential_id}",
                            headers=a.admin())
    error(again, 404, "not_found")


def test_the_last_second_factor_takes_the_recovery_codes_with_it(
    a: AdminApp, logs: io.StringIO
) -> None:
    alice = user(a, "alice")
    only = passkey(a, alice, "b25seQ")
    a.call(a.store.replace_recovery_codes, alice.id,
           [recovery_code_hash("aaaa-bbbb"), recovery_code_hash("cccc-dddd")])
    response = a.client.delete(f"/admin/users/{alice.id}/passkeys/{only.credential_id}",
                               headers=a.admin())
    assert response.status_code == 204, response.text
    assert credential_ids(a, alice) == []
    assert a.call(a.store.count_recovery_codes, alice.id) == 0
    (event,) = events(logs, "admin_passkey_removed")
    assert event["passkeys_left"] == 0 and event["recovery_codes_removed"] == 2


def test_a_confirmed_totp_seed_keeps_the_recovery_codes(a: AdminApp) -> None:
    alice = user(a, "alice")
    only = passkey(a, alice, "b25seQ")
    a.call(a.store.set_totp, alice.id, "SEED", confirmed=True)
    a.call(a.store.replace_recovery_codes, alice.id, [recovery_code_hash("aaaa-bbbb")])
    response = a.client.delete(f"/admin/users/{alice.id}/passkeys/{only.credential_id}",
                               headers=a.admin())
    assert response.status_code == 204, response.text
    assert a.call(a.store.count_recovery_codes, alice.id) == 1


def test_another_users_passkey_cannot_be_removed_through_this_users_path(
    a: AdminApp, logs: io.StringIO
) -> None:
    alice, bob = user(a, "alice"), user(a, "bob")
    bobs = passkey(a, bob, "Ym9icw")
    response = a.client.delete(f"/admin/users/{alice.id}/passkeys/{bobs.credential_id}",
                               headers=a.admin())
    error(response, 404, "not_found")
    assert credential_ids(a, bob) == [bobs.credential_id]
    assert events(logs, "admin_passkey_removed") == []


def test_unknown_users_and_passkeys_are_404(a: AdminApp) -> None:
    admin = a.admin()
    alice = user(a, "alice")
    error(a.client.get("/admin/users/no-such-user/passkeys", headers=admin), 404, "not_found")
    for path in ("/admin/users/no-such-user/passkeys/Y3JlZA",
                 f"/admin/users/{alice.id}/passkeys/bm8tc3VjaC1rZXk"):
        error(a.client.delete(path, headers=admin), 404, "not_found")
    error(a.client.post("/admin/users/no-such-user/mfa/reset", headers=admin), 404,
          "not_found")
    error(a.client.post("/admin/users/no-such-user/email/verify", headers=admin), 404,
          "not_found")


def test_ids_no_user_or_passkey_can_have_are_400(a: AdminApp) -> None:
    admin = a.admin()
    alice = user(a, "alice")
    for bad in ("nul%00id", "u" * 256):
        error(a.client.get(f"/admin/users/{bad}/passkeys", headers=admin), 400,
              "invalid_request")
        error(a.client.post(f"/admin/users/{bad}/mfa/reset", headers=admin), 400,
              "invalid_request")
    for bad in ("not+base64url", "nul%00", "A" * 1365):
        error(a.client.delete(f"/admin/users/{alice.id}/passkeys/{bad}", headers=admin), 400,
              "invalid_request")


# MFA reset


def test_the_reset_removes_every_factor_and_ends_sessions_and_tokens(
    a: AdminApp, logs: io.StringIO
) -> None:
    a.create(**APP)
    alice, bob = user(a, "alice"), user(a, "bob")
    a.call(a.store.set_totp, alice.id, "SEED", confirmed=True)
    passkey(a, alice, "bGFwdG9w")
    passkey(a, alice, "cGhvbmU")
    bobs = passkey(a, bob, "Ym9icw")
    a.call(a.store.replace_recovery_codes, alice.id,
           [recovery_code_hash(f"aaaa-bbb{c}") for c in "abc"])
    _, session = sign_in_browser(a.client, alice.id, amr=("pwd", "otp", "mfa"))
    issued = tokens_in_session(a.client, session, "app", PUBLIC_REDIRECT)
    _, bobs_session = sign_in_browser(a.client, bob.id)
    # A token outside any session (ending the session revokes the one issued in it).
    outside = user_token(a, sub=alice.id)
    bearer = {"Authorization": f"Bearer {issued.body['access_token']}"}
    assert a.client.get("/oauth/userinfo", headers=bearer).status_code == 200
    response = a.client.post(f"/admin/users/{alice.id}/mfa/reset", headers=a.admin())
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "user_id": alice.id, "totp_removed": True, "passkeys_removed": 2,
        "recovery_codes_removed": 3, "sessions_ended": 1, "tokens_revoked": 1}
    credentials = a.call(a.store.get_credentials, alice.id)
    assert credentials.totp_secret is None and not credentials.totp_confirmed
    assert credential_ids(a, alice) == []
    assert a.call(a.store.count_recovery_codes, alice.id) == 0
    # Alice's session and tokens are gone; Bob keeps his.
    assert session_of(a.client, session.id_hash) is None
    assert session_of(a.client, bobs_session.id_hash) is not None
    assert credential_ids(a, bob) == [bobs.credential_id]
    assert a.client.get("/oauth/userinfo", headers=bearer).status_code == 401
    assert refresh(a.client, "app", issued.refresh_token).status_code == 400
    assert a.call(a.store.get_access_token, hash_token(outside), a.clock.now()).active is False
    (event,) = events(logs, "admin_mfa_reset")
    assert event["actor"] == ADMIN_ID and event["user_id"] == alice.id
    assert event["passkeys_removed"] == 2 and event["recovery_codes_removed"] == 3
    assert event["totp_removed"] is True and event["sessions_ended"] == 1
    assert [e["reason"] for e in events(logs, "session_ended")] == ["mfa_reset"]


def test_resetting_a_user_without_factors_reports_nothing_removed(a: AdminApp) -> None:
    alice = user(a, "alice")
    response = a.client.post(f"/admin/users/{alice.id}/mfa/reset", headers=a.admin())
    assert response.status_code == 200, response.text
    assert response.json() == {
        "user_id": alice.id, "totp_removed": False, "passkeys_removed": 0,
        "recovery_codes_removed": 0, "sessions_ended": 0, "tokens_revoked": 0}


# Email verification


def test_marking_the_primary_email_verified(a: AdminApp, logs: io.StringIO) -> None:
    alice = user(a, "alice", Email(value="old@example.com"),
                 Email(value="Alice@Example.com", primary=True))
    response = a.client.post(f"/admin/users/{alice.id}/email/verify", headers=a.admin())
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": alice.id, "email": "Alice@Example.com",
                               "email_verified": True, "already_verified": False}
    credentials = a.call(a.store.get_credentials, alice.id)
    assert credentials.verified_email == "alice@example.com"
    assert email_verified(alice, credentials)
    again = a.client.post(f"/admin/users/{alice.id}/email/verify", headers=a.admin())
    assert again.status_code == 200 and again.json()["already_verified"] is True
    first, second = events(logs, "admin_email_verified")
    assert first["actor"] == ADMIN_ID and first["user_id"] == alice.id
    assert first["already"] is False and second["already"] is True
    assert "Alice@Example.com" not in logs.getvalue()


def test_a_user_without_email_is_409(a: AdminApp, logs: io.StringIO) -> None:
    alice = user(a, "alice")
    response = a.client.post(f"/admin/users/{alice.id}/email/verify", headers=a.admin())
    assert "no email" in error(response, 409, "conflict")
    assert a.call(a.store.get_credentials, alice.id).verified_email is None
    assert events(logs, "admin_email_verified") == []


def test_the_endpoints_are_in_the_openapi_document(a: AdminApp) -> None:
    paths = a.client.get("/schema/openapi.json").json()["paths"]
    base = "/admin/users/{user_id}"
    assert paths[f"{base}/passkeys"]["get"]["operationId"] == "listUserPasskeys"
    assert (paths[f"{base}/passkeys/{{credential_id}}"]["delete"]["operationId"]
            == "deleteUserPasskey")
    assert paths[f"{base}/mfa/reset"]["post"]["operationId"] == "resetUserMfa"
    assert paths[f"{base}/email/verify"]["post"]["operationId"] == "verifyUserEmail"
    for path in (f"{base}/passkeys", f"{base}/mfa/reset"):
        assert "admin" in next(iter(paths[path].values()))["tags"]

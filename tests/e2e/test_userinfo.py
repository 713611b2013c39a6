"""GET/POST /oauth/userinfo: claims by scope, bearer from header or form, RFC 6750 errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from domain.tokens import hash_token
from tests.e2e.signin_flow import Harness, full_flow, harness


@pytest.fixture
def h(tmp_path: Path) -> Any:
    with harness(tmp_path) as running:
        yield running


def _token(h: Harness, scope: str) -> str:
    h.add_user()
    token: str = full_flow(h, scope=scope)["access_token"]
    return token


def test_claims_follow_the_scope(h: Harness) -> None:
    token = _token(h, "openid profile email")
    response = h.client.get("/oauth/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    user = h.run(h.store.find_user_by_name("alice"))
    assert response.json() == {
        "sub": user.id, "preferred_username": "alice", "name": "Alice Doe",
        "email": "alice@example.test", "email_verified": False,
    }


def test_openid_alone_gives_only_sub(h: Harness) -> None:
    token = _token(h, "openid")
    body = h.client.get("/oauth/userinfo", headers={"Authorization": f"Bearer {token}"}).json()
    assert list(body) == ["sub"]


def test_profile_without_email(h: Harness) -> None:
    token = _token(h, "openid profile")
    body = h.client.get("/oauth/userinfo", headers={"Authorization": f"Bearer {token}"}).json()
    assert set(body) == {"sub", "preferred_username", "name"}


def test_token_in_a_form_body(h: Harness) -> None:
    token = _token(h, "openid email")
    response = h.client.post("/oauth/userinfo", data={"access_token": token})
    assert response.status_code == 200 and response.json()["email"] == "alice@example.test"


def test_token_in_both_header_and_body_is_a_bad_request(h: Harness) -> None:
    token = _token(h, "openid")
    response = h.client.post("/oauth/userinfo", data={"access_token": token},
                             headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "authorization", ["Bearer tk_unknown", "Bearer nonsense", "Bearer " + "x" * 600]
)
def test_bad_token_gets_401_with_invalid_token(h: Harness, authorization: str) -> None:
    response = h.client.get("/oauth/userinfo", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="auth-service"')
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["error"] == "invalid_token"


def test_no_token_gets_401_with_a_bare_challenge(h: Harness) -> None:
    response = h.client.get("/oauth/userinfo")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="auth-service"'


def test_revoked_and_expired_tokens_are_invalid(h: Harness) -> None:
    token = _token(h, "openid")
    h.run(h.store.revoke_access_token(hash_token(token), h.clock.now()))
    assert h.client.get("/oauth/userinfo",
                        headers={"Authorization": f"Bearer {token}"}).status_code == 401
    token = full_flow(h, scope="openid")["access_token"]
    h.clock.advance(3600)
    assert h.client.get("/oauth/userinfo",
                        headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_token_without_openid_is_insufficient_scope(h: Harness) -> None:
    token = _token(h, "read")
    response = h.client.get("/oauth/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_inactive_user_gets_401(h: Harness) -> None:
    token = _token(h, "openid")
    user = h.run(h.store.find_user_by_name("alice"))
    h.run(h.store.replace_user(msgspec.structs.replace(user, active=False)))
    response = h.client.get("/oauth/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401

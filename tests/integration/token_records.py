"""Token-state records (and browser sessions) for the Redis integration tests (single Redis
and Cluster).

Real time: these tests look at real Redis TTLs.
"""

from __future__ import annotations

import time

from domain.device import DeviceAuthorization
from domain.entities import (
    AccessToken,
    AccountToken,
    AccountTokenKind,
    AuthorizationCode,
    RefreshToken,
)
from domain.sessions import Session
from domain.tokens import hash_token


def now() -> int:
    return int(time.time())


def code(name: str, exp: int, grant_id: str = "grant-c") -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=hash_token(name), client_id="client-1", redirect_uri="https://app/cb",
        scope="openid", exp=exp, grant_id=grant_id, user_id="user-1",
    )


def access(
    name: str, now: int, ttl: int = 3600, *, grant_id: str | None = "grant-1",
    sub: str | None = "user-1",
) -> AccessToken:
    return AccessToken(
        token_hash=hash_token(name), token_display=name[:7] + "...", active=True,
        scope="openid", client_id="client-1", exp=now + ttl, iat=now, sub=sub,
        grant_id=grant_id,
    )


def refresh(name: str, access: AccessToken, now: int, ttl: int = 86400) -> RefreshToken:
    assert access.grant_id is not None
    return RefreshToken(
        token_hash=hash_token(name), access_token_hash=access.token_hash, exp=now + ttl,
        iat=now, grant_id=access.grant_id, client_id=access.client_id, scope=access.scope,
        sub=access.sub,
    )


def session(
    name: str, now: int, *, idle: int = 600, max_age: int = 3600, user_id: str = "user-1"
) -> Session:
    """A live session opened at ``now``, idle after ``idle`` s, ended after ``max_age`` s."""
    return Session(
        id_hash=hash_token(name), sid=f"sid_{name}", user_id=user_id, auth_time=now,
        amr=("pwd",), acr="pwd", created_at=now, idle_exp=now + idle, exp=now + max_age,
    )


def device(name: str, now: int, ttl: int = 600) -> DeviceAuthorization:
    """A pending device authorization whose codes are ``dc_<name>`` and ``uc_<name>``."""
    return DeviceAuthorization(
        device_code_hash=hash_token(f"dc_{name}"), user_code_hash=hash_token(f"uc_{name}"),
        client_id="tv", scope="openid offline_access", exp=now + ttl, interval=5,
        created_at=now,
    )


def account_token(
    name: str, now: int, ttl: int = 1800, *, kind: AccountTokenKind = "password_reset",
    user_id: str = "user-1",
) -> AccountToken:
    """A mailed link of ``user_id`` whose secret is ``lk_<name>``."""
    return AccountToken(
        token_hash=hash_token(f"lk_{name}"), kind=kind, user_id=user_id,
        email=f"{user_id}@example.com", created_at=now, exp=now + ttl,
    )

"""TOTP seeds at rest on PostgreSQL: what a database dump holds, and ``user reset-mfa``.

The enrolment runs through the use cases on a real ``SqlStore``; the test then reads the
rows with plain SQL, as someone holding only a dump (or a read-only connection) would.
"""

from __future__ import annotations

import asyncio
import base64
import os

import pyotp
import pytest
import sqlalchemy as sa

from adapters.sealed_state import JoseSealer
from adapters.secret_sealing import AesGcmSecretSealer
from adapters.sql import SqlStore, open_sql_store
from adapters.totp import PyotpTotp
from domain.entities import AccessToken, User
from domain.mfa import RECENT_AUTH_SECONDS, confirm_totp, register_totp
from domain.signin import TotpAccepted, check_totp
from domain.tokens import hash_token
from entrypoints.cli import main
from ports.sealing import UnreadableSecret
from tests.doubles import RecordingEvents
from tests.services.postgres_server import empty_migrated_database

pytestmark = pytest.mark.postgres

NOW = 1_700_000_010
TOTP = PyotpTotp()
SEEDS = AesGcmSecretSealer([os.urandom(32)])


def _token(user: User) -> AccessToken:
    return AccessToken(
        token_hash=hash_token(f"tk_{user.id}"), token_display="tk_x...", active=True,
        scope="openid mfa", client_id="app", exp=NOW + 3600, iat=NOW, sub=user.id,
        auth_time=NOW)


async def _enrol(store: SqlStore, user: User) -> str:
    sealer = JoseSealer(os.urandom(32))
    enrolment = await register_totp(
        store, TOTP, sealer, SEEDS, caller=_token(user), issuer="iss", current_code=None,
        recent_auth_seconds=RECENT_AUTH_SECONDS, now=NOW)
    assert await confirm_totp(
        store, TOTP, sealer, SEEDS, RecordingEvents(), caller=_token(user),
        enrollment=enrolment.enrollment,
        code=pyotp.TOTP(enrolment.secret).at(NOW), recent_auth_seconds=RECENT_AUTH_SECONDS,
        now=NOW)
    return enrolment.secret


async def _dump(store: SqlStore) -> str:
    """Every row of every table, as text: what ``pg_dump --data-only`` would show."""
    async with store._engine.connect() as conn:
        tables = (await conn.execute(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))).scalars()
        rows = []
        for table in list(tables):
            rows += (await conn.execute(sa.text(f'SELECT t::text FROM "{table}" t'))).scalars()
    return "\n".join(rows)


async def _raw_seed(store: SqlStore, user_id: str) -> str:
    async with store._engine.connect() as conn:
        value: str = (await conn.execute(
            sa.text("SELECT totp_secret FROM user_credentials WHERE user_id = :id"),
            {"id": user_id})).scalar_one()
    return value


async def test_the_raw_row_holds_a_sealed_seed_that_a_dump_alone_cannot_open() -> None:
    store = await open_sql_store(await empty_migrated_database(), migrate=False, pool_size=2)
    try:
        user = await store.create_user(User(user_name="alice"))
        secret = await _enrol(store, user)
        raw = await _raw_seed(store, user.id)
        assert raw.startswith("sealed.v1.") and secret not in raw
        dump = await _dump(store)
        decoded_seed = base64.b32decode(secret).hex()
        for form in (secret, secret.lower(), decoded_seed):
            assert form not in dump
        with pytest.raises(UnreadableSecret):
            AesGcmSecretSealer([os.urandom(32)]).open(raw, f"totp:{user.id}")
        # With the key (outside the database), the sign-in works on the stored value.
        outcome = await check_totp(store, TOTP, RecordingEvents(), seeds=SEEDS,
                                   user_id=user.id, code=pyotp.TOTP(secret).at(NOW + 30),
                                   client_ip="ip", now=NOW + 30)
        assert outcome == TotpAccepted(user_id=user.id)
    finally:
        await store.close()


async def test_a_clear_seed_left_by_an_earlier_version_is_sealed_on_its_next_use() -> None:
    store = await open_sql_store(await empty_migrated_database(), migrate=False, pool_size=2)
    try:
        user = await store.create_user(User(user_name="alice"))
        secret = pyotp.random_base32()
        async with store._engine.begin() as conn:  # the row as an earlier version wrote it
            await conn.execute(sa.text(
                "INSERT INTO user_credentials (user_id, totp_secret, totp_confirmed) "
                "VALUES (:id, :secret, true)"), {"id": user.id, "secret": secret})
        outcome = await check_totp(store, TOTP, RecordingEvents(), seeds=SEEDS,
                                   user_id=user.id, code=pyotp.TOTP(secret).at(NOW),
                                   client_ip="ip", now=NOW)
        assert outcome == TotpAccepted(user_id=user.id)
        raw = await _raw_seed(store, user.id)
        assert secret not in raw and SEEDS.open(raw, f"totp:{user.id}").plaintext == secret
    finally:
        await store.close()


def test_reset_mfa_clears_the_factor_and_revokes_the_users_tokens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = asyncio.run(empty_migrated_database())
    now = NOW + 10_000_000  # the CLI reads the system clock

    async def prepare() -> User:
        store = await open_sql_store(url, migrate=False, pool_size=1)
        try:
            user = await store.create_user(User(user_name="alice"))
            await _enrol(store, user)
            token = AccessToken(
                token_hash=hash_token("tk_alice"), token_display="tk_a...", active=True,
                scope="openid", client_id="app", exp=now * 2, iat=NOW, sub=user.id)
            await store.save_tokens(token, None, NOW)
            return user
        finally:
            await store.close()

    async def state(user_id: str) -> tuple[str | None, bool]:
        store = await open_sql_store(url, migrate=False, pool_size=1)
        try:
            record = await store.get_access_token(hash_token("tk_alice"), NOW)
            assert record is not None
            return (await store.get_credentials(user_id)).totp_secret, record.active
        finally:
            await store.close()

    user = asyncio.run(prepare())
    monkeypatch.setenv("STORE_BACKEND", "sql")
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["user", "reset-mfa", "ALICE"]) == 0
    out = capsys.readouterr().out
    assert "MFA reset for alice" in out and ": TOTP factor, 0 passkey(s)" in out
    assert "1 token record(s) revoked" in out
    assert asyncio.run(state(user.id)) == (None, False)
    assert main(["user", "reset-mfa", "nobody"]) == 1
    assert "no user with the id or userName 'nobody'" in capsys.readouterr().err

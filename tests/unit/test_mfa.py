"""TOTP: the pyotp adapter (±1 step, malformed input) and the enrolment use cases."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from adapters.memory.store import MemoryStore
from adapters.totp import PyotpTotp
from domain.entities import User
from domain.mfa import (
    FactorAlreadyActive,
    NoPendingFactor,
    confirm_totp,
    register_totp,
    use_totp_code,
)

NOW = 1_700_000_010
SECRET = pyotp.random_base32()
TOTP = PyotpTotp()


def test_matching_step_accepts_one_step_either_side_only() -> None:
    step = NOW // 30
    for offset in (-1, 0, 1):
        code = pyotp.TOTP(SECRET).at(NOW + 30 * offset)
        assert TOTP.matching_step(SECRET, code, NOW) == step + offset
    for offset in (-2, 2):
        assert TOTP.matching_step(SECRET, pyotp.TOTP(SECRET).at(NOW + 30 * offset), NOW) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 456"])
def test_malformed_codes_never_match(code: str) -> None:
    assert TOTP.matching_step(SECRET, code, NOW) is None


def test_a_corrupt_seed_never_matches() -> None:
    assert TOTP.matching_step("not base32!", "123456", NOW) is None


def test_new_secrets_are_160_bit_base32_and_distinct() -> None:
    first, second = TOTP.new_secret(), TOTP.new_secret()
    assert first != second and len(first) == 32
    assert pyotp.TOTP(first).now().isdigit()


def test_provisioning_uri_names_account_and_issuer() -> None:
    uri = urlsplit(TOTP.provisioning_uri(SECRET, "alice", "https://id.example"))
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    query = parse_qs(uri.query)
    assert query["secret"] == [SECRET] and query["issuer"] == ["https://id.example"]


async def test_a_code_is_usable_once_until_it_expires() -> None:
    store = MemoryStore()
    code = pyotp.TOTP(SECRET).at(NOW)
    assert await use_totp_code(store, TOTP, "u1", SECRET, code, NOW)
    assert not await use_totp_code(store, TOTP, "u1", SECRET, code, NOW + 30)
    # Another user's identical code is independent.
    assert await use_totp_code(store, TOTP, "u2", SECRET, code, NOW)


async def _user(store: MemoryStore) -> User:
    return await store.create_user(User(user_name="alice"))


async def test_registered_factor_is_inactive_until_confirmed() -> None:
    store = MemoryStore()
    user = await _user(store)
    enrolment = await register_totp(store, TOTP, user_id=user.id, issuer="iss",
                                    mfa_verified=False)
    credentials = await store.get_credentials(user.id)
    assert credentials.totp_secret == enrolment.secret and not credentials.totp_confirmed
    assert "alice" in enrolment.otpauth_uri
    assert not await confirm_totp(store, TOTP, user_id=user.id, code="000000", now=NOW)
    assert not (await store.get_credentials(user.id)).totp_confirmed
    code = pyotp.TOTP(enrolment.secret).at(NOW)
    assert await confirm_totp(store, TOTP, user_id=user.id, code=code, now=NOW)
    assert (await store.get_credentials(user.id)).totp_confirmed


async def test_confirming_without_registration_raises() -> None:
    store = MemoryStore()
    user = await _user(store)
    with pytest.raises(NoPendingFactor):
        await confirm_totp(store, TOTP, user_id=user.id, code="123456", now=NOW)


async def test_a_confirmed_factor_is_replaced_only_from_an_mfa_verified_sign_in() -> None:
    store = MemoryStore()
    user = await _user(store)
    await store.set_totp(user.id, SECRET, confirmed=True)
    with pytest.raises(FactorAlreadyActive):
        await register_totp(store, TOTP, user_id=user.id, issuer="iss", mfa_verified=False)
    assert (await store.get_credentials(user.id)).totp_confirmed
    enrolment = await register_totp(store, TOTP, user_id=user.id, issuer="iss",
                                    mfa_verified=True)
    assert (await store.get_credentials(user.id)).totp_secret == enrolment.secret

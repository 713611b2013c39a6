"""TOTP: the pyotp adapter (±1 step, malformed input) and the enrolment use cases."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import msgspec
import pyotp
import pytest

from adapters.memory.store import MemoryStore
from adapters.sealed_state import JoseSealer
from adapters.totp import PyotpTotp
from domain.entities import User
from domain.mfa import (
    ENROLMENT_SECONDS,
    VERIFY_LIMIT,
    FactorAlreadyActive,
    InvalidEnrollment,
    TooManyCodes,
    TotpEnrolment,
    confirm_totp,
    register_totp,
    use_totp_code,
)

NOW = 1_700_000_010
SECRET = pyotp.random_base32()
TOTP = PyotpTotp()
SEALER = JoseSealer(os.urandom(32))


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


async def _user(store: MemoryStore, name: str = "alice") -> User:
    return await store.create_user(User(user_name=name))


async def _register(store: MemoryStore, user: User, *, mfa_verified: bool = False,
                    now: int = NOW) -> TotpEnrolment:
    return await register_totp(store, TOTP, SEALER, user_id=user.id, issuer="iss",
                               mfa_verified=mfa_verified, now=now)


async def _confirm(store: MemoryStore, user: User, enrollment: str, code: str, *,
                   mfa_verified: bool = False, now: int = NOW) -> bool:
    return await confirm_totp(store, TOTP, SEALER, user_id=user.id, enrollment=enrollment,
                              code=code, mfa_verified=mfa_verified, now=now)


async def test_registering_stores_nothing_until_a_valid_code_confirms() -> None:
    store = MemoryStore()
    user = await _user(store)
    enrolment = await _register(store, user)
    assert "alice" in enrolment.otpauth_uri and enrolment.expires_at == NOW + ENROLMENT_SECONDS
    assert enrolment.secret not in enrolment.enrollment  # sealed, not merely signed
    assert (await store.get_credentials(user.id)).totp_secret is None
    assert not await _confirm(store, user, enrolment.enrollment, "000000")
    assert (await store.get_credentials(user.id)).totp_secret is None
    code = pyotp.TOTP(enrolment.secret).at(NOW)
    assert await _confirm(store, user, enrolment.enrollment, code)
    credentials = await store.get_credentials(user.id)
    assert credentials.totp_secret == enrolment.secret and credentials.totp_confirmed
    # The confirming code is used up.
    assert not await _confirm(store, user, enrolment.enrollment, code, mfa_verified=True)


async def test_an_abandoned_re_enrolment_leaves_the_confirmed_factor_in_force() -> None:
    store = MemoryStore()
    user = await _user(store)
    await store.set_totp(user.id, SECRET, confirmed=True)
    await _register(store, user, mfa_verified=True)
    credentials = await store.get_credentials(user.id)
    assert credentials.totp_secret == SECRET and credentials.totp_confirmed


async def test_confirming_a_re_enrolment_replaces_the_factor() -> None:
    store = MemoryStore()
    user = await _user(store)
    await store.set_totp(user.id, SECRET, confirmed=True)
    enrolment = await _register(store, user, mfa_verified=True)
    code = pyotp.TOTP(enrolment.secret).at(NOW)
    assert await _confirm(store, user, enrolment.enrollment, code, mfa_verified=True)
    credentials = await store.get_credentials(user.id)
    assert credentials.totp_secret == enrolment.secret and credentials.totp_confirmed


async def test_a_confirmed_factor_is_replaced_only_from_an_mfa_verified_sign_in() -> None:
    store = MemoryStore()
    user = await _user(store)
    await store.set_totp(user.id, SECRET, confirmed=True)
    with pytest.raises(FactorAlreadyActive):
        await _register(store, user)
    # An enrolment made before the factor was confirmed cannot replace it either.
    store2 = MemoryStore()
    user2 = await _user(store2)
    early = await _register(store2, user2)
    await store2.set_totp(user2.id, SECRET, confirmed=True)
    with pytest.raises(FactorAlreadyActive):
        await _confirm(store2, user2, early.enrollment, pyotp.TOTP(early.secret).at(NOW))
    assert (await store2.get_credentials(user2.id)).totp_secret == SECRET


def _tampered(enrollment: str) -> str:
    head, key, iv, ciphertext, tag = enrollment.split(".")
    flipped = ("A" if ciphertext[0] != "A" else "B") + ciphertext[1:]
    return ".".join((head, key, iv, flipped, tag))


async def test_tampered_expired_foreign_and_unrelated_enrolments_are_refused() -> None:
    store = MemoryStore()
    alice, bob = await _user(store), await _user(store, "bob")
    enrolment = await _register(store, alice)
    code = pyotp.TOTP(enrolment.secret).at(NOW)
    other_key = JoseSealer(os.urandom(32)).seal(b'{"kind":"totp-enrolment"}')
    unrelated = SEALER.seal(msgspec.json.encode({"user_id": alice.id, "secret": SECRET,
                                                 "exp": NOW + 60}))
    for bad in (_tampered(enrolment.enrollment), "garbage", other_key, unrelated):
        with pytest.raises(InvalidEnrollment):
            await _confirm(store, alice, bad, code)
    with pytest.raises(InvalidEnrollment, match="another user"):
        await _confirm(store, bob, enrolment.enrollment, code)
    later = NOW + ENROLMENT_SECONDS
    with pytest.raises(InvalidEnrollment, match="expired"):
        await _confirm(store, alice, enrolment.enrollment, pyotp.TOTP(enrolment.secret).at(later),
                       now=later)
    assert (await store.get_credentials(alice.id)).totp_secret is None
    assert (await store.get_credentials(bob.id)).totp_secret is None
    # None of those refusals used the code up.
    assert await _confirm(store, alice, enrolment.enrollment, code)


async def test_wrong_codes_at_confirmation_are_throttled_per_user() -> None:
    store = MemoryStore()
    user = await _user(store)
    enrolment = await _register(store, user)
    for _ in range(VERIFY_LIMIT):
        assert not await _confirm(store, user, enrolment.enrollment, "000000")
    with pytest.raises(TooManyCodes) as refused:
        await _confirm(store, user, enrolment.enrollment, pyotp.TOTP(enrolment.secret).at(NOW))
    assert 0 < refused.value.retry_after <= 900
    assert (await store.get_credentials(user.id)).totp_secret is None
    # Another user is not affected; the next window starts afresh.
    other = await _user(store, "bob")
    theirs = await _register(store, other)
    assert await _confirm(store, other, theirs.enrollment, pyotp.TOTP(theirs.secret).at(NOW))
    later = NOW + refused.value.retry_after
    fresh = await _register(store, user, now=later)
    assert await _confirm(store, user, fresh.enrollment, pyotp.TOTP(fresh.secret).at(later),
                          now=later)
